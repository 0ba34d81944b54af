"""RegisterParticipant: the registry authority admits a participant with its key and roles."""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, has_role, text_ok, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, participant_key
from reco2.ledger.tx import PUBLIC_KEY_BYTES, RegisterParticipant
from reco2.ledger.types import Participant, Role


def stateless(action: RegisterParticipant) -> Outcome:
    if not valid_id(action.participant_id):
        return Outcome.invalid_id
    if len(action.public_key) != PUBLIC_KEY_BYTES:
        return Outcome.invalid_public_key
    if not action.roles or len(set(action.roles)) != len(action.roles):
        return Outcome.invalid_roles
    if not action.display_name:
        return Outcome.text_required
    if not text_ok(action.display_name):
        return Outcome.text_too_long
    return Outcome.ok


def check(state: State, ctx: Context, action: RegisterParticipant) -> Outcome:
    if not has_role(ctx.signer, Role.authority):
        return Outcome.role_not_allowed
    if state.participant(action.participant_id) is not None:
        return Outcome.participant_exists
    if state.participant_by_public_key(action.public_key) is not None:
        return Outcome.public_key_in_use
    return Outcome.ok


def apply(state: State, ctx: Context, action: RegisterParticipant) -> tuple[str, ...]:
    state.put(
        participant_key(action.participant_id),
        Participant(
            participant_id=action.participant_id,
            public_key=action.public_key,
            roles=sorted(action.roles),
            display_name=action.display_name,
            name_public=action.name_public,
            next_nonce=0,
            registered_height=ctx.height,
        ),
    )
    return (f"participant/{action.participant_id}",)
