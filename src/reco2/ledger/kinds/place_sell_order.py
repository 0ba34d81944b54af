"""PlaceSellOrder: list value of one source and place at a minimum price.

The value is escrowed from the seller's batches that fit the listing, oldest first, then the
order meets the resting buys it is eligible for (price-time priority, at their prices); what is
left rests until filled, cancelled or expired.
"""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, has_role, valid_id
from reco2.ledger.market import rules, settlement
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, sell_order_key
from reco2.ledger.tx import PlaceSellOrder
from reco2.ledger.types import OrderStatus, Role, SellConditions, SellOrder


def stateless(action: PlaceSellOrder) -> Outcome:
    if not valid_id(action.order_id):
        return Outcome.invalid_id
    outcome = rules.quantity_and_price(action.quantity_g, action.price_sen_per_kg)
    if outcome is not Outcome.ok:
        return outcome
    if not rules.valid_place(action.place):
        return Outcome.invalid_place_code
    if action.expires_at_ns < 0:
        return Outcome.invalid_expiry
    return rules.participant_list(action.buyers)


def check(state: State, ctx: Context, action: PlaceSellOrder) -> Outcome:
    if not (has_role(ctx.signer, Role.prosumer) or has_role(ctx.signer, Role.buyer)):
        return Outcome.role_not_allowed
    if state.order_exists(action.order_id):
        return Outcome.order_exists
    if action.expires_at_ns and action.expires_at_ns <= ctx.time_ns:
        return Outcome.order_expired
    owner = ctx.signer.participant_id
    if settlement.sellable_g(state, owner, action.source, action.place) < action.quantity_g:
        return Outcome.insufficient_value
    return Outcome.ok


def apply(state: State, ctx: Context, action: PlaceSellOrder) -> tuple[str, ...]:
    owner = ctx.signer.participant_id
    batches = settlement.sellable_batches(state, owner, action.source, action.place)
    return list_value(
        state,
        ctx,
        SellOrder(
            order_id=action.order_id,
            owner=owner,
            quantity_g=action.quantity_g,
            remaining_g=action.quantity_g,
            all_or_none=action.all_or_none,
            price_sen_per_kg=action.price_sen_per_kg,
            expires_at_ns=action.expires_at_ns,
            seq=0,
            placed_height=ctx.height,
            source=action.source,
            place=action.place,
            name_public=action.name_public,
            conditions=SellConditions(sorted(action.buyers)),
            lots=settlement.escrow_value(state, owner, batches, action.quantity_g),
            rule_id="",
            status=OrderStatus.open,
        ),
    )


def list_value(state: State, ctx: Context, order: SellOrder) -> tuple[str, ...]:
    """Give an escrowed sell order its place in the ledger, store it, and let it arrive."""
    order.seq = state.take_order_seq()
    state.put(sell_order_key(order.order_id), order)
    return settlement.arrive_sell(state, ctx, order)
