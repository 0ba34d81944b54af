"""DESIGN.md section 7: what must hold after every block. Returns violations as sentences
(empty list = all hold); tests and the simulator call it after every block."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from reco2.ledger import units
from reco2.ledger.market.conditions import accepts_lot, may_trade
from reco2.ledger.state import BUY_ORDER, HOLDING, SELL_ORDER, YEN, State, holding_key, yen_key
from reco2.ledger.types import (
    BuyOrder,
    Holding,
    OrderStatus,
    SellOrder,
    ValueBatch,
    YenAccount,
)


def check(state: State) -> list[str]:
    violations: list[str] = []
    violations += _value_conserved(state)
    violations += _yen_conserved(state)
    violations += _no_overlapping_issuance(state)
    violations += _escrow_matches_orders(state)
    violations += _book_matches_orders(state)
    violations += _no_crossed_eligible_pair(state)
    return violations


def _value_conserved(state: State) -> list[str]:
    held: dict[str, int] = defaultdict(int)
    out: list[str] = []
    for key, record in state.records_with_prefix(HOLDING):
        assert isinstance(record, Holding)
        batch_id = key[len(HOLDING) :].split(b"/", 1)[0].decode()
        for name in ("tradable_g", "escrowed_g", "retired_g"):
            if getattr(record, name) < 0:
                out.append(f"holding {key.decode()} has negative {name}")
        held[batch_id] += record.tradable_g + record.escrowed_g + record.retired_g
    for _, batch in state.records_with_prefix(b"batch/"):
        assert isinstance(batch, ValueBatch)
        if held.get(batch.batch_id, 0) != batch.co2_g:
            out.append(
                f"batch {batch.batch_id}: issued {batch.co2_g} g but holdings add up to "
                f"{held.get(batch.batch_id, 0)} g"
            )
        held.pop(batch.batch_id, None)
    out.extend(f"holdings of unknown batch {batch_id}" for batch_id in sorted(held))
    return out


def _yen_conserved(state: State) -> list[str]:
    out: list[str] = []
    total = 0
    for key, record in state.records_with_prefix(YEN):
        assert isinstance(record, YenAccount)
        if record.available_sen < 0 or record.escrowed_sen < 0:
            out.append(f"account {key.decode()} is negative")
        total += record.available_sen + record.escrowed_sen
    totals = state.yen_totals()
    if totals.deposited_sen - totals.withdrawn_sen != total:
        out.append(
            f"yen: deposited {totals.deposited_sen} - withdrawn {totals.withdrawn_sen} "
            f"!= accounts {total} sen"
        )
    return out


def _no_overlapping_issuance(state: State) -> list[str]:
    out: list[str] = []
    devices = {key.decode().split("/", 1)[1] for key, _ in state.records_with_prefix(b"device/")}
    for device_id in sorted(devices):
        periods = state.issued_periods(device_id)
        for (start_a, end_a), (start_b, _) in pairwise(periods):
            if start_b < end_a:
                out.append(f"device {device_id}: issuance {start_a}-{end_a} overlaps {start_b}")
    return out


def retired_never_decreases(before: dict[bytes, int], state: State) -> list[str]:
    """Compare retired amounts with an earlier snapshot (see ``retired_snapshot``)."""
    out: list[str] = []
    now = retired_snapshot(state)
    for key, retired_g in sorted(before.items()):
        if now.get(key, 0) < retired_g:
            out.append(f"retired value moved in {key.decode()}")
    return out


def retired_snapshot(state: State) -> dict[bytes, int]:
    snapshot: dict[bytes, int] = {}
    for key, record in state.records_with_prefix(HOLDING):
        assert isinstance(record, Holding)
        snapshot[key] = record.retired_g
    return snapshot


def _open_orders(state: State) -> tuple[list[SellOrder], list[BuyOrder]]:
    sells = [r for _, r in state.records_with_prefix(SELL_ORDER) if isinstance(r, SellOrder)]
    buys = [r for _, r in state.records_with_prefix(BUY_ORDER) if isinstance(r, BuyOrder)]
    return (
        [s for s in sells if s.status is OrderStatus.open],
        [b for b in buys if b.status is OrderStatus.open],
    )


def _escrow_matches_orders(state: State) -> list[str]:
    """Escrowed value and yen are exactly what open orders hold."""
    out: list[str] = []
    sells, buys = _open_orders(state)
    value: dict[bytes, int] = defaultdict(int)
    for sell in sells:
        if sell.remaining_g <= 0:
            out.append(f"open sell order {sell.order_id} has nothing left")
        if sum(lot.quantity_g for lot in sell.lots) != sell.remaining_g:
            out.append(f"sell order {sell.order_id}: lots differ from what is left")
        for lot in sell.lots:
            value[holding_key(lot.batch_id, sell.owner)] += lot.quantity_g
    for key, record in state.records_with_prefix(HOLDING):
        assert isinstance(record, Holding)
        if record.escrowed_g != value.pop(key, 0):
            out.append(f"{key.decode()}: escrowed value differs from open sell orders")
    out.extend(f"{key.decode()}: sell orders escrow a missing holding" for key in sorted(value))
    yen: dict[bytes, int] = defaultdict(int)
    for buy in buys:
        if buy.remaining_g <= 0:
            out.append(f"open buy order {buy.order_id} has nothing left")
        if buy.escrow_sen < units.trade_value_sen(buy.remaining_g, buy.price_sen_per_kg):
            out.append(f"buy order {buy.order_id}: escrow no longer covers what is left")
        yen[yen_key(buy.owner)] += buy.escrow_sen
    for key, record in state.records_with_prefix(YEN):
        assert isinstance(record, YenAccount)
        if record.escrowed_sen != yen.pop(key, 0):
            out.append(f"{key.decode()}: escrowed yen differs from open buy orders")
    out.extend(f"{key.decode()}: buy orders escrow a missing account" for key in sorted(yen))
    return out


def _book_matches_orders(state: State) -> list[str]:
    sells, buys = _open_orders(state)
    out: list[str] = []
    if sorted(state.book.sells) != sorted(s.order_id for s in sells):
        out.append("the book's sell side differs from the open sell orders")
    if sorted(state.book.buys) != sorted(b.order_id for b in buys):
        out.append("the book's buy side differs from the open buy orders")
    return out


def pair_could_trade(buy: BuyOrder, sell: SellOrder) -> bool:
    """Would these two resting orders trade with each other alone, if they met now?"""
    if buy.price_sen_per_kg < sell.price_sen_per_kg or not may_trade(buy, sell):
        return False
    eligible = sum(lot.quantity_g for lot in sell.lots if accepts_lot(buy.conditions, lot))
    quantity = min(buy.remaining_g, eligible)
    if quantity <= 0:
        return False
    if sell.all_or_none and quantity < sell.remaining_g:
        return False
    return not (buy.all_or_none and quantity < buy.remaining_g)


def _no_crossed_eligible_pair(state: State) -> list[str]:
    sells, buys = _open_orders(state)
    return [
        f"resting buy {buy.order_id} and sell {sell.order_id} are eligible and crossed"
        for buy in buys
        for sell in sells
        if pair_could_trade(buy, sell)
    ]
