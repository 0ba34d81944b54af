"""The indexed matching engine against a brute-force reference (issue 3's differential test).

Hypothesis draws random streams of place-sell, place-buy and cancel transactions, cut into
blocks whose times advance by random steps (so orders expire), over a handful of
participants, devices in several prefectures and municipalities with different sources and
commissioning dates, and batches with different generation periods, some with estimated
intervals. Prices are 1-10 yen per kg, quantities small, all-or-none random, and every
condition random: the buyer's sellers, places, sources, generation-period window,
commissioning date and exclude-estimated, and the seller's buyers.

The stream runs through the real Application (the Ledger harness, which checks the DESIGN
section 7 invariants after every block). Beside it ``Reference`` applies the rules of DESIGN
section 5 written down again from the text, with no index at all: the book is a plain list,
and each arriving order scans every resting order of the other side in price-time priority
(price, then ledger position), checks eligibility under both orders' conditions down to each
lot, skips its owner's orders, draws lots oldest first, respects all-or-none on both sides
and prints at the resting order's price. After every block the outcome codes, the trades
(orders, owners, quantity, price, sen, lots drawn), both books (remaining, lots, escrow,
ledger position), every order's status and every balance must be identical.

One rule the design leaves open is fixed here as the engine does it: an arriving
all-or-none order that the walk cannot fill whole (it met an all-or-none order larger than
what it had left) trades whole with the first resting order, in priority, that can fill it
alone, if any; otherwise it rests untouched. This keeps "no eligible pair of resting orders
is crossed" true.

RECO2_MARKET_EXAMPLES sets the number of examples (default 200).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.support import (
    DAY_S,
    Ledger,
    day_start,
    deposit_action,
    device_action,
    issue_action,
    ok_block,
    register_action,
    wh_for_g,
)

from reco2 import factors
from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import BuyConditions, Role, Source

EXAMPLES = int(os.environ.get("RECO2_MARKET_EXAMPLES", "200"))
S = 10**9  # ns per s

# ---- the world ------------------------------------------------------------------------------
SELLERS = ["p0", "p1", "p2"]  # prosumers
BUYERS = ["b0", "b1"]  # buyers (b1 has little yen)
TRADER = "t0"  # prosumer and buyer: can meet its own orders
PEOPLE = [*SELLERS, *BUYERS, TRADER]
DEVICES = {
    # device: owner, source, municipality, commissioned on
    "d0": ("p0", Source.solar, "131202", "2019-04-01"),  # Nerima
    "d1": ("p0", Source.solar, "131121", "2021-01-01"),  # Setagaya
    "d2": ("p1", Source.wind, "072036", "2018-10-01"),  # Koriyama
    "d3": ("p1", Source.solar, "072010", "2022-06-01"),  # Fukushima
    "d4": ("p2", Source.solar, "011002", "2020-07-15"),  # Sapporo
    "d5": ("p2", Source.hydro, "012025", "2019-04-01"),  # Hakodate
    "d6": ("t0", Source.wind, "131202", "2023-03-01"),  # Nerima
}
PLACES = ["13", "131202", "131121", "07", "072036", "072010", "01", "011002", "012025"]
SOURCES = [Source.solar, Source.wind, Source.hydro]
DAYS = [f"2025-06-{d:02d}" for d in range(1, 11)]
COMMISSIONED_AFTER = ["2018-12-31", "2019-04-01", "2020-07-15", "2021-06-30"]
DEPOSITS = {"b0": 10_000_000, "b1": 5_000, "t0": 1_000_000}


# ---- the reference --------------------------------------------------------------------------
def contains(outer: str, inner: str) -> bool:
    """A place contains itself; a prefecture (two digits) contains every code in it."""
    return outer == inner or (len(outer) == 2 and inner.startswith(outer))


@dataclass
class RBatch:
    source: Source
    municipality: str
    start_s: int
    end_s: int
    commissioned: str
    estimated: bool


@dataclass
class ROrder:
    order_id: str
    side: str  # "sell" or "buy"
    owner: str
    quantity_g: int
    remaining_g: int
    aon: bool
    price: int
    expires_at_ns: int
    seq: int
    status: str = "open"
    # sell
    source: Source = Source.solar
    place: str = ""
    name_public: bool = True
    buyers: list[str] = field(default_factory=list)
    lots: dict[str, int] = field(default_factory=dict)  # batch id: g, oldest first
    # buy
    conditions: BuyConditions | None = None
    escrow_sen: int = 0


@dataclass
class RTrade:
    buy: str
    sell: str
    buyer: str
    seller: str
    seller_public: bool
    quantity_g: int
    price: int
    value_sen: int
    lots: list[tuple[str, int]]


@dataclass
class Reference:
    """DESIGN section 5 by brute force: a list for a book, every resting order scanned."""

    batches: dict[str, RBatch] = field(default_factory=dict)
    holdings: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # [tradable, esc]
    yen: dict[str, list[int]] = field(default_factory=dict)  # [available, escrowed]
    orders: dict[str, ROrder] = field(default_factory=dict)
    book: list[ROrder] = field(default_factory=list)
    trades: list[RTrade] = field(default_factory=list)
    next_seq: int = 0

    # -- what conditions say ----------------------------------------------------------------
    def accepts_value(self, c: BuyConditions, batch_id: str) -> bool:
        b = self.batches[batch_id]
        return (
            (not c.places or any(contains(p, b.municipality) for p in c.places))
            and (not c.period_from_s or b.start_s >= c.period_from_s)
            and (not c.period_to_s or b.end_s <= c.period_to_s)
            and (not c.commissioned_after or b.commissioned > c.commissioned_after)
            and not (c.exclude_estimated and b.estimated)
        )

    def eligible(self, buy: ROrder, sell: ROrder) -> bool:
        """Both orders' conditions on each other (the lots are checked one by one apart)."""
        c = buy.conditions
        assert c is not None
        return (
            buy.owner != sell.owner
            and (not sell.buyers or buy.owner in sell.buyers)
            and (not c.sellers or sell.owner in c.sellers)
            and (not c.sources or sell.source in c.sources)
            and (
                not c.places
                or any(contains(p, sell.place) or contains(sell.place, p) for p in c.places)
            )
        )

    def resting(self, side: str) -> list[ROrder]:
        """Resting orders of one side, best first: sells cheapest, buys dearest, then seq."""
        sign = 1 if side == "sell" else -1
        return sorted(
            (o for o in self.book if o.side == side), key=lambda o: (sign * o.price, o.seq)
        )

    # -- transactions ---------------------------------------------------------------------
    def place_sell(self, owner: str, a: tx.PlaceSellOrder, time_ns: int) -> Outcome:
        if a.order_id in self.orders:
            return Outcome.order_exists
        if a.expires_at_ns and a.expires_at_ns <= time_ns:
            return Outcome.order_expired
        fitting = sorted(
            (
                b
                for (b, holder), h in self.holdings.items()
                if holder == owner
                and h[0] > 0
                and self.batches[b].source is a.source
                and contains(a.place, self.batches[b].municipality)
            ),
            key=lambda b: (self.batches[b].start_s, b),
        )
        if sum(self.holdings[b, owner][0] for b in fitting) < a.quantity_g:
            return Outcome.insufficient_value
        lots: dict[str, int] = {}
        need = a.quantity_g
        for b in fitting:
            take = min(need, self.holdings[b, owner][0])
            self.holdings[b, owner][0] -= take
            self.holdings[b, owner][1] += take
            lots[b] = take
            need -= take
            if need == 0:
                break
        sell = ROrder(
            a.order_id,
            "sell",
            owner,
            a.quantity_g,
            a.quantity_g,
            a.all_or_none,
            a.price_sen_per_kg,
            a.expires_at_ns,
            self.next_seq,
            source=a.source,
            place=a.place,
            name_public=a.name_public,
            buyers=list(a.buyers),
            lots=lots,
        )
        self.next_seq += 1
        self.orders[sell.order_id] = sell
        for buy, quantity, draws in self.match_sell(sell):
            self.settle(buy, sell, quantity, buy.price, draws)
        if sell.status == "open":
            self.book.append(sell)
        return Outcome.ok

    def match_sell(self, sell: ROrder) -> list[tuple[ROrder, int, list[tuple[str, int]]]]:
        left = dict(sell.lots)
        order = list(sell.lots)
        remaining = sell.remaining_g
        fills = []
        for buy in self.resting("buy"):
            if buy.price < sell.price or not self.eligible(buy, sell):
                continue
            assert buy.conditions is not None
            usable = [b for b in order if left[b] and self.accepts_value(buy.conditions, b)]
            quantity = min(remaining, buy.remaining_g, sum(left[b] for b in usable))
            if quantity == 0 or (buy.aon and quantity < buy.remaining_g):
                continue
            draws, need = [], quantity
            for b in usable:
                take = min(need, left[b])
                left[b] -= take
                need -= take
                draws.append((b, take))
                if need == 0:
                    break
            fills.append((buy, quantity, draws))
            remaining -= quantity
            if remaining == 0:
                break
        if sell.aon and remaining:
            for buy in self.resting("buy"):  # one buy alone that takes it whole
                if buy.price < sell.price or not self.eligible(buy, sell):
                    continue
                assert buy.conditions is not None
                if buy.remaining_g < sell.remaining_g or (
                    buy.aon and buy.remaining_g > sell.remaining_g
                ):
                    continue
                if all(self.accepts_value(buy.conditions, b) for b in order):
                    return [(buy, sell.remaining_g, list(sell.lots.items()))]
            return []
        return fills

    def place_buy(self, owner: str, a: tx.PlaceBuyOrder, time_ns: int) -> Outcome:
        if a.order_id in self.orders:
            return Outcome.order_exists
        if a.expires_at_ns and a.expires_at_ns <= time_ns:
            return Outcome.order_expired
        escrow = a.quantity_g * a.price_sen_per_kg // 1_000
        account = self.yen.get(owner)
        if account is None or account[0] < escrow:
            return Outcome.insufficient_yen
        account[0] -= escrow
        account[1] += escrow
        buy = ROrder(
            a.order_id,
            "buy",
            owner,
            a.quantity_g,
            a.quantity_g,
            a.all_or_none,
            a.price_sen_per_kg,
            a.expires_at_ns,
            self.next_seq,
            conditions=a.conditions,
            escrow_sen=escrow,
        )
        self.next_seq += 1
        self.orders[buy.order_id] = buy
        for sell, quantity, draws in self.match_buy(buy):
            self.settle(buy, sell, quantity, sell.price, draws)
        if buy.status == "open":
            self.book.append(buy)
        return Outcome.ok

    def match_buy(self, buy: ROrder) -> list[tuple[ROrder, int, list[tuple[str, int]]]]:
        c = buy.conditions
        assert c is not None
        remaining = buy.remaining_g
        fills = []
        for sell in self.resting("sell"):
            if sell.price > buy.price or not self.eligible(buy, sell):
                continue
            lots = [(b, g) for b, g in sell.lots.items() if self.accepts_value(c, b)]
            quantity = min(remaining, sum(g for _, g in lots))
            if quantity == 0 or (sell.aon and quantity < sell.remaining_g):
                continue
            fills.append((sell, quantity, take_oldest(lots, quantity)))
            remaining -= quantity
            if remaining == 0:
                break
        if buy.aon and remaining:
            for sell in self.resting("sell"):  # one sell alone that fills it whole
                if sell.price > buy.price or not self.eligible(buy, sell):
                    continue
                if sell.aon and sell.remaining_g > buy.remaining_g:
                    continue
                lots = [(b, g) for b, g in sell.lots.items() if self.accepts_value(c, b)]
                if sum(g for _, g in lots) >= buy.remaining_g:
                    return [(sell, buy.remaining_g, take_oldest(lots, buy.remaining_g))]
            return []
        return fills

    def settle(
        self, buy: ROrder, sell: ROrder, quantity: int, price: int, draws: list[tuple[str, int]]
    ) -> None:
        value = quantity * price // 1_000
        for b, g in draws:
            self.holdings[b, sell.owner][1] -= g
            self.holdings.setdefault((b, buy.owner), [0, 0])[0] += g
            sell.lots[b] -= g
        sell.lots = {b: g for b, g in sell.lots.items() if g}
        self.yen[buy.owner][1] -= value
        buy.escrow_sen -= value
        self.yen.setdefault(sell.owner, [0, 0])[0] += value
        sell.remaining_g -= quantity
        buy.remaining_g -= quantity
        self.trades.append(
            RTrade(
                buy.order_id,
                sell.order_id,
                buy.owner,
                sell.owner,
                sell.name_public,
                quantity,
                price,
                value,
                draws,
            )
        )
        for order in (sell, buy):
            if order.remaining_g == 0:
                self.close(order, "filled")

    def close(self, order: ROrder, status: str) -> None:
        if order.side == "sell":
            for b, g in order.lots.items():
                self.holdings[b, order.owner][1] -= g
                self.holdings[b, order.owner][0] += g
            order.lots = {}
        else:
            self.yen[order.owner][1] -= order.escrow_sen
            self.yen[order.owner][0] += order.escrow_sen
            order.escrow_sen = 0
        order.status = status
        if order in self.book:
            self.book.remove(order)

    def cancel(self, signer: str, order_id: str) -> Outcome:
        order = self.orders.get(order_id)
        if order is None:
            return Outcome.unknown_order
        if order.owner != signer:
            return Outcome.not_order_owner
        if order.status != "open":
            return Outcome.order_not_open
        self.close(order, "cancelled")
        return Outcome.ok

    def expire(self, time_ns: int) -> None:
        for order in list(self.book):
            if order.expires_at_ns and order.expires_at_ns <= time_ns:
                self.close(order, "expired")

    def apply(self, signer: str, action: tx.Action, time_ns: int) -> Outcome:
        if isinstance(action, tx.PlaceSellOrder):
            return self.place_sell(signer, action, time_ns)
        if isinstance(action, tx.PlaceBuyOrder):
            return self.place_buy(signer, action, time_ns)
        assert isinstance(action, tx.CancelOrder)
        return self.cancel(signer, action.order_id)


def take_oldest(lots: list[tuple[str, int]], quantity: int) -> list[tuple[str, int]]:
    draws, need = [], quantity
    for b, g in lots:
        take = min(need, g)
        if take:
            draws.append((b, take))
            need -= take
        if need == 0:
            break
    assert need == 0
    return draws


# ---- the ledger side ------------------------------------------------------------------------
def build_world(batches: list[tuple[str, str, int, bool]]) -> tuple[Ledger, Reference]:
    """Participants, devices, yen and the batches (device, day, g, estimated) in four blocks."""
    ledger = Ledger()
    ref = Reference()
    ok_block(
        ledger,
        *[("authority", register_action(p, Role.prosumer)) for p in SELLERS],
        *[("authority", register_action(p, Role.buyer)) for p in BUYERS],
        ("authority", register_action(TRADER, Role.buyer, Role.prosumer)),
        ("authority", register_action("mrv", Role.aggregator)),
        ("authority", register_action("bank", Role.settlement_agent)),
    )
    ok_block(
        ledger,
        *[
            (
                owner,
                device_action(
                    d,
                    owner=owner,
                    source=source,
                    prefecture_code=place[:2],
                    municipality_code=place,
                    commissioned_on=since,
                    capacity_w=1_000_000,
                ),
            )
            for d, (owner, source, place, since) in DEVICES.items()
        ],
    )
    ok_block(
        ledger,
        ("authority", factors.publish_action()),
        *[("authority", tx.ApproveDevice(d)) for d in DEVICES],
        *[("bank", deposit_action(a, sen)) for a, sen in DEPOSITS.items()],
    )
    ref.yen = {a: [sen, 0] for a, sen in DEPOSITS.items()}
    carry: dict[str, int] = {}
    issues = []
    for device, day, grams, estimated in batches:
        owner, source, place, since = DEVICES[device]
        batch_id = f"{device}:{day}"
        wh, carry[device] = wh_for_g(grams, carry.get(device, 0))
        extra = dict(measured_intervals=47, estimated_intervals=1, estimated_wh=wh // 10)
        issues.append(
            ("mrv", issue_action(batch_id, day, wh, device, **(extra if estimated else {})))
        )
        start = day_start(day)
        ref.batches[batch_id] = RBatch(source, place, start, start + DAY_S, since, estimated)
        ref.holdings[batch_id, owner] = [grams, 0]
    if issues:
        ok_block(ledger, *issues)
    return ledger, ref


def compare(ledger: Ledger, ref: Reference, trades_before: int) -> None:
    state = ledger.app.state
    # the trades of the block
    got = [state.trade(i) for i in range(trades_before, len(ref.trades) + 1)]
    assert got[-1] is None, "the engine made more trades than the reference"
    engine = [
        RTrade(
            t.buy_order,
            t.sell_order,
            t.buyer,
            t.seller,
            t.seller_public,
            t.quantity_g,
            t.price_sen_per_kg,
            t.value_sen,
            [(d.batch_id, d.quantity_g) for d in t.lots],
        )
        for t in got[:-1]
        if t is not None
    ]
    assert engine == ref.trades[trades_before:]
    # both books, in priority order, with what each order holds
    sells = sorted(state.book.sells.values(), key=lambda o: (o.price_sen_per_kg, o.seq))
    buys = sorted(state.book.buys.values(), key=lambda o: (-o.price_sen_per_kg, o.seq))
    assert [
        (
            o.order_id,
            o.owner,
            o.remaining_g,
            o.price_sen_per_kg,
            o.seq,
            o.all_or_none,
            [(x.batch_id, x.quantity_g) for x in o.lots],
        )
        for o in sells
    ] == [
        (
            o.order_id,
            o.owner,
            o.remaining_g,
            o.price,
            o.seq,
            o.aon,
            list(o.lots.items()),
        )
        for o in ref.resting("sell")
    ]
    assert [
        (o.order_id, o.owner, o.remaining_g, o.price_sen_per_kg, o.seq, o.all_or_none, o.escrow_sen)
        for o in buys
    ] == [
        (o.order_id, o.owner, o.remaining_g, o.price, o.seq, o.aon, o.escrow_sen)
        for o in ref.resting("buy")
    ]
    # every order's status, and every balance
    for order_id, order in ref.orders.items():
        record = state.sell_order(order_id) if order.side == "sell" else state.buy_order(order_id)
        assert record is not None, order_id
        assert (record.status.value, record.remaining_g) == (order.status, order.remaining_g)
    for (batch_id, holder), (tradable, escrowed) in ref.holdings.items():
        holding = state.holding(batch_id, holder)
        assert holding is not None
        assert (holding.tradable_g, holding.escrowed_g) == (tradable, escrowed), (batch_id, holder)
    for account, (available, escrowed) in ref.yen.items():
        yen = state.yen(account)
        assert yen is not None
        assert (yen.available_sen, yen.escrowed_sen) == (available, escrowed), account


# ---- what Hypothesis draws ------------------------------------------------------------------
BATCHES = st.lists(
    st.tuples(
        st.sampled_from(sorted(DEVICES)),
        st.sampled_from(DAYS),
        st.integers(500, 5_000),
        st.integers(0, 4).map(lambda i: i == 0),
    ),
    min_size=4,
    max_size=14,
    unique_by=lambda b: (b[0], b[1]),
)
PRICE = st.integers(1, 10).map(lambda yen: yen * 100)  # sen per kg
QUANTITY = st.one_of(st.integers(1, 4).map(lambda kg: kg * 1_000), st.integers(1, 4_000))
ROUND = st.integers(1, 3).map(lambda kg: kg * 1_000)
SOME = st.integers(0, 3)  # whether a condition is set (one time in four)


@dataclass(frozen=True)
class Style:
    """How an example draws. "round" examples use whole kilograms (1-3 kg), all-or-none one
    time in two and no conditions, and sometimes a squeeze (see ``draw_squeeze``)."""

    round_sizes: bool

    def aon(self, data: st.DataObject) -> bool:
        return data.draw(st.integers(0, 1 if self.round_sizes else 3)) == 0


@dataclass(frozen=True)
class Fixed:
    """What a squeeze fixes of an order (None: drawn as usual)."""

    grams: int | None = None
    aon: bool | None = None
    price: int | None = None


FREE = Fixed()


def quantity(
    data: st.DataObject, ref: Reference, usual: st.SearchStrategy[int], style: Style
) -> int:
    """Usually ``usual``; one time in three exactly what a resting order has left, so that
    orders of one size meet (all-or-none orders trade only so)."""
    if ref.book and data.draw(st.integers(0, 2)) == 0:
        return data.draw(st.sampled_from(sorted(o.remaining_g for o in ref.book)))
    return data.draw(ROUND if style.round_sizes else usual)


def maybe_expiry(data: st.DataObject, block_time_ns: int) -> int:
    """Mostly good until cancelled; else an instant around the coming blocks."""
    if data.draw(st.integers(0, 3)) > 0:
        return 0
    return block_time_ns + data.draw(st.integers(-1, 40)) * S


def draw_sell(
    data: st.DataObject,
    ref: Reference,
    order_id: str,
    time_ns: int,
    style: Style,
    fixed: Fixed = FREE,
) -> tuple[str, tx.Action]:
    need = fixed.grams or 1
    held = sorted(key for key, h in ref.holdings.items() if h[0] >= need)
    if held and data.draw(st.integers(0, 4)) > 0:  # mostly a listing that can be filled
        batch_id, owner = data.draw(st.sampled_from(held))
        batch = ref.batches[batch_id]
        source = batch.source
        place = data.draw(st.sampled_from([batch.municipality, batch.municipality[:2]]))
        sellable = sum(
            h[0]
            for (b, holder), h in ref.holdings.items()
            if holder == owner
            and ref.batches[b].source is source
            and contains(place, ref.batches[b].municipality)
        )
        usual: st.SearchStrategy[int] = st.integers(1, sellable + 100)
    else:
        owner = data.draw(st.sampled_from([*SELLERS, TRADER, *BUYERS]))
        source = data.draw(st.sampled_from(SOURCES))
        place = data.draw(st.sampled_from(PLACES))
        usual = QUANTITY
    grams = fixed.grams if fixed.grams is not None else quantity(data, ref, usual, style)
    buyers = (
        data.draw(st.lists(st.sampled_from([*BUYERS, TRADER]), max_size=2, unique=True))
        if not style.round_sizes and data.draw(SOME) == 0
        else []
    )
    return owner, tx.PlaceSellOrder(
        order_id,
        grams,
        style.aon(data) if fixed.aon is None else fixed.aon,
        data.draw(PRICE) if fixed.price is None else fixed.price,
        source,
        place,
        data.draw(st.booleans()),
        buyers,
        maybe_expiry(data, time_ns),
    )


def draw_buy(
    data: st.DataObject,
    ref: Reference,
    order_id: str,
    time_ns: int,
    style: Style,
    fixed: Fixed = FREE,
) -> tuple[str, tx.Action]:
    owner = data.draw(st.sampled_from([*BUYERS, TRADER]))

    def some(values: list[object]) -> list[object]:
        if style.round_sizes or data.draw(SOME) > 0:
            return []
        return data.draw(st.lists(st.sampled_from(values), min_size=1, max_size=2, unique=True))

    def sometimes(values: list[str]) -> str:
        if style.round_sizes or data.draw(SOME) > 0:
            return ""
        return data.draw(st.sampled_from(values))

    period_from = day_start(day) if (day := sometimes(DAYS)) else 0
    period_to = day_start(day) if (day := sometimes(DAYS)) else 0
    if period_from and period_to <= period_from:
        period_to = 0
    conditions = BuyConditions(
        some([*PEOPLE]),  # type: ignore[arg-type]
        some(PLACES),  # type: ignore[arg-type]
        some(SOURCES),  # type: ignore[arg-type]
        period_from,
        period_to,
        sometimes(COMMISSIONED_AFTER),
        not style.round_sizes and data.draw(st.integers(0, 4)) == 0,
    )
    grams = fixed.grams if fixed.grams is not None else quantity(data, ref, QUANTITY, style)
    return owner, tx.PlaceBuyOrder(
        order_id,
        grams,
        style.aon(data) if fixed.aon is None else fixed.aon,
        data.draw(PRICE) if fixed.price is None else fixed.price,
        conditions,
        maybe_expiry(data, time_ns),
    )


def draw_cancel(data: st.DataObject, ref: Reference) -> tuple[str, tx.Action]:
    ids = sorted(ref.orders)
    if not ids or data.draw(st.integers(0, 9)) == 0:
        return data.draw(st.sampled_from(PEOPLE)), tx.CancelOrder("nobody-placed-this")
    order = ref.orders[data.draw(st.sampled_from(ids))]
    signer = order.owner if data.draw(st.integers(0, 4)) > 0 else data.draw(st.sampled_from(PEOPLE))
    return signer, tx.CancelOrder(order.order_id)


def draw_squeeze(data: st.DataObject) -> tuple[str, list[Fixed]]:
    """Three orders where an all-or-none order meets, first, a better order too small for it
    and then an all-or-none order of exactly its size: the walk alone cannot fill it.

    sell side: S1 small at a low price, S2 all-or-none X at a higher one, then B all-or-none X
    at a limit at or above S2's (and the mirror image with buys resting, a sell arriving)."""
    whole = data.draw(st.integers(2, 3)) * 1_000
    small = data.draw(st.integers(1, whole - 1))
    low, high = sorted(data.draw(st.lists(st.integers(1, 10), min_size=2, max_size=2)))
    first, second = ("sell", "buy") if data.draw(st.booleans()) else ("buy", "sell")
    if first == "sell":  # sells rest, a buy arrives
        resting = [Fixed(small, False, low * 100), Fixed(whole, True, high * 100)]
        arriving = Fixed(whole, True, data.draw(st.integers(high, 10)) * 100)
    else:  # buys rest, a sell arrives
        resting = [Fixed(small, False, high * 100), Fixed(whole, True, low * 100)]
        arriving = Fixed(whole, True, data.draw(st.integers(1, low)) * 100)
    return first + "," + first + "," + second, [*resting, arriving]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batches=BATCHES, data=st.data())
def test_the_indexed_book_matches_the_brute_force_reference(
    batches: list[tuple[str, str, int, bool]], data: st.DataObject
) -> None:
    ledger, ref = build_world(batches)
    style = Style(data.draw(st.booleans(), label="round sizes"))
    kinds = ["sell", "sell", "buy", "buy", "buy", "cancel"] + (
        ["squeeze"] if style.round_sizes else []
    )
    placed = 0
    for _ in range(data.draw(st.integers(1, 12), label="blocks")):
        advance_s = data.draw(st.sampled_from([1, 5, 10, 20, 30]), label="advance")
        time_ns = ledger.time_ns + advance_s * S
        ref.expire(time_ns)
        trades_before = len(ref.trades)
        submitted: list[tuple[str, tx.Action]] = []
        expected: list[Outcome] = []
        for _ in range(data.draw(st.integers(0, 6), label="transactions")):
            kind = data.draw(st.sampled_from(kinds))
            if kind == "squeeze":
                sides, fixes = draw_squeeze(data)
                plan = list(zip(sides.split(","), fixes, strict=True))
                event("squeeze")
            else:
                plan = [(kind, FREE)]
            for side, fixed in plan:
                if side == "cancel":
                    signer, action = draw_cancel(data, ref)
                else:
                    reuse = ref.orders and data.draw(st.integers(0, 19)) == 0
                    order_id = (
                        data.draw(st.sampled_from(sorted(ref.orders))) if reuse else (f"o{placed}")
                    )
                    placed += 1
                    draw = draw_sell if side == "sell" else draw_buy
                    signer, action = draw(data, ref, order_id, time_ns, style, fixed)
                expected.append(ref.apply(signer, action, time_ns))
                submitted.append((signer, action))
        result = ledger.block([ledger.sign(s, a) for s, a in submitted], advance_s=advance_s)
        assert [r.code for r in result.results] == [o.value for o in expected]
        compare(ledger, ref, trades_before)
        for outcome in expected:
            event(f"outcome {outcome.value}")
    event(f"trades {min(len(ref.trades), 10)}{'+' if len(ref.trades) >= 10 else ''}")
    event(f"expired {sum(o.status == 'expired' for o in ref.orders.values()) > 0}")
