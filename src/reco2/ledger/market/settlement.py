"""Settlement: delivery versus payment inside the transaction that matched.

Each fill moves value from the seller's escrow to the buyer and yen from the buyer's escrow to
the seller in the same step, records a trade with the batches it drew from, and closes
orders that are done, releasing what their escrow no longer needs. No state exists in which
one leg happened without the other.
"""

from __future__ import annotations

from reco2.ledger import units
from reco2.ledger.kinds.common import Context
from reco2.ledger.market.book import Fill
from reco2.ledger.market.status import moved
from reco2.ledger.places import place_contains
from reco2.ledger.state import (
    State,
    buy_order_key,
    holding_key,
    sell_order_key,
    trade_key,
    yen_key,
)
from reco2.ledger.types import (
    BuyOrder,
    Holding,
    Lot,
    OrderStatus,
    SellOrder,
    Source,
    Trade,
    ValueBatch,
    YenAccount,
)


# ---- escrow ------------------------------------------------------------------------------
def sellable_batches(state: State, owner: str, source: Source, place: str) -> list[ValueBatch]:
    """The owner's batches a listing of this source and place can draw from, oldest first."""
    batches = []
    for batch_id in state.holdings_of(owner):
        batch = state.batch(batch_id)
        holding = state.holding(batch_id, owner)
        assert batch is not None and holding is not None
        if (
            holding.tradable_g > 0
            and batch.source is source
            and place_contains(place, batch.municipality_code)
        ):
            batches.append(batch)
    batches.sort(key=lambda b: (b.period_start_s, b.batch_id))
    return batches


def sellable_g(state: State, owner: str, source: Source, place: str) -> int:
    total = 0
    for batch in sellable_batches(state, owner, source, place):
        holding = state.holding(batch.batch_id, owner)
        assert holding is not None
        total += holding.tradable_g
    return total


def escrow_value(state: State, owner: str, batches: list[ValueBatch], quantity_g: int) -> list[Lot]:
    """Move ``quantity_g`` of the owner's tradable value into escrow, oldest batch first."""
    lots: list[Lot] = []
    need = quantity_g
    for batch in batches:
        holding = state.holding(batch.batch_id, owner)
        assert holding is not None
        take = min(need, holding.tradable_g)
        if take <= 0:
            continue
        holding.tradable_g -= take
        holding.escrowed_g += take
        state.touch(holding_key(batch.batch_id, owner))
        device = state.device(batch.device_id)
        assert device is not None
        lots.append(
            Lot(
                batch.batch_id,
                take,
                batch.period_start_s,
                batch.period_end_s,
                batch.municipality_code,
                device.commissioned_on,
                batch.estimated_intervals > 0,
            )
        )
        need -= take
        if need == 0:
            break
    assert need == 0, "escrow is checked before it is taken"
    return lots


def escrow_yen(state: State, owner: str, amount_sen: int) -> None:
    account = state.yen(owner)
    assert account is not None and account.available_sen >= amount_sen
    account.available_sen -= amount_sen
    account.escrowed_sen += amount_sen
    state.touch(yen_key(owner))


# ---- closing -----------------------------------------------------------------------------
def close_sell(state: State, order: SellOrder, status: OrderStatus) -> None:
    """Close a sell order; value still in its escrow goes back to the owner's tradable."""
    for lot in order.lots:
        holding = state.holding(lot.batch_id, order.owner)
        assert holding is not None
        holding.escrowed_g -= lot.quantity_g
        holding.tradable_g += lot.quantity_g
        assert holding.escrowed_g >= 0, "escrow never goes negative"
        state.touch(holding_key(lot.batch_id, order.owner))
    order.lots = []
    order.status = moved(order.status, status)
    if order.order_id in state.book.sells:
        state.book.remove_sell(order)
    state.touch(sell_order_key(order.order_id))


def close_buy(state: State, order: BuyOrder, status: OrderStatus) -> None:
    """Close a buy order; yen still in its escrow goes back to the owner's available."""
    if order.escrow_sen:
        account = state.yen(order.owner)
        assert account is not None
        account.escrowed_sen -= order.escrow_sen
        account.available_sen += order.escrow_sen
        assert account.escrowed_sen >= 0, "escrow never goes negative"
        order.escrow_sen = 0
        state.touch(yen_key(order.owner))
    order.status = moved(order.status, status)
    if order.order_id in state.book.buys:
        state.book.remove_buy(order)
    state.touch(buy_order_key(order.order_id))


# ---- trades ------------------------------------------------------------------------------
def settle(state: State, ctx: Context, buy: BuyOrder, sell: SellOrder, fill: Fill) -> list[str]:
    """Apply one fill between a buy and a sell order (either may be the arriving one)."""
    value_sen = units.trade_value_sen(fill.quantity_g, fill.price_sen_per_kg)
    # value leg: seller's escrow -> buyer's tradable, batch by batch
    for draw in fill.lots:
        seller_holding = state.holding(draw.batch_id, sell.owner)
        assert seller_holding is not None
        seller_holding.escrowed_g -= draw.quantity_g
        assert seller_holding.escrowed_g >= 0, "a trade never overdraws escrow"
        state.touch(holding_key(draw.batch_id, sell.owner))
        buyer_holding = state.holding(draw.batch_id, buy.owner)
        if buyer_holding is None:
            state.put(holding_key(draw.batch_id, buy.owner), Holding(draw.quantity_g, 0, 0))
        else:
            buyer_holding.tradable_g += draw.quantity_g
            state.touch(holding_key(draw.batch_id, buy.owner))
        _take_from_lots(sell, draw.batch_id, draw.quantity_g)
    sell.remaining_g -= fill.quantity_g
    # yen leg: buyer's escrow -> seller's available
    buyer_account = state.yen(buy.owner)
    assert buyer_account is not None
    buyer_account.escrowed_sen -= value_sen
    buy.escrow_sen -= value_sen
    assert buy.escrow_sen >= 0, "a buy order's escrow covers its fills"
    state.touch(yen_key(buy.owner))
    seller_account = state.yen(sell.owner)
    if seller_account is None:
        state.put(yen_key(sell.owner), YenAccount(value_sen, 0))
    else:
        seller_account.available_sen += value_sen
        state.touch(yen_key(sell.owner))
    buy.remaining_g -= fill.quantity_g
    # the record
    trade_seq = state.take_trade_seq()
    state.put(
        trade_key(trade_seq),
        Trade(
            trade_seq=trade_seq,
            height=ctx.height,
            time_ns=ctx.time_ns,
            tx_hash=ctx.tx_hash,
            buy_order=buy.order_id,
            sell_order=sell.order_id,
            buyer=buy.owner,
            seller=sell.owner,
            seller_public=sell.name_public,
            quantity_g=fill.quantity_g,
            price_sen_per_kg=fill.price_sen_per_kg,
            value_sen=value_sen,
            lots=list(fill.lots),
        ),
    )
    state.touch(sell_order_key(sell.order_id))
    state.touch(buy_order_key(buy.order_id))
    if sell.remaining_g == 0:
        close_sell(state, sell, OrderStatus.filled)
    if buy.remaining_g == 0:
        close_buy(state, buy, OrderStatus.filled)
    return [f"trade/{trade_seq}", f"order/{buy.order_id}", f"order/{sell.order_id}"] + [
        f"batch/{d.batch_id}" for d in fill.lots
    ]


def _take_from_lots(sell: SellOrder, batch_id: str, quantity_g: int) -> None:
    for lot in sell.lots:
        if lot.batch_id == batch_id:
            assert lot.quantity_g >= quantity_g, "a draw never exceeds its lot"
            lot.quantity_g -= quantity_g
            break
    else:
        raise AssertionError(f"draw from batch {batch_id} not in order {sell.order_id}")
    sell.lots = [lot for lot in sell.lots if lot.quantity_g > 0]


# ---- arriving orders ---------------------------------------------------------------------
def _unique(events: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(events))


def arrive_buy(state: State, ctx: Context, buy: BuyOrder) -> tuple[str, ...]:
    """Match an arriving (already escrowed and stored) buy order, settle, rest the rest."""
    events = [f"order/{buy.order_id}"]
    for fill in state.book.match_buy(buy):
        sell = state.book.sells[fill.resting_order]
        events += settle(state, ctx, buy, sell, fill)
    if buy.status is OrderStatus.open:
        state.book.add_buy(buy)
    return _unique(events)


def arrive_sell(state: State, ctx: Context, sell: SellOrder) -> tuple[str, ...]:
    """Match an arriving (already escrowed and stored) sell order, settle, rest the rest."""
    events = [f"order/{sell.order_id}"] + [f"batch/{lot.batch_id}" for lot in sell.lots]
    for fill in state.book.match_sell(sell):
        buy = state.book.buys[fill.resting_order]
        events += settle(state, ctx, buy, sell, fill)
    if sell.status is OrderStatus.open:
        state.book.add_sell(sell)
    return _unique(events)


def expire(state: State, time_ns: int) -> list[str]:
    """Close every resting order whose expiry has come (called at the start of a block)."""
    expired = []
    for order_id in state.book.due_to_expire(time_ns):
        sell = state.book.sells.get(order_id)
        if sell is not None:
            close_sell(state, sell, OrderStatus.expired)
        else:
            close_buy(state, state.book.buys[order_id], OrderStatus.expired)
        expired.append(order_id)
    return expired
