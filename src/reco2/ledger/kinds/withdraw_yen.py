"""WithdrawYen: a participant asks its settlement agent to pay out available yen.

The holder signs (nobody else can take its money); the named agent pays out off-ledger
against the reference, which is used once.
"""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, has_role, positive_amount, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import YEN_TOTALS, State, withdrawal_ref_key, yen_key
from reco2.ledger.tx import WithdrawYen
from reco2.ledger.types import Reference, Role


def stateless(action: WithdrawYen) -> Outcome:
    if not (valid_id(action.settlement_agent) and valid_id(action.reference)):
        return Outcome.invalid_id
    return positive_amount(action.amount_sen, Outcome.amount_must_be_positive)


def check(state: State, ctx: Context, action: WithdrawYen) -> Outcome:
    agent = state.participant(action.settlement_agent)
    if agent is None or not has_role(agent, Role.settlement_agent):
        return Outcome.not_settlement_agent
    if withdrawal_ref_key(action.reference) in state:
        return Outcome.withdrawal_reference_reused
    account = state.yen(ctx.signer.participant_id)
    if account is None or account.available_sen < action.amount_sen:
        return Outcome.insufficient_yen
    return Outcome.ok


def apply(state: State, ctx: Context, action: WithdrawYen) -> tuple[str, ...]:
    holder = ctx.signer.participant_id
    account = state.yen(holder)
    assert account is not None
    account.available_sen -= action.amount_sen
    assert account.available_sen >= 0, "a withdrawal never overdraws"
    state.touch(yen_key(holder))
    totals = state.yen_totals()
    totals.withdrawn_sen += action.amount_sen
    state.put(YEN_TOTALS, totals)
    state.put(
        withdrawal_ref_key(action.reference), Reference(holder, action.amount_sen, ctx.height)
    )
    return (f"yen/{holder}",)
