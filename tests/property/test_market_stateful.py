"""The market as a state machine (DESIGN.md sections 5 and 7).

A Hypothesis RuleBasedStateMachine drives the real Application through signed transactions
gathered into blocks: sell and buy orders with random conditions, all-or-none and expiry,
cancels (by the owner or not), issuance of new value (listed at once where the device has a
standing sell rule), setting and cancelling sell rules, yen deposits and withdrawals,
retirements, and blocks whose time advances by random steps so that orders expire.

After every block the Ledger harness checks the DESIGN section 7 invariants (value and yen
conserved, escrow = open orders, book = open orders, no eligible pair of resting orders
crossed). Beside them this module keeps its own books from the transactions it sent and the
results it got back, and checks against the ledger:
- yen: deposited - withdrawn (summed here) = every account's available + escrowed; each
  account = its deposits - withdrawals - what it paid + what it was paid (from the trades);
- value: each batch's holdings add up to the grams issued (worked out here); each holder's
  share = issued to it + bought - sold; retired = what it retired;
- orders: remaining = placed - traded; a buy's escrow = floor(quantity x limit / 1000) - what
  it paid; an order whose expiry has come is expired unless it was filled or cancelled first,
  and no open order is past its expiry;
- trades: value = floor(g x price / 1000); no self-trade; the price is the earlier (resting)
  order's and within both limits; the buyer's conditions accept the listing and every batch
  drawn; the seller's buyers include the buyer; an all-or-none order trades whole in one
  transaction or not at all;
- sell rules: an issuance lists min(issued, cap - listed) while the rule is active, nothing
  once it is cancelled or the cap is reached.

RECO2_MARKET_STATEFUL_EXAMPLES sets the number of runs (default 60, up to 40 steps each).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule
from tests.support import (
    DAY_S,
    Ledger,
    day_start,
    device_action,
    issue_action,
    ok_block,
    register_action,
    wh_for_g,
)

from reco2 import factors
from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import BUY_ORDER, HOLDING, SELL_ORDER, TRADE, YEN
from reco2.ledger.types import (
    BuyConditions,
    BuyOrder,
    Holding,
    OrderStatus,
    Purpose,
    Role,
    SellOrder,
    Source,
    Trade,
    YenAccount,
)

EXAMPLES = int(os.environ.get("RECO2_MARKET_STATEFUL_EXAMPLES", "60"))
S = 10**9

PROSUMERS = ["p0", "p1"]
BUYERS = ["b0", "b1"]
TRADER = "t0"  # prosumer and buyer
PEOPLE = [*PROSUMERS, *BUYERS, TRADER]
DEVICES = {
    # device: owner, source, municipality, commissioned on
    "d0": ("p0", Source.solar, "131202", "2019-04-01"),
    "d1": ("p0", Source.wind, "072036", "2018-10-01"),
    "d2": ("p1", Source.solar, "131121", "2021-01-01"),
    "d3": ("t0", Source.hydro, "011002", "2020-07-15"),
}
FIRST_YEN = {"b0": 1_000_000, "b1": 20_000, "t0": 200_000}
PLACES = ["13", "131202", "131121", "07", "072036", "01", "011002"]
DAYS = [f"2025-06-{d:02d}" for d in range(1, 15)]

INDEX = st.integers(0, 10_000)
PRICE = st.integers(1, 10).map(lambda yen: yen * 100)
GRAMS = st.one_of(st.integers(1, 3).map(lambda kg: kg * 1_000), st.integers(1, 3_000))
AON = st.integers(0, 3).map(lambda i: i == 0)
RIGHT = st.integers(0, 5).map(lambda i: i > 0)  # mostly the signer who may
TAKER = st.booleans()  # aim at a resting order one time in two


SELL_ARGS: dict[str, st.SearchStrategy[Any]] = dict(
    index=INDEX,
    grams=GRAMS,
    price=PRICE,
    aon=AON,
    public=st.booleans(),
    wide=st.booleans(),
    expiry=st.integers(-1, 60),
    expires=st.integers(0, 3),
    buyers=st.lists(st.sampled_from([*BUYERS, TRADER]), max_size=2, unique=True),
    seller=st.sampled_from(PEOPLE),
    whole=st.booleans(),
    taker=TAKER,
)
BUY_ARGS: dict[str, st.SearchStrategy[Any]] = dict(
    buyer=st.sampled_from([*BUYERS, TRADER, "p0"]),
    grams=GRAMS,
    price=PRICE,
    aon=AON,
    sellers=st.lists(st.sampled_from(PEOPLE), max_size=2, unique=True),
    places=st.lists(st.sampled_from(PLACES), max_size=2, unique=True),
    sources=st.lists(st.sampled_from(list(Source)), max_size=2, unique=True),
    window=st.tuples(st.integers(0, 14), st.integers(0, 14)),
    commissioned=st.sampled_from([""] * 8 + ["2019-04-01", "2020-12-31"]),
    exclude_estimated=st.integers(0, 5),
    which=st.tuples(*[st.integers(0, 5)] * 4),
    expiry=st.integers(-1, 60),
    expires=st.integers(0, 3),
    taker=TAKER,
    index=INDEX,
)
#: The market every run opens with: a few orders of either side, in two blocks.
OPENING = st.lists(
    st.one_of(
        st.tuples(st.just("sell"), st.fixed_dictionaries(SELL_ARGS)),
        st.tuples(st.just("buy"), st.fixed_dictionaries(BUY_ARGS)),
    ),
    min_size=4,
    max_size=12,
)


def contains(outer: str, inner: str) -> bool:
    return outer == inner or (len(outer) == 2 and inner.startswith(outer))


@dataclass
class Placed:
    """An order as this module placed it (or as a sell rule listed it)."""

    side: str
    owner: str
    quantity_g: int
    price: int
    aon: bool
    expires_at_ns: int
    source: Source = Source.solar
    place: str = ""
    buyers: tuple[str, ...] = ()
    conditions: BuyConditions | None = None
    cancelled: bool = False


@dataclass
class Books:
    """What this module knows from what it sent and the codes it got back."""

    deposited: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    withdrawn: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    issued: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # batch: dev, owner, g
    retired: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    orders: dict[str, Placed] = field(default_factory=dict)
    rules: dict[str, dict[str, object]] = field(default_factory=dict)  # rule id: fields
    listed_by_rule: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    issued_days: set[tuple[str, str]] = field(default_factory=set)


class MarketMachine(RuleBasedStateMachine):
    ledger: Ledger
    books: Books

    @initialize(
        grams=st.lists(st.integers(1_000, 6_000), min_size=len(DEVICES), max_size=len(DEVICES)),
        opening=OPENING,
    )
    def world(self, grams: list[int], opening: list[tuple[str, dict[str, object]]]) -> None:
        """Participants and devices; each device has issued one day (2025-06-01), each buyer
        has yen, and the market opens with a few orders (so that every run trades)."""
        self.ledger = Ledger()
        self.books = Books()
        self.pending: list[tuple[str, tx.Action]] = []
        self.expect_grams: dict[str, int] = {}  # batch: g, for the pending block
        self.next_id = 0
        ok_block(
            self.ledger,
            *[("authority", register_action(p, Role.prosumer)) for p in PROSUMERS],
            *[("authority", register_action(p, Role.buyer)) for p in BUYERS],
            ("authority", register_action(TRADER, Role.buyer, Role.prosumer)),
            ("authority", register_action("mrv", Role.aggregator)),
            ("authority", register_action("bank", Role.settlement_agent)),
            ("authority", factors.publish_action()),
        )
        ok_block(
            self.ledger,
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
            self.ledger,
            *[("authority", tx.ApproveDevice(d)) for d in DEVICES],
            *[("bank", tx.DepositYen(a, sen, f"dep-{a}")) for a, sen in FIRST_YEN.items()],
        )
        first = []
        for device, g in zip(sorted(DEVICES), grams, strict=True):
            first.append(
                ("mrv", issue_action(f"{device}:{DAYS[0]}", DAYS[0], wh_for_g(g, 0)[0], device))
            )
            self.books.issued[f"{device}:{DAYS[0]}"] = (device, DEVICES[device][0], g)
            self.books.issued_days.add((device, DAYS[0]))
        ok_block(self.ledger, *first)
        for account, sen in FIRST_YEN.items():
            self.books.deposited[account] += sen
        half = len(opening) // 2
        for part in (opening[:half], opening[half:]):
            for side, args in part:
                (self.sell if side == "sell" else self.buy)(**args)
            self.end_block(10)

    # ---- helpers ------------------------------------------------------------------------
    def fresh_id(self, prefix: str) -> str:
        self.next_id += 1
        return f"{prefix}{self.next_id}"

    def holdings(self) -> list[tuple[str, str, Holding]]:
        state = self.ledger.app.state
        out = []
        for key, record in state.records_with_prefix(HOLDING):
            assert isinstance(record, Holding)
            batch_id, holder = key[len(HOLDING) :].decode().split("/", 1)
            out.append((batch_id, holder, record))
        return out

    # ---- rules: transactions go into the pending block ------------------------------------
    @rule(
        device=st.sampled_from(sorted(DEVICES)),
        day=st.sampled_from(DAYS),
        grams=st.integers(0, 5_000),
        estimated=st.booleans(),
    )
    def issue(self, device: str, day: str, grams: int, estimated: bool) -> None:
        if (device, day) in self.books.issued_days:
            return
        if any(isinstance(a, tx.IssueValue) and a.device_id == device for _, a in self.pending):
            return  # one issuance of a device per block: its carry is then known here
        carry = self.ledger.app.state.device(device).carry_mg  # type: ignore[union-attr]
        wh, _ = wh_for_g(grams, carry)
        fields = dict(measured_intervals=47, estimated_intervals=1, estimated_wh=wh // 10)
        action = issue_action(f"{device}:{day}", day, wh, device, **(fields if estimated else {}))
        self.books.issued_days.add((device, day))
        self.pending.append(("mrv", action))
        self.expect_grams[action.batch_id] = grams

    @rule(
        device=st.sampled_from(sorted(DEVICES)),
        price=PRICE,
        cap=st.integers(1, 8_000),
        public=st.booleans(),
        buyers=st.lists(st.sampled_from([*BUYERS, TRADER]), max_size=2, unique=True),
        right=RIGHT,
        signer=st.sampled_from(PEOPLE),
        reuse=INDEX,
    )
    def set_rule(
        self,
        device: str,
        price: int,
        cap: int,
        public: bool,
        buyers: list[str],
        right: bool,
        signer: str,
        reuse: int,
    ) -> None:
        owner = DEVICES[device][0] if right else signer
        rules = sorted(self.books.rules)
        rule_id = rules[reuse % len(rules)] if rules and reuse % 7 == 0 else self.fresh_id("r")
        self.pending.append(
            (
                owner,
                tx.SetSellRule(
                    rule_id, device, price, public, cap, buyers if reuse % 3 == 0 else []
                ),
            )
        )

    @rule(index=INDEX, right=RIGHT, signer=st.sampled_from(PEOPLE))
    def cancel_rule(self, index: int, right: bool, signer: str) -> None:
        if not self.books.rules:
            return
        rule_id = sorted(self.books.rules)[index % len(self.books.rules)]
        owner = str(self.books.rules[rule_id]["owner"])
        self.pending.append((owner if right else signer, tx.CancelSellRule(rule_id)))

    @rule(**SELL_ARGS)  # type: ignore[call-overload, untyped-decorator]  # **kwargs hide no target
    def sell(
        self,
        index: int,
        grams: int,
        price: int,
        aon: bool,
        public: bool,
        wide: bool,
        expiry: int,
        expires: int,
        buyers: list[str],
        seller: str,
        whole: bool,
        taker: bool,
    ) -> None:
        resting = sorted(self.ledger.app.state.book.buys.values(), key=lambda o: o.seq)
        if taker and resting:  # aim at a resting buy: its size, at most its price
            target = resting[index % len(resting)]
            grams, price = target.remaining_g, min(price, target.price_sen_per_kg)
        held = [(b, h) for b, h, r in self.holdings() if r.tradable_g > 0]
        if held:
            batch_id, seller = held[index % len(held)]
            batch = self.ledger.app.state.batch(batch_id)
            assert batch is not None
            source, place = (
                batch.source,
                batch.municipality_code[:2] if wide else (batch.municipality_code),
            )
            if whole:
                grams = self.ledger.app.state.holding(batch_id, seller).tradable_g  # type: ignore[union-attr]
        else:
            source, place = Source.solar, PLACES[index % len(PLACES)]
        expires_at = self.ledger.time_ns + expiry * S if expires == 0 else 0
        self.pending.append(
            (
                seller,
                tx.PlaceSellOrder(
                    self.fresh_id("s"),
                    grams,
                    aon,
                    price,
                    source,
                    place,
                    public,
                    buyers if index % 4 == 0 else [],
                    expires_at,
                ),
            )
        )

    @rule(**BUY_ARGS)  # type: ignore[call-overload, untyped-decorator]  # **kwargs hide no target
    def buy(
        self,
        buyer: str,
        grams: int,
        price: int,
        aon: bool,
        sellers: list[str],
        places: list[str],
        sources: list[Source],
        window: tuple[int, int],
        commissioned: str,
        exclude_estimated: int,
        which: tuple[int, ...],
        expiry: int,
        expires: int,
        taker: bool,
        index: int,
    ) -> None:
        """``which``: each of sellers, places, sources and the period window is set one time
        in six."""
        resting = sorted(self.ledger.app.state.book.sells.values(), key=lambda o: o.seq)
        if taker and resting:  # aim at a resting sell: its size, at least its price
            target = resting[index % len(resting)]
            grams, price = target.remaining_g, max(price, target.price_sen_per_kg)
        start, end = sorted(window)
        period_from = day_start(DAYS[start - 1]) if which[3] == 0 and start else 0
        period_to = day_start(DAYS[end - 1]) + DAY_S if which[3] == 0 and end else 0
        if period_from and period_to <= period_from:
            period_to = 0
        conditions = BuyConditions(
            sellers if which[0] == 0 else [],
            places if which[1] == 0 else [],
            sources if which[2] == 0 else [],
            period_from,
            period_to,
            commissioned,
            exclude_estimated == 0,
        )
        expires_at = self.ledger.time_ns + expiry * S if expires == 0 else 0
        self.pending.append(
            (buyer, tx.PlaceBuyOrder(self.fresh_id("b"), grams, aon, price, conditions, expires_at))
        )

    @rule(index=INDEX, right=RIGHT, signer=st.sampled_from(PEOPLE))
    def cancel(self, index: int, right: bool, signer: str) -> None:
        if not self.books.orders:
            return
        order_id = sorted(self.books.orders)[index % len(self.books.orders)]
        owner = self.books.orders[order_id].owner
        self.pending.append((owner if right else signer, tx.CancelOrder(order_id)))

    @rule(account=st.sampled_from([*BUYERS, TRADER]), sen=st.integers(1, 200_000))
    def deposit(self, account: str, sen: int) -> None:
        self.pending.append(("bank", tx.DepositYen(account, sen, self.fresh_id("dep"))))

    @rule(account=st.sampled_from(PEOPLE), part=st.integers(0, 4))
    def withdraw(self, account: str, part: int) -> None:
        record = self.ledger.app.state.yen(account)
        available = record.available_sen if record else 0
        amount = max(1, available * part // 3)  # sometimes more than available
        self.pending.append((account, tx.WithdrawYen(amount, "bank", self.fresh_id("wd"))))

    @rule(index=INDEX, part=st.integers(1, 3))
    def retire(self, index: int, part: int) -> None:
        held = [(b, h, r) for b, h, r in self.holdings() if r.tradable_g > 0]
        if not held:
            return
        batch_id, holder, record = held[index % len(held)]
        self.pending.append(
            (
                holder,
                tx.RetireValue(
                    self.fresh_id("ret"),
                    batch_id,
                    max(1, record.tradable_g * part // 3),
                    holder,
                    Purpose.offset,
                    "FY2025",
                    "",
                ),
            )
        )

    # ---- the block ----------------------------------------------------------------------
    @rule(advance_s=st.sampled_from([1, 5, 10, 30, 120]))
    def end_block(self, advance_s: int) -> None:
        submitted, self.pending = self.pending, []
        raws = [self.ledger.sign(signer, action) for signer, action in submitted]
        result = self.ledger.block(raws, advance_s=advance_s)  # checks the invariants
        for (signer, action), tx_result in zip(submitted, result.results, strict=True):
            self.record(signer, action, tx_result.code)
        self.expect_grams.clear()
        self.check_totals()
        self.check_orders()
        self.check_trades()
        self.check_rules()

    def teardown(self) -> None:
        if getattr(self, "pending", None):
            self.end_block(10)

    # ---- this module's books ----------------------------------------------------------
    def record(self, signer: str, action: tx.Action, code: str) -> None:
        b = self.books
        ok = code == Outcome.ok.value
        if isinstance(action, tx.IssueValue):
            if not ok:
                b.issued_days.discard((action.device_id, day_of(action.period_start_s)))
                return
            grams = self.expect_grams[action.batch_id]
            owner = DEVICES[action.device_id][0]
            b.issued[action.batch_id] = (action.device_id, owner, grams)
            self.check_rule_listing(action.batch_id, action.device_id, owner, grams)
        elif not ok:
            return
        elif isinstance(action, tx.DepositYen):
            b.deposited[action.account] += action.amount_sen
        elif isinstance(action, tx.WithdrawYen):
            b.withdrawn[signer] += action.amount_sen
        elif isinstance(action, tx.RetireValue):
            b.retired[action.batch_id, signer] += action.quantity_g
        elif isinstance(action, tx.SetSellRule):
            assert action.device_id not in {r["device"] for r in b.rules.values() if r["active"]}
            b.rules[action.rule_id] = {
                "owner": signer,
                "device": action.device_id,
                "price": action.price_sen_per_kg,
                "cap": action.cap_g,
                "buyers": tuple(action.buyers),
                "active": True,
            }
        elif isinstance(action, tx.CancelSellRule):
            b.rules[action.rule_id]["active"] = False
        elif isinstance(action, tx.PlaceSellOrder):
            b.orders[action.order_id] = Placed(
                "sell",
                signer,
                action.quantity_g,
                action.price_sen_per_kg,
                action.all_or_none,
                action.expires_at_ns,
                action.source,
                action.place,
                tuple(action.buyers),
            )
        elif isinstance(action, tx.PlaceBuyOrder):
            b.orders[action.order_id] = Placed(
                "buy",
                signer,
                action.quantity_g,
                action.price_sen_per_kg,
                action.all_or_none,
                action.expires_at_ns,
                conditions=action.conditions,
            )
        elif isinstance(action, tx.CancelOrder):
            b.orders[action.order_id].cancelled = True

    def check_rule_listing(self, batch_id: str, device: str, owner: str, grams: int) -> None:
        """A standing rule lists min(issued, cap - listed); a cancelled rule lists nothing."""
        b = self.books
        active = [rid for rid, r in b.rules.items() if r["active"] and r["device"] == device]
        state = self.ledger.app.state
        listed = [
            o
            for _, o in state.records_with_prefix(SELL_ORDER)
            if isinstance(o, SellOrder) and o.order_id.endswith("~" + batch_id)
        ]
        if not active:
            assert listed == [], "no active rule, no listing"
            return
        (rule_id,) = active
        r = b.rules[rule_id]
        quantity = min(grams, int(str(r["cap"])) - b.listed_by_rule[rule_id])
        if quantity <= 0:
            assert listed == [], "the cap is reached"
            return
        (order,) = listed
        assert order.order_id == f"{rule_id}~{batch_id}"
        assert (order.owner, order.quantity_g, order.price_sen_per_kg) == (
            owner,
            quantity,
            r["price"],
        )
        assert order.all_or_none is False and order.expires_at_ns == 0
        b.listed_by_rule[rule_id] += quantity
        _, source, place, _ = DEVICES[device]
        buyers = r["buyers"]
        assert isinstance(buyers, tuple)
        b.orders[order.order_id] = Placed(
            "sell", owner, quantity, order.price_sen_per_kg, False, 0, source, place, buyers
        )

    # ---- checks after every block --------------------------------------------------------
    def trades(self) -> list[Trade]:
        return [
            t for _, t in self.ledger.app.state.records_with_prefix(TRADE) if isinstance(t, Trade)
        ]

    def check_totals(self) -> None:
        state = self.ledger.app.state
        b = self.books
        trades = self.trades()
        paid: dict[str, int] = defaultdict(int)
        received: dict[str, int] = defaultdict(int)
        moved: dict[tuple[str, str], int] = defaultdict(int)  # (batch, holder): + in, - out
        for t in trades:
            paid[t.buyer] += t.value_sen
            received[t.seller] += t.value_sen
            for d in t.lots:
                moved[d.batch_id, t.buyer] += d.quantity_g
                moved[d.batch_id, t.seller] -= d.quantity_g
        # yen
        accounts = {
            key[len(YEN) :].decode(): r
            for key, r in state.records_with_prefix(YEN)
            if isinstance(r, YenAccount)
        }
        total = sum(r.available_sen + r.escrowed_sen for r in accounts.values())
        assert total == sum(b.deposited.values()) - sum(b.withdrawn.values())
        for account in set(accounts) | set(b.deposited) | set(received):
            r = accounts.get(account, YenAccount(0, 0))
            assert r.available_sen + r.escrowed_sen == (
                b.deposited[account] - b.withdrawn[account] - paid[account] + received[account]
            ), account
        # value
        per_batch: dict[str, int] = defaultdict(int)
        for batch_id, holder, h in self.holdings():
            share = h.tradable_g + h.escrowed_g + h.retired_g
            per_batch[batch_id] += share
            _, owner, grams = b.issued[batch_id]
            assert share == (grams if holder == owner else 0) + moved[batch_id, holder], (
                batch_id,
                holder,
            )
            assert h.retired_g == b.retired[batch_id, holder]
        for batch_id, (_, _, grams) in b.issued.items():
            assert per_batch[batch_id] == grams, batch_id

    def check_orders(self) -> None:
        state = self.ledger.app.state
        now = self.ledger.time_ns
        traded: dict[str, int] = defaultdict(int)
        paid: dict[str, int] = defaultdict(int)
        for t in self.trades():
            traded[t.buy_order] += t.quantity_g
            traded[t.sell_order] += t.quantity_g
            paid[t.buy_order] += t.value_sen
        escrowed_sen: dict[str, int] = defaultdict(int)
        for order_id, placed in self.books.orders.items():
            record: SellOrder | BuyOrder | None = (
                state.sell_order(order_id) if placed.side == "sell" else state.buy_order(order_id)
            )
            assert record is not None, order_id
            assert record.owner == placed.owner
            assert record.remaining_g == placed.quantity_g - traded[order_id], order_id
            if record.remaining_g == 0:
                assert record.status is OrderStatus.filled
            elif placed.cancelled:
                assert record.status is OrderStatus.cancelled
            elif placed.expires_at_ns and placed.expires_at_ns <= now:
                assert record.status is OrderStatus.expired, order_id
            else:
                assert record.status is OrderStatus.open, order_id
            if isinstance(record, BuyOrder) and record.status is OrderStatus.open:
                escrow = placed.quantity_g * placed.price // 1_000 - paid[order_id]
                assert record.escrow_sen == escrow, order_id
                escrowed_sen[placed.owner] += escrow
        for account in PEOPLE:
            r = state.yen(account)
            assert (r.escrowed_sen if r else 0) == escrowed_sen[account], account
        open_ids = {
            oid
            for _, o in state.records_with_prefix(SELL_ORDER)
            if isinstance(o, SellOrder) and o.status is OrderStatus.open
            for oid in [o.order_id]
        }
        open_ids |= {
            o.order_id
            for _, o in state.records_with_prefix(BUY_ORDER)
            if isinstance(o, BuyOrder) and o.status is OrderStatus.open
        }
        assert open_ids <= set(self.books.orders), "every order came from here or a rule"

    def check_rules(self) -> None:
        state = self.ledger.app.state
        for rule_id, r in self.books.rules.items():
            record = state.sell_rule(rule_id)
            assert record is not None
            assert (record.owner, record.device_id, record.active) == (
                r["owner"],
                r["device"],
                r["active"],
            )
            assert record.listed_g == self.books.listed_by_rule[rule_id] <= record.cap_g
        for device in DEVICES:
            active = [
                rid for rid, r in self.books.rules.items() if r["active"] and r["device"] == device
            ]
            found = state.sell_rule_of_device(device)
            assert ([found.rule_id] if found else []) == active, device

    def check_trades(self) -> None:
        state = self.ledger.app.state
        by_tx: dict[tuple[str, bytes], int] = defaultdict(int)
        for t in self.trades():
            sell, buy = self.books.orders[t.sell_order], self.books.orders[t.buy_order]
            assert (t.seller, t.buyer) == (sell.owner, buy.owner)
            assert t.buyer != t.seller, "no self-trade"
            assert t.value_sen == t.quantity_g * t.price_sen_per_kg // 1_000
            assert sell.price <= t.price_sen_per_kg <= buy.price
            sell_record, buy_record = state.sell_order(t.sell_order), state.buy_order(t.buy_order)
            assert sell_record is not None and buy_record is not None
            resting = sell if sell_record.seq < buy_record.seq else buy
            assert t.price_sen_per_kg == resting.price, "prints at the resting order's price"
            assert not sell.buyers or t.buyer in sell.buyers
            c = buy.conditions
            assert c is not None
            assert not c.sellers or t.seller in c.sellers
            assert not c.sources or sell.source in c.sources
            assert sum(d.quantity_g for d in t.lots) == t.quantity_g
            for d in t.lots:
                batch = state.batch(d.batch_id)
                assert batch is not None
                assert batch.source is sell.source and contains(sell.place, batch.municipality_code)
                device = state.device(batch.device_id)
                assert device is not None
                assert not c.places or any(contains(p, batch.municipality_code) for p in c.places)
                assert not c.period_from_s or batch.period_start_s >= c.period_from_s
                assert not c.period_to_s or batch.period_end_s <= c.period_to_s
                assert not c.commissioned_after or device.commissioned_on > c.commissioned_after
                assert not (c.exclude_estimated and batch.estimated_intervals > 0)
            by_tx[t.sell_order, t.tx_hash] += t.quantity_g
            by_tx[t.buy_order, t.tx_hash] += t.quantity_g
        for (order_id, _), grams in by_tx.items():
            if self.books.orders[order_id].aon:
                assert grams == self.books.orders[order_id].quantity_g, "all or none"


def day_of(start_s: int) -> str:
    for day in DAYS:
        if day_start(day) == start_s:
            return day
    raise AssertionError(start_s)


MarketMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
TestMarketMachine = MarketMachine.TestCase
