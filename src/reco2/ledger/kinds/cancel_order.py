"""CancelOrder: the owner withdraws a resting order; its escrow is released."""

from __future__ import annotations

from reco2.ledger.kinds.common import Context
from reco2.ledger.market import rules, settlement
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State
from reco2.ledger.tx import CancelOrder
from reco2.ledger.types import OrderStatus


def stateless(action: CancelOrder) -> Outcome:
    return Outcome.ok if rules.valid_order_ref(action.order_id) else Outcome.invalid_id


def check(state: State, ctx: Context, action: CancelOrder) -> Outcome:
    order = state.sell_order(action.order_id) or state.buy_order(action.order_id)
    if order is None:
        return Outcome.unknown_order
    if order.owner != ctx.signer.participant_id:
        return Outcome.not_order_owner
    if order.status is not OrderStatus.open:
        return Outcome.order_not_open
    return Outcome.ok


def apply(state: State, ctx: Context, action: CancelOrder) -> tuple[str, ...]:
    sell = state.sell_order(action.order_id)
    if sell is not None:
        events = tuple(f"batch/{lot.batch_id}" for lot in sell.lots)
        settlement.close_sell(state, sell, OrderStatus.cancelled)
        return (f"order/{action.order_id}", *events)
    buy = state.buy_order(action.order_id)
    assert buy is not None
    settlement.close_buy(state, buy, OrderStatus.cancelled)
    return (f"order/{action.order_id}",)
