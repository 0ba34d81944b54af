"""TransferValue: a holder gives tradable value of one batch to another participant."""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, positive_amount, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, holding_key
from reco2.ledger.tx import TransferValue
from reco2.ledger.types import Holding


def stateless(action: TransferValue) -> Outcome:
    if not (valid_id(action.batch_id) and valid_id(action.recipient)):
        return Outcome.invalid_id
    return positive_amount(action.quantity_g, Outcome.quantity_must_be_positive)


def check(state: State, ctx: Context, action: TransferValue) -> Outcome:
    if state.batch(action.batch_id) is None:
        return Outcome.unknown_batch
    if state.participant(action.recipient) is None:
        return Outcome.recipient_unknown
    if action.recipient == ctx.signer.participant_id:
        return Outcome.self_transfer
    holding = state.holding(action.batch_id, ctx.signer.participant_id)
    if holding is None or holding.tradable_g < action.quantity_g:
        return Outcome.insufficient_value
    return Outcome.ok


def apply(state: State, ctx: Context, action: TransferValue) -> tuple[str, ...]:
    sender = ctx.signer.participant_id
    source = state.holding(action.batch_id, sender)
    assert source is not None
    source.tradable_g -= action.quantity_g
    assert source.tradable_g >= 0, "a transfer never overdraws"
    state.touch(holding_key(action.batch_id, sender))
    target = state.holding(action.batch_id, action.recipient)
    if target is None:
        state.put(holding_key(action.batch_id, action.recipient), Holding(action.quantity_g, 0, 0))
    else:
        target.tradable_g += action.quantity_g
        state.touch(holding_key(action.batch_id, action.recipient))
    return (f"batch/{action.batch_id}",)
