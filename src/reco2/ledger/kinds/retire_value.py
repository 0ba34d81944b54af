"""RetireValue (償却): a holder retires tradable value for a claim; retired value never moves."""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, positive_amount, text_ok, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, holding_key, retirement_key
from reco2.ledger.tx import RetireValue
from reco2.ledger.types import Retirement

MAX_NOTE_CHARS = 1_024


def stateless(action: RetireValue) -> Outcome:
    if not (valid_id(action.retirement_id) and valid_id(action.batch_id)):
        return Outcome.invalid_id
    amount = positive_amount(action.quantity_g, Outcome.quantity_must_be_positive)
    if amount is not Outcome.ok:
        return amount
    if not action.beneficiary:
        return Outcome.text_required
    if not text_ok(action.beneficiary):
        return Outcome.text_too_long
    if not text_ok(action.claimed_period, 64) or not text_ok(action.note, MAX_NOTE_CHARS):
        return Outcome.text_too_long
    return Outcome.ok


def check(state: State, ctx: Context, action: RetireValue) -> Outcome:
    if state.retirement(action.retirement_id) is not None:
        return Outcome.retirement_exists
    if state.batch(action.batch_id) is None:
        return Outcome.unknown_batch
    holding = state.holding(action.batch_id, ctx.signer.participant_id)
    if holding is None or holding.tradable_g < action.quantity_g:
        return Outcome.insufficient_value
    return Outcome.ok


def apply(state: State, ctx: Context, action: RetireValue) -> tuple[str, ...]:
    holder = ctx.signer.participant_id
    holding = state.holding(action.batch_id, holder)
    assert holding is not None
    holding.tradable_g -= action.quantity_g
    holding.retired_g += action.quantity_g
    assert holding.tradable_g >= 0, "retirement never overdraws"
    state.touch(holding_key(action.batch_id, holder))
    state.put(
        retirement_key(action.retirement_id),
        Retirement(
            retirement_id=action.retirement_id,
            holder=holder,
            batch_id=action.batch_id,
            quantity_g=action.quantity_g,
            beneficiary=action.beneficiary,
            purpose=action.purpose,
            claimed_period=action.claimed_period,
            note=action.note,
            height=ctx.height,
            time_ns=ctx.time_ns,
            tx_hash=ctx.tx_hash,
        ),
    )
    return (f"batch/{action.batch_id}", f"retirement/{action.retirement_id}")
