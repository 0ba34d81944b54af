"""PlaceBuyOrder: bid for value under conditions (sellers, place, source, generation period,
commissioning date). Yen for the whole order at the limit price is escrowed at once; the order
meets the eligible resting sells (price-time priority, at their prices); the rest rests."""

from __future__ import annotations

from reco2.ledger import units
from reco2.ledger.kinds.common import Context, has_role, valid_id
from reco2.ledger.market import rules, settlement
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, buy_order_key
from reco2.ledger.tx import PlaceBuyOrder
from reco2.ledger.types import BuyConditions, BuyOrder, OrderStatus, Role


def stateless(action: PlaceBuyOrder) -> Outcome:
    if not valid_id(action.order_id):
        return Outcome.invalid_id
    outcome = rules.quantity_and_price(action.quantity_g, action.price_sen_per_kg)
    if outcome is not Outcome.ok:
        return outcome
    if action.expires_at_ns < 0:
        return Outcome.invalid_expiry
    return rules.buy_conditions(action.conditions)


def check(state: State, ctx: Context, action: PlaceBuyOrder) -> Outcome:
    if not has_role(ctx.signer, Role.buyer):
        return Outcome.role_not_allowed
    if state.order_exists(action.order_id):
        return Outcome.order_exists
    if action.expires_at_ns and action.expires_at_ns <= ctx.time_ns:
        return Outcome.order_expired
    account = state.yen(ctx.signer.participant_id)
    needed = units.trade_value_sen(action.quantity_g, action.price_sen_per_kg)
    if (account.available_sen if account else 0) < needed or account is None:
        return Outcome.insufficient_yen
    return Outcome.ok


def apply(state: State, ctx: Context, action: PlaceBuyOrder) -> tuple[str, ...]:
    owner = ctx.signer.participant_id
    escrow_sen = units.trade_value_sen(action.quantity_g, action.price_sen_per_kg)
    settlement.escrow_yen(state, owner, escrow_sen)
    seq = state.take_order_seq()
    c = action.conditions
    order = BuyOrder(
        order_id=action.order_id,
        owner=owner,
        quantity_g=action.quantity_g,
        remaining_g=action.quantity_g,
        all_or_none=action.all_or_none,
        price_sen_per_kg=action.price_sen_per_kg,
        expires_at_ns=action.expires_at_ns,
        seq=seq,
        placed_height=ctx.height,
        conditions=BuyConditions(
            sorted(c.sellers),
            sorted(c.places),
            sorted(c.sources),
            c.period_from_s,
            c.period_to_s,
            c.commissioned_after,
            c.exclude_estimated,
        ),
        escrow_sen=escrow_sen,
        status=OrderStatus.open,
    )
    state.put(buy_order_key(order.order_id), order)
    return settlement.arrive_buy(state, ctx, order)
