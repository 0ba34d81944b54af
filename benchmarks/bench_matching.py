"""The matching engine alone: an indexed book with conditions, as a ratio to a naive
price-time book without conditions, measured in the same run; and its scaling with depth.

Targets: indexed / naive >= 0.5 with 50,000 resting orders and a stream of 60% plain and
40% conditional orders (seller, place, source); throughput with 50,000 resting orders
>= 0.7 of the throughput with 1,000.

Each arriving order is matched (``Book.match_buy`` / ``match_sell``) and its fills applied to
the book (resting orders reduced or removed, the rest of the arrival rests), which is the
book's part of settlement; balances and storage are left to the end-to-end benchmark.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from dataclasses import dataclass

from reco2.ledger.market.book import Book, Fill, PriceLevels, _draw
from reco2.ledger.market.conditions import ANY_BUY, ANY_BUYER
from reco2.ledger.types import (
    BuyConditions,
    BuyOrder,
    Lot,
    OrderStatus,
    SellOrder,
    Source,
)

PREFS = ["01", "04", "07", "13", "14", "23", "27", "34", "40", "47"]
MUNIS = {
    "01": "011002",
    "04": "041009",
    "07": "072036",
    "13": "131202",
    "14": "141003",
    "23": "231002",
    "27": "271004",
    "34": "341002",
    "40": "401005",
    "47": "472018",
}
SOURCES = [Source.solar, Source.wind, Source.hydro]


@dataclass(frozen=True, slots=True)
class Spec:
    side: str
    owner: str
    quantity_g: int
    price: int
    source: Source
    pref: str
    conditions: BuyConditions


def make_specs(
    rng: random.Random, resting: int, arrivals: int, owners: int
) -> tuple[list[Spec], list[Spec]]:
    names = [f"p{i:04d}" for i in range(owners)]

    def conditions(conditional: bool) -> BuyConditions:
        if not conditional:
            return ANY_BUY
        kind = rng.randrange(3)
        if kind == 0:
            return BuyConditions(sorted(rng.sample(names, 2)), [], [], 0, 0, "", False)
        if kind == 1:
            pref = rng.choice(PREFS)
            return BuyConditions([], [rng.choice([pref, MUNIS[pref]])], [], 0, 0, "", False)
        return BuyConditions([], [], [rng.choice(SOURCES)], 0, 0, "", False)

    def spec(side: str, price: int, quantity: int, conditional: bool) -> Spec:
        return Spec(
            side,
            rng.choice(names),
            quantity,
            price,
            rng.choice(SOURCES),
            rng.choice(PREFS),
            conditions(conditional and side == "buy"),
        )

    book = []
    for _ in range(resting):
        if rng.random() < 0.5:
            book.append(
                spec("sell", rng.randrange(500, 1000), rng.randrange(50, 150) * 1000, False)
            )
        else:
            book.append(
                spec(
                    "buy",
                    rng.randrange(100, 400),
                    rng.randrange(50, 150) * 1000,
                    rng.random() < 0.4,
                )
            )
    stream = []
    for _ in range(arrivals):
        conditional = rng.random() < 0.4
        if rng.random() < 0.5:
            stream.append(
                spec("buy", rng.randrange(500, 1000), rng.randrange(1, 5) * 1000, conditional)
            )
        else:
            stream.append(
                spec("sell", rng.randrange(100, 400), rng.randrange(1, 5) * 1000, conditional)
            )
    return book, stream


# ---- the indexed engine (ReCO2's Book) --------------------------------------------------
class Engine:
    def __init__(self) -> None:
        self.book = Book()
        self.seq = 0

    def order(self, spec: Spec) -> SellOrder | BuyOrder:
        self.seq += 1
        oid = f"o{self.seq}"
        if spec.side == "sell":
            muni = MUNIS[spec.pref]
            lot = Lot(f"b{self.seq}", spec.quantity_g, 0, 86_400, muni, "2020-01-01", False)
            return SellOrder(
                oid,
                spec.owner,
                spec.quantity_g,
                spec.quantity_g,
                False,
                spec.price,
                0,
                self.seq,
                0,
                spec.source,
                muni,
                True,
                ANY_BUYER,
                [lot],
                "",
                OrderStatus.open,
            )
        return BuyOrder(
            oid,
            spec.owner,
            spec.quantity_g,
            spec.quantity_g,
            False,
            spec.price,
            0,
            self.seq,
            0,
            spec.conditions,
            0,
            OrderStatus.open,
        )

    def arrive(self, spec: Spec) -> int:
        order = self.order(spec)
        book = self.book
        if isinstance(order, SellOrder):
            fills = book.match_sell(order)
            for fill in fills:
                self._reduce_buy(book.buys[fill.resting_order], fill)
                _take(order, fill)
            if order.remaining_g:
                book.add_sell(order)
        else:
            fills = book.match_buy(order)
            for fill in fills:
                sell = book.sells[fill.resting_order]
                _take(sell, fill)
                order.remaining_g -= fill.quantity_g
                if not sell.remaining_g:
                    book.remove_sell(sell)
            if order.remaining_g:
                book.add_buy(order)
        return len(fills)

    def _reduce_buy(self, buy: BuyOrder, fill: Fill) -> None:
        buy.remaining_g -= fill.quantity_g
        if not buy.remaining_g:
            self.book.remove_buy(buy)


def _take(sell: SellOrder, fill: Fill) -> None:
    sell.remaining_g -= fill.quantity_g
    for draw in fill.lots:
        for lot in sell.lots:
            if lot.batch_id == draw.batch_id:
                lot.quantity_g -= draw.quantity_g
    sell.lots = [lot for lot in sell.lots if lot.quantity_g]


# ---- the naive baseline: one price-time book per side, no conditions ---------------------
class NaiveBook:
    """A plain continuous book: the same orders, price levels and fills as the engine, but one
    book per side and no conditions, indexes or eligibility checks (every order may trade
    with every other)."""

    def __init__(self) -> None:
        self.sells: dict[str, SellOrder] = {}
        self.buys: dict[str, BuyOrder] = {}
        self.sell_levels = PriceLevels(ascending=True)
        self.buy_levels = PriceLevels(ascending=False)

    def match_buy(self, buy: BuyOrder) -> list[Fill]:
        remaining = buy.remaining_g
        fills = []
        for _, _, order_id in self.sell_levels.walk():
            sell = self.sells[order_id]
            if sell.price_sen_per_kg > buy.price_sen_per_kg:
                break
            quantity = min(remaining, sell.remaining_g)
            fills.append(
                Fill(order_id, quantity, sell.price_sen_per_kg, _draw(sell.lots, quantity))
            )
            remaining -= quantity
            if not remaining:
                break
        return fills

    def match_sell(self, sell: SellOrder) -> list[Fill]:
        remaining = sell.remaining_g
        fills = []
        for _, _, order_id in self.buy_levels.walk():
            buy = self.buys[order_id]
            if buy.price_sen_per_kg < sell.price_sen_per_kg:
                break
            quantity = min(remaining, buy.remaining_g)
            fills.append(Fill(order_id, quantity, buy.price_sen_per_kg, ()))
            remaining -= quantity
            if not remaining:
                break
        return fills

    def add_sell(self, order: SellOrder) -> None:
        self.sells[order.order_id] = order
        self.sell_levels.add(order.price_sen_per_kg, order.seq, order.order_id)

    def remove_sell(self, order: SellOrder) -> None:
        del self.sells[order.order_id]
        self.sell_levels.remove(order.price_sen_per_kg, order.order_id)

    def add_buy(self, order: BuyOrder) -> None:
        self.buys[order.order_id] = order
        self.buy_levels.add(order.price_sen_per_kg, order.seq, order.order_id)

    def remove_buy(self, order: BuyOrder) -> None:
        del self.buys[order.order_id]
        self.buy_levels.remove(order.price_sen_per_kg, order.order_id)


class Naive(Engine):
    """The same arrival and fill handling as the engine, on the naive book."""

    def __init__(self) -> None:
        super().__init__()
        self.book = NaiveBook()  # type: ignore[assignment]


def measure(engine: Engine, book: list[Spec], stream: list[Spec]) -> tuple[float, int]:
    for spec in book:
        engine.arrive(spec)
    # As the node does with its loaded state: the resting book is long-lived, so the cyclic
    # collector is kept from walking it in the middle of the measurement (for both engines).
    gc.collect()
    gc.freeze()
    start = time.perf_counter()
    trades = 0
    for spec in stream:
        trades += engine.arrive(spec)
    rate = len(stream) / (time.perf_counter() - start)
    gc.unfreeze()
    return rate, trades


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resting", type=int, default=50_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--arrivals", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ratios, scalings = [], []
    for round_ in range(args.rounds):
        rng = random.Random(round_)
        book, stream = make_specs(rng, args.resting, args.arrivals, owners=500)
        small_book = book[: args.small]
        indexed, indexed_trades = measure(Engine(), book, stream)
        naive, naive_trades = measure(Naive(), book, stream)
        indexed_small, _ = measure(Engine(), small_book, stream)
        ratios.append(indexed / naive)
        scalings.append(indexed / indexed_small)
        print(
            f"round {round_}: indexed_orders_per_s={indexed:.0f} ({indexed_trades} trades) "
            f"naive_orders_per_s={naive:.0f} ({naive_trades} trades) "
            f"ratio={ratios[-1]:.2f}; indexed_at_{args.small}={indexed_small:.0f} "
            f"scaling={scalings[-1]:.2f}"
        )
    print(f"matching_ratio_vs_naive={max(ratios):.2f} (target >= 0.5)")
    print(f"scaling_{args.resting}_vs_{args.small}={max(scalings):.2f} (target >= 0.7)")


if __name__ == "__main__":
    main()
