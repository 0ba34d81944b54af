"""The order book: resting orders indexed by the conditions, and matching.

Matching walks only the resting orders that can be eligible for the arriving order, in
price-time priority (price, then position in the ledger), through indexes chosen by the
conditions, and stops at the first price that no longer crosses. It reads the book and returns
fills; ``settlement`` applies them.

Indexes
- sell orders: all; by seller; by (source, prefecture); by source; by prefecture.
  A buy with sellers walks its sellers' books; else with sources and places the
  (source, prefecture) books; else with places the prefecture books; else with sources the
  source books; else the whole book.
- buy orders are kept in one class each: those naming sellers, by each seller; else those
  naming places, by each prefecture of their places; else those naming sources, by source;
  else unconditional. An arriving sell walks the four books that can hold eligible buys: its
  seller's, its prefecture's, its source's and the unconditional one, merged in priority.
Each order sits in exactly one book of any walk, so merged walks never repeat an order.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from reco2.ledger.market.conditions import accepts_any_lot, accepts_lot, may_trade
from reco2.ledger.types import BuyConditions, BuyOrder, Lot, LotDraw, SellOrder, Source

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade the matcher decided: with which resting order, how much, at what price, and
    which batches the value comes from (oldest first)."""

    resting_order: str
    quantity_g: int
    price_sen_per_kg: int
    lots: tuple[LotDraw, ...]


class PriceLevels:
    """One side's orders under one index key: price levels, each in ledger order."""

    __slots__ = ("_levels", "_prices", "_sign")

    def __init__(self, ascending: bool) -> None:
        self._sign = 1 if ascending else -1
        self._prices: list[int] = []  # sort keys (price x sign), ascending
        self._levels: dict[int, dict[str, int]] = {}  # sort key -> {order id: seq}

    def add(self, price: int, seq: int, order_id: str) -> None:
        key = price * self._sign
        level = self._levels.get(key)
        if level is None:
            level = self._levels[key] = {}
            bisect.insort(self._prices, key)
        level[order_id] = seq

    def remove(self, price: int, order_id: str) -> None:
        key = price * self._sign
        level = self._levels[key]
        del level[order_id]
        if not level:
            del self._levels[key]
            del self._prices[bisect.bisect_left(self._prices, key)]

    def walk(self) -> Iterator[tuple[int, int, str]]:
        """(sort key, seq, order id) in priority order. The book must not change meanwhile."""
        levels = self._levels
        for key in self._prices:
            for order_id, seq in levels[key].items():
                yield key, seq, order_id

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels.values())

    def __bool__(self) -> bool:
        return bool(self._prices)

    def peek(self) -> tuple[int, int, str] | None:
        """The first order in priority, without walking."""
        if not self._prices:
            return None
        key = self._prices[0]
        level = self._levels[key]
        order_id = next(iter(level))
        return key, level[order_id], order_id


def _best(books: list[PriceLevels]) -> str | None:
    """The first order in priority across several books."""
    heads = [head for book in books if (head := book.peek()) is not None]
    return min(heads)[2] if heads else None


def _merged(books: list[PriceLevels]) -> Iterator[tuple[int, int, str]]:
    """Walk several books as one, in priority order (a k-way merge for small k)."""
    if not books:
        return
    if len(books) == 1:
        yield from books[0].walk()
        return
    heap: list[tuple[tuple[int, int, str], int, Iterator[tuple[int, int, str]]]] = []
    for i, book in enumerate(books):
        walk = book.walk()
        head = next(walk, None)
        if head is not None:
            heap.append((head, i, walk))
    heapq.heapify(heap)
    while heap:
        head, i, walk = heap[0]
        yield head
        following = next(walk, None)
        if following is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (following, i, walk))


class Book:
    """Resting orders of both sides with their indexes (derived state, rebuilt on load)."""

    def __init__(self) -> None:
        self.sells: dict[str, SellOrder] = {}
        self.buys: dict[str, BuyOrder] = {}
        self._sell_all = PriceLevels(ascending=True)
        self._sell_by_seller: dict[str, PriceLevels] = {}
        self._sell_by_source_pref: dict[tuple[Source, str], PriceLevels] = {}
        self._sell_by_source: dict[Source, PriceLevels] = {}
        self._sell_by_pref: dict[str, PriceLevels] = {}
        self._buy_plain = PriceLevels(ascending=False)
        self._buy_by_seller: dict[str, PriceLevels] = {}
        self._buy_by_pref: dict[str, PriceLevels] = {}
        self._buy_by_source: dict[Source, PriceLevels] = {}
        self._expiry: list[tuple[int, int, str]] = []  # (expires at [ns], seq, order id)

    # ---- maintenance ------------------------------------------------------------------
    def _sell_books(self, order: SellOrder) -> list[PriceLevels]:
        pref = order.place[:2]
        return [
            self._sell_all,
            _book(self._sell_by_seller, order.owner, ascending=True),
            _book(self._sell_by_source_pref, (order.source, pref), ascending=True),
            _book(self._sell_by_source, order.source, ascending=True),
            _book(self._sell_by_pref, pref, ascending=True),
        ]

    def _buy_books(self, order: BuyOrder) -> list[PriceLevels]:
        cond = order.conditions
        if cond.sellers:
            return [_book(self._buy_by_seller, s, False) for s in sorted(set(cond.sellers))]
        if cond.places:
            prefs = sorted({p[:2] for p in cond.places})
            return [_book(self._buy_by_pref, p, False) for p in prefs]
        if cond.sources:
            return [_book(self._buy_by_source, r, False) for r in sorted(set(cond.sources))]
        return [self._buy_plain]

    def add_sell(self, order: SellOrder) -> None:
        assert order.order_id not in self.sells, "an order rests once"
        self.sells[order.order_id] = order
        for book in self._sell_books(order):
            book.add(order.price_sen_per_kg, order.seq, order.order_id)
        if order.expires_at_ns:
            heapq.heappush(self._expiry, (order.expires_at_ns, order.seq, order.order_id))

    def remove_sell(self, order: SellOrder) -> None:
        del self.sells[order.order_id]
        for book in self._sell_books(order):
            book.remove(order.price_sen_per_kg, order.order_id)

    def add_buy(self, order: BuyOrder) -> None:
        assert order.order_id not in self.buys, "an order rests once"
        self.buys[order.order_id] = order
        for book in self._buy_books(order):
            book.add(order.price_sen_per_kg, order.seq, order.order_id)
        if order.expires_at_ns:
            heapq.heappush(self._expiry, (order.expires_at_ns, order.seq, order.order_id))

    def remove_buy(self, order: BuyOrder) -> None:
        del self.buys[order.order_id]
        for book in self._buy_books(order):
            book.remove(order.price_sen_per_kg, order.order_id)

    def due_to_expire(self, time_ns: int) -> list[str]:
        """Resting orders whose expiry is at or before ``time_ns``, in expiry order."""
        due: list[str] = []
        while self._expiry and self._expiry[0][0] <= time_ns:
            _, _, order_id = heapq.heappop(self._expiry)
            if order_id in self.sells or order_id in self.buys:
                due.append(order_id)
        return due

    # ---- candidates -------------------------------------------------------------------
    def sell_candidates(self, conditions: BuyConditions) -> Iterator[SellOrder]:
        """Resting sells that may suit these conditions, in priority order (cheapest first)."""
        sells = self.sells
        for _, _, order_id in _merged(self._sell_books_for(conditions)):
            yield sells[order_id]

    def _sell_books_for(self, conditions: BuyConditions) -> list[PriceLevels]:
        books: list[PriceLevels]
        if conditions.sellers:
            books = [
                self._sell_by_seller[s]
                for s in set(conditions.sellers)
                if s in self._sell_by_seller
            ]
        elif conditions.sources and conditions.places:
            prefs = {p[:2] for p in conditions.places}
            books = [
                self._sell_by_source_pref[(r, p)]
                for r in set(conditions.sources)
                for p in prefs
                if (r, p) in self._sell_by_source_pref
            ]
        elif conditions.places:
            books = [
                self._sell_by_pref[p]
                for p in {p[:2] for p in conditions.places}
                if p in self._sell_by_pref
            ]
        elif conditions.sources:
            books = [
                self._sell_by_source[r]
                for r in set(conditions.sources)
                if r in self._sell_by_source
            ]
        else:
            books = [self._sell_all]
        return [book for book in books if book]

    def buy_candidates(self, sell: SellOrder) -> Iterator[BuyOrder]:
        """Resting buys that may accept this sell order, in priority order (dearest first)."""
        buys = self.buys
        for _, _, order_id in _merged(self._buy_books_for(sell)):
            yield buys[order_id]

    def _buy_books_for(self, sell: SellOrder) -> list[PriceLevels]:
        return [
            book
            for book in (
                self._buy_plain,
                self._buy_by_seller.get(sell.owner),
                self._buy_by_pref.get(sell.place[:2]),
                self._buy_by_source.get(sell.source),
            )
            if book
        ]

    # ---- matching ---------------------------------------------------------------------
    def match_buy(self, buy: BuyOrder) -> list[Fill]:
        """Fills for an arriving buy order against resting sells (nothing is changed).

        Fast path: when the first sell in priority alone fills the whole buy, that is the
        answer the full walk would give, found without walking."""
        books = self._sell_books_for(buy.conditions)
        first = _best(books)
        if first is not None:
            sell = self.sells[first]
            if sell.price_sen_per_kg > buy.price_sen_per_kg:
                return []
            if (
                not sell.all_or_none
                and sell.remaining_g >= buy.remaining_g
                and accepts_any_lot(buy.conditions)
                and may_trade(buy, sell)
            ):
                lots = _draw(sell.lots, buy.remaining_g)
                return [Fill(sell.order_id, buy.remaining_g, sell.price_sen_per_kg, lots)]
        return self._walk_buy(buy, books)

    def _walk_buy(self, buy: BuyOrder, books: list[PriceLevels]) -> list[Fill]:
        remaining = buy.remaining_g
        fills: list[Fill] = []
        any_lot = accepts_any_lot(buy.conditions)
        sells = self.sells
        for _, _, order_id in _merged(books):
            sell = sells[order_id]
            if sell.price_sen_per_kg > buy.price_sen_per_kg:
                break
            if not may_trade(buy, sell):
                continue
            eligible = (
                sell.lots
                if any_lot
                else [lot for lot in sell.lots if accepts_lot(buy.conditions, lot)]
            )
            quantity = min(remaining, sum(lot.quantity_g for lot in eligible))
            if quantity <= 0 or (sell.all_or_none and quantity < sell.remaining_g):
                continue
            fills.append(
                Fill(sell.order_id, quantity, sell.price_sen_per_kg, _draw(eligible, quantity))
            )
            remaining -= quantity
            if remaining == 0:
                break
        if buy.all_or_none and remaining > 0:
            return self._one_sell_fills_whole(buy)
        return fills

    def match_sell(self, sell: SellOrder) -> list[Fill]:
        """Fills for an arriving sell order against resting buys (nothing is changed).

        Fast path: when the first buy in priority alone takes the whole sell, that is the
        answer the full walk would give, found without walking."""
        books = self._buy_books_for(sell)
        first = _best(books)
        if first is not None:
            buy = self.buys[first]
            if buy.price_sen_per_kg < sell.price_sen_per_kg:
                return []
            if (
                buy.remaining_g >= sell.remaining_g
                and not (buy.all_or_none and buy.remaining_g > sell.remaining_g)
                and accepts_any_lot(buy.conditions)
                and may_trade(buy, sell)
            ):
                lots = tuple(LotDraw(lot.batch_id, lot.quantity_g) for lot in sell.lots)
                return [Fill(buy.order_id, sell.remaining_g, buy.price_sen_per_kg, lots)]
        return self._walk_sell(sell, books)

    def _walk_sell(self, sell: SellOrder, books: list[PriceLevels]) -> list[Fill]:
        remaining = sell.remaining_g
        left = [lot.quantity_g for lot in sell.lots]  # what this matching has not drawn yet
        fills: list[Fill] = []
        buys = self.buys
        for _, _, order_id in _merged(books):
            buy = buys[order_id]
            if buy.price_sen_per_kg < sell.price_sen_per_kg:
                break
            if not may_trade(buy, sell):
                continue
            if accepts_any_lot(buy.conditions):
                usable = [i for i in range(len(left)) if left[i]]
            else:
                usable = [
                    i
                    for i, lot in enumerate(sell.lots)
                    if left[i] and accepts_lot(buy.conditions, lot)
                ]
            quantity = min(remaining, buy.remaining_g, sum(left[i] for i in usable))
            if quantity <= 0 or (buy.all_or_none and quantity < buy.remaining_g):
                continue
            draws: list[LotDraw] = []
            need = quantity
            for i in usable:
                take = min(need, left[i])
                left[i] -= take
                need -= take
                draws.append(LotDraw(sell.lots[i].batch_id, take))
                if need == 0:
                    break
            fills.append(Fill(buy.order_id, quantity, buy.price_sen_per_kg, tuple(draws)))
            remaining -= quantity
            if remaining == 0:
                break
        if sell.all_or_none and remaining > 0:
            return self._one_buy_takes_whole(sell)
        return fills

    # An all-or-none order the walk could not fill whole (it met an all-or-none order larger
    # than what it had left) may still trade whole with one resting order alone: the first
    # such order in priority. Without this it would rest crossed with that order.
    def _one_sell_fills_whole(self, buy: BuyOrder) -> list[Fill]:
        for sell in self.sell_candidates(buy.conditions):
            if sell.price_sen_per_kg > buy.price_sen_per_kg:
                break
            if not may_trade(buy, sell):
                continue
            if sell.all_or_none and sell.remaining_g > buy.remaining_g:
                continue
            eligible = [lot for lot in sell.lots if accepts_lot(buy.conditions, lot)]
            if sum(lot.quantity_g for lot in eligible) >= buy.remaining_g:
                draws = _draw(eligible, buy.remaining_g)
                return [Fill(sell.order_id, buy.remaining_g, sell.price_sen_per_kg, draws)]
        return []

    def _one_buy_takes_whole(self, sell: SellOrder) -> list[Fill]:
        for buy in self.buy_candidates(sell):
            if buy.price_sen_per_kg < sell.price_sen_per_kg:
                break
            if not may_trade(buy, sell) or buy.remaining_g < sell.remaining_g:
                continue
            if buy.all_or_none and buy.remaining_g > sell.remaining_g:
                continue
            if all(accepts_lot(buy.conditions, lot) for lot in sell.lots):
                draws = tuple(LotDraw(lot.batch_id, lot.quantity_g) for lot in sell.lots)
                return [Fill(buy.order_id, sell.remaining_g, buy.price_sen_per_kg, draws)]
        return []


def _book(index: dict[K, PriceLevels], key: K, ascending: bool) -> PriceLevels:
    """The index's book for a key, made on first use."""
    book = index.get(key)
    if book is None:
        book = index[key] = PriceLevels(ascending)
    return book


def _draw(lots: list[Lot], quantity: int) -> tuple[LotDraw, ...]:
    draws: list[LotDraw] = []
    need = quantity
    for lot in lots:
        take = min(need, lot.quantity_g)
        if take:
            draws.append(LotDraw(lot.batch_id, take))
            need -= take
        if need == 0:
            break
    assert need == 0, "fills never exceed the eligible lots"
    return tuple(draws)
