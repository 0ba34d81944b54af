"""DepositYen: a settlement agent credits yen it received for a participant's account.

The agent's reference (its payment id) is used once, so a retried deposit never doubles.
"""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, has_role, positive_amount, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import YEN_TOTALS, State, deposit_ref_key, yen_key
from reco2.ledger.tx import DepositYen
from reco2.ledger.types import Reference, Role, YenAccount

#: 10**18 sen (10 quadrillion yen), below MessagePack's 64-bit integers.
MAX_TOTAL_SEN = 10**18


def stateless(action: DepositYen) -> Outcome:
    if not (valid_id(action.account) and valid_id(action.reference)):
        return Outcome.invalid_id
    return positive_amount(action.amount_sen, Outcome.amount_must_be_positive)


def check(state: State, ctx: Context, action: DepositYen) -> Outcome:
    if not has_role(ctx.signer, Role.settlement_agent):
        return Outcome.role_not_allowed
    if state.participant(action.account) is None:
        return Outcome.account_unknown
    if deposit_ref_key(action.reference) in state:
        return Outcome.deposit_reference_reused
    # Every balance is bounded by what was ever deposited; keeping that total below the
    # encoding's integer range keeps every yen amount in the ledger encodable.
    if state.yen_totals().deposited_sen + action.amount_sen > MAX_TOTAL_SEN:
        return Outcome.amount_too_large
    return Outcome.ok


def apply(state: State, ctx: Context, action: DepositYen) -> tuple[str, ...]:
    account = state.yen(action.account)
    if account is None:
        state.put(yen_key(action.account), YenAccount(action.amount_sen, 0))
    else:
        account.available_sen += action.amount_sen
        state.touch(yen_key(action.account))
    totals = state.yen_totals()
    totals.deposited_sen += action.amount_sen
    state.put(YEN_TOTALS, totals)
    state.put(
        deposit_ref_key(action.reference),
        Reference(action.account, action.amount_sen, ctx.height),
    )
    return (f"yen/{action.account}",)
