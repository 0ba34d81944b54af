"""RegisterParticipant: the registry authority admits a participant with its key and roles."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import Case, Ledger, expect, public_key, run_case, world

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import Participant, Role


def register(
    pid: str = "tanaka",
    key: bytes | None = None,
    roles: list[Role] | None = None,
    name: str = "田中",
    public: bool = True,
) -> tx.RegisterParticipant:
    return tx.RegisterParticipant(
        pid,
        public_key(pid) if key is None else key,
        [Role.buyer] if roles is None else roles,
        name,
        public,
    )


def registered(
    pid: str, roles: list[Role], name: str = "田中", name_public: bool = True
) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        assert ledger.app.state.participant(pid) == Participant(
            participant_id=pid,
            public_key=public_key(pid),
            roles=roles,  # sorted, whatever order they came in
            display_name=name,
            name_public=name_public,
            next_nonce=0,
            registered_height=ledger.app.height,
        )
        assert ledger.app.state.participant_by_public_key(public_key(pid)) == pid

    return then


CASES = [
    Case(
        "ok",
        "authority",
        register(roles=[Role.prosumer, Role.buyer], public=False),
        Outcome.ok,
        then=registered("tanaka", [Role.buyer, Role.prosumer], name_public=False),
    ),
    Case(
        "ok every role",
        "authority",
        register(roles=list(Role)),
        Outcome.ok,
        then=registered("tanaka", sorted(Role)),
    ),
    Case("ok id at 64 chars", "authority", register("x" * 64), Outcome.ok),
    Case("ok id punctuation", "authority", register("a.b_c:d-e"), Outcome.ok),
    Case("ok name at 256 chars", "authority", register(name="名" * 256), Outcome.ok),
    # who may sign: the authority only
    *(
        Case(f"signed by {who}", who, register(), Outcome.role_not_allowed)
        for who in ("maekawa", "mrv", "buyer", "bank")
    ),
    # fields
    Case("empty id", "authority", register(""), Outcome.invalid_id),
    Case("id with a space", "authority", register("ta naka"), Outcome.invalid_id),
    Case("id with a slash", "authority", register("a/b"), Outcome.invalid_id),
    Case("id of 65 chars", "authority", register("x" * 65), Outcome.invalid_id),
    Case("non-ascii id", "authority", register("田中"), Outcome.invalid_id),
    Case("key of 31 bytes", "authority", register(key=bytes(31)), Outcome.invalid_public_key),
    Case("key of 33 bytes", "authority", register(key=bytes(33)), Outcome.invalid_public_key),
    Case("empty key", "authority", register(key=b""), Outcome.invalid_public_key),
    Case("no roles", "authority", register(roles=[]), Outcome.invalid_roles),
    Case(
        "a role twice", "authority", register(roles=[Role.buyer, Role.buyer]), Outcome.invalid_roles
    ),
    Case("empty name", "authority", register(name=""), Outcome.text_required),
    Case("name of 257 chars", "authority", register(name="x" * 257), Outcome.text_too_long),
    # fields are checked before the signer's role
    Case("bad id by a prosumer", "maekawa", register("a b"), Outcome.invalid_id),
    # against state
    Case(
        "id taken",
        "authority",
        register("maekawa", key=public_key("new-key")),
        Outcome.participant_exists,
    ),
    Case(
        "genesis id taken",
        "authority",
        register("authority", key=public_key("new-key")),
        Outcome.participant_exists,
    ),
    Case(
        "key in use",
        "authority",
        register("tanaka", key=public_key("maekawa")),
        Outcome.public_key_in_use,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_register_participant(case: Case) -> None:
    run_case(case)


def test_a_registered_participant_signs_from_nonce_zero() -> None:
    ledger = world()
    ledger.attempt("authority", register("tanaka", roles=[Role.settlement_agent]), Outcome.ok)
    ledger.attempt("tanaka", tx.DepositYen("buyer", 100, "ref-1"), Outcome.ok)
    participant = ledger.app.state.participant("tanaka")
    assert participant is not None
    assert participant.next_nonce == 1


def test_a_new_authority_may_register_others() -> None:
    ledger = world()
    ledger.attempt("authority", register("deputy", roles=[Role.authority]), Outcome.ok)
    ledger.attempt("deputy", register("tanaka"), Outcome.ok)
    assert ledger.app.state.participant("tanaka") is not None


def test_register_event_names_the_participant() -> None:
    ledger = world()
    result = ledger.attempt("authority", register("tanaka"), Outcome.ok)
    assert result.events == ["participant/tanaka"]
    expect(result.code, Outcome.ok)
