"""SetSellRule and CancelSellRule: a device's owner lists each new issuance of the device at a
minimum price, name shown or hidden, up to a cap; the listing happens inside the issuing
transaction, so new value meets the resting buys at once (DESIGN.md sections 4 and 5).

World (tests.support.market_world): moe owns nerima-moe (solar, Nerima 131202, commissioned
2019-04-01) and setagaya-moe; maru owns koriyama-wind; buyer and buyer2 have 1,000,000 sen.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import (
    Case,
    Ledger,
    attempt_market,
    book_of,
    buy_action,
    day_start,
    genesis,
    holding_of,
    issue_g,
    issue_g_action,
    market_world,
    run_case,
    sell_action,
    trades_of,
    yen_of,
)

from reco2.ledger import tx
from reco2.ledger.app import Application
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import Lot, OrderStatus, SellConditions, SellRule, Source
from reco2.views import market

YEN = 1_000_000
DAY_S = 86_400


def rule(
    rule_id: str = "r1",
    device_id: str = "nerima-moe",
    price: int = 300,
    name_public: bool = True,
    cap_g: int = 5_000,
    buyers: tuple[str, ...] = (),
) -> tx.SetSellRule:
    return tx.SetSellRule(rule_id, device_id, price, name_public, cap_g, list(buyers))


def run(case: Case) -> Ledger:
    ledger = market_world()
    if case.setup is not None:
        case.setup(ledger)
    attempt_market(ledger, case.signer, case.action, case.expected)
    if case.then is not None:
        case.then(ledger)
    return ledger


def r1_set(ledger: Ledger) -> None:
    ledger.ok("moe", rule())


def r1_cancelled(ledger: Ledger) -> None:
    r1_set(ledger)
    ledger.ok("moe", tx.CancelSellRule("r1"))


def moe_deactivated(ledger: Ledger) -> None:
    ledger.ok("moe", tx.DeactivateDevice("nerima-moe", "moved house"))


def stored(rule_id: str, expected: SellRule | None) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        assert ledger.app.state.sell_rule(rule_id) == expected

    return then


def device_rule(device_id: str, rule_id: str | None) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        found = ledger.app.state.sell_rule_of_device(device_id)
        assert (found.rule_id if found else None) == rule_id

    return then


def both(*checks: Callable[[Ledger], None]) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        for check in checks:
            check(ledger)

    return then


R1 = SellRule("r1", "moe", "nerima-moe", 300, True, SellConditions([]), 5_000, 0, True)
NO_R1 = both(stored("r1", None), device_rule("nerima-moe", None))

SET_CASES = [
    Case(
        "ok",
        "moe",
        rule(),
        Outcome.ok,
        then=both(stored("r1", R1), device_rule("nerima-moe", "r1")),
    ),
    Case(
        "ok hidden, for some buyers",
        "moe",
        rule(name_public=False, buyers=("buyer2", "buyer")),
        Outcome.ok,
        then=stored(
            "r1",
            SellRule(
                "r1",
                "moe",
                "nerima-moe",
                300,
                False,
                SellConditions(["buyer", "buyer2"]),
                5_000,
                0,
                True,
            ),
        ),
    ),
    Case(
        "ok another device of the owner",
        "moe",
        rule("r2", "setagaya-moe"),
        Outcome.ok,
        setup=r1_set,
        then=both(device_rule("nerima-moe", "r1"), device_rule("setagaya-moe", "r2")),
    ),
    Case(
        "ok a new rule after the old one was cancelled",
        "moe",
        rule("r2"),
        Outcome.ok,
        setup=r1_cancelled,
        then=device_rule("nerima-moe", "r2"),
    ),
    # fields
    Case("zero price", "moe", rule(price=0), Outcome.price_must_be_positive, then=NO_R1),
    Case("negative price", "moe", rule(price=-300), Outcome.price_must_be_positive),
    Case("absurd price", "moe", rule(price=10_000_001), Outcome.amount_too_large),
    Case("zero cap", "moe", rule(cap_g=0), Outcome.quantity_must_be_positive, then=NO_R1),
    Case("negative cap", "moe", rule(cap_g=-1), Outcome.quantity_must_be_positive),
    Case("absurd cap", "moe", rule(cap_g=10**15 + 1), Outcome.amount_too_large),
    Case(
        "buyer named twice",
        "moe",
        rule(buyers=("buyer", "buyer")),
        Outcome.invalid_conditions,
        then=NO_R1,
    ),
    Case("bad buyer id", "moe", rule(buyers=("bu yer",)), Outcome.invalid_id),
    Case("bad rule id", "moe", rule("r 1"), Outcome.invalid_id),
    Case("rule id with the order separator", "moe", rule("r~1"), Outcome.invalid_id),
    Case("bad device id", "moe", rule(device_id="nerima moe"), Outcome.invalid_id),
    # against state
    Case("unknown device", "moe", rule(device_id="nowhere-pv"), Outcome.unknown_device, then=NO_R1),
    Case("a buyer, for moe's device", "buyer", rule(), Outcome.not_device_owner, then=NO_R1),
    Case("another prosumer", "maekawa", rule(), Outcome.not_device_owner, then=NO_R1),
    Case("the device's aggregator", "mrv", rule(), Outcome.not_device_owner, then=NO_R1),
    Case("the authority", "authority", rule(), Outcome.not_device_owner),
    Case(
        "a deactivated device",
        "moe",
        rule(),
        Outcome.device_not_active,
        setup=moe_deactivated,
        then=both(stored("r1", None), device_rule("nerima-moe", None)),
    ),
    Case(
        "rule id reused on another device",
        "moe",
        rule("r1", "setagaya-moe"),
        Outcome.sell_rule_exists,
        setup=r1_set,
        then=both(stored("r1", R1), device_rule("setagaya-moe", None)),
    ),
    Case(
        "rule id of a cancelled rule",
        "moe",
        rule("r1"),
        Outcome.sell_rule_exists,
        setup=r1_cancelled,
        then=device_rule("nerima-moe", None),
    ),
    Case(
        "rule id of another owner's rule",
        "maru",
        rule("r1", "koriyama-wind"),
        Outcome.sell_rule_exists,
        setup=r1_set,
        then=device_rule("koriyama-wind", None),
    ),
    Case(
        "a second rule for the device",
        "moe",
        rule("r2", price=200),
        Outcome.device_has_sell_rule,
        setup=r1_set,
        then=both(stored("r2", None), device_rule("nerima-moe", "r1")),
    ),
]

CANCEL_CASES = [
    Case(
        "ok",
        "moe",
        tx.CancelSellRule("r1"),
        Outcome.ok,
        setup=r1_set,
        then=both(
            stored(
                "r1",
                SellRule("r1", "moe", "nerima-moe", 300, True, SellConditions([]), 5_000, 0, False),
            ),
            device_rule("nerima-moe", None),
        ),
    ),
    Case("unknown rule", "moe", tx.CancelSellRule("r1"), Outcome.unknown_sell_rule),
    Case(
        "another prosumer's rule",
        "maru",
        tx.CancelSellRule("r1"),
        Outcome.not_sell_rule_owner,
        setup=r1_set,
        then=both(stored("r1", R1), device_rule("nerima-moe", "r1")),
    ),
    Case("a buyer", "buyer", tx.CancelSellRule("r1"), Outcome.not_sell_rule_owner, setup=r1_set),
    Case(
        "the authority",
        "authority",
        tx.CancelSellRule("r1"),
        Outcome.not_sell_rule_owner,
        setup=r1_set,
        then=stored("r1", R1),
    ),
    Case(
        "cancelled twice",
        "moe",
        tx.CancelSellRule("r1"),
        Outcome.sell_rule_inactive,
        setup=r1_cancelled,
        then=device_rule("nerima-moe", None),
    ),
    Case("bad rule id", "moe", tx.CancelSellRule("r1 "), Outcome.invalid_id),
    Case("empty rule id", "moe", tx.CancelSellRule(""), Outcome.invalid_id),
]


@pytest.mark.parametrize("case", SET_CASES, ids=str)
def test_set_sell_rule(case: Case) -> None:
    run(case)


@pytest.mark.parametrize("case", CANCEL_CASES, ids=str)
def test_cancel_sell_rule(case: Case) -> None:
    run(case)


# ---- listing new issuance ---------------------------------------------------------------
def listed(ledger: Ledger, order_id: str) -> tuple[int, int, list[Lot]]:
    order = ledger.app.state.sell_order(order_id)
    assert order is not None
    return order.quantity_g, order.remaining_g, order.lots


def test_issuance_lists_up_to_the_cap() -> None:
    ledger = market_world()
    ledger.ok("moe", rule(cap_g=5_000))
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 3_000)
    order = ledger.app.state.sell_order("r1~n1")
    assert order is not None
    june_1 = day_start("2025-06-01")
    assert order.owner == "moe" and order.rule_id == "r1"
    assert order.status is OrderStatus.open
    assert (order.quantity_g, order.remaining_g, order.price_sen_per_kg) == (3_000, 3_000, 300)
    assert (order.source, order.place, order.name_public) == (Source.solar, "131202", True)
    assert order.all_or_none is False and order.expires_at_ns == 0
    assert order.lots == [Lot("n1", 3_000, june_1, june_1 + DAY_S, "131202", "2019-04-01", False)]
    assert holding_of(ledger, "n1", "moe") == (0, 3_000, 0)
    assert ledger.app.state.sell_rule("r1").listed_g == 3_000  # type: ignore[union-attr]
    # the second issuance fills the cap: 2,000 of its 3,000 g are listed
    issue_g(ledger, "n2", "nerima-moe", "2025-06-02", 3_000)
    assert listed(ledger, "r1~n2")[:2] == (2_000, 2_000)
    assert holding_of(ledger, "n2", "moe") == (1_000, 2_000, 0)
    assert ledger.app.state.sell_rule("r1").listed_g == 5_000  # type: ignore[union-attr]
    # the cap is reached: nothing more is listed, the rule stays active
    issue_g(ledger, "n3", "nerima-moe", "2025-06-03", 1_000)
    assert ledger.app.state.sell_order("r1~n3") is None
    assert holding_of(ledger, "n3", "moe") == (1_000, 0, 0)
    assert book_of(ledger)["sell"] == [("r1~n1", 3_000, 300), ("r1~n2", 2_000, 300)]
    assert ledger.app.state.sell_rule_of_device("nerima-moe") is not None


def test_issuance_below_the_cap_lists_it_all_and_other_devices_are_untouched() -> None:
    ledger = market_world()
    ledger.ok("moe", rule(cap_g=1_000_000))
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 4_321)
    issue_g(ledger, "s1", "setagaya-moe", "2025-06-01", 1_000)
    assert listed(ledger, "r1~n1")[:2] == (4_321, 4_321)
    assert holding_of(ledger, "s1", "moe") == (1_000, 0, 0)
    assert [o[0] for o in book_of(ledger)["sell"]] == ["r1~n1"]


def test_new_value_meets_a_resting_buy_in_the_issuing_transaction() -> None:
    ledger = market_world()
    ledger.ok("moe", rule(price=300))
    ledger.ok("buyer", buy_action("B", 2_000, 400, places=["13"]))
    result = ledger.block(
        [ledger.sign("mrv", issue_g_action(ledger, "n1", "nerima-moe", "2025-06-01", 3_000))]
    )
    (issued,) = result.results
    assert issued.code == "ok"
    assert "trade/0" in issued.events and "order/r1~n1" in issued.events
    (trade,) = trades_of(ledger)
    batch = ledger.app.state.batch("n1")
    assert batch is not None
    assert trade.tx_hash == batch.issue_tx  # the same transaction
    assert trade.height == batch.issued_height
    assert (trade.buy_order, trade.sell_order, trade.buyer, trade.seller) == (
        "B",
        "r1~n1",
        "buyer",
        "moe",
    )
    assert (trade.quantity_g, trade.price_sen_per_kg, trade.value_sen) == (2_000, 400, 800)
    assert [(d.batch_id, d.quantity_g) for d in trade.lots] == [("n1", 2_000)]
    assert holding_of(ledger, "n1", "moe") == (0, 1_000, 0)
    assert holding_of(ledger, "n1", "buyer") == (2_000, 0, 0)
    assert yen_of(ledger, "buyer") == (YEN - 800, 0)
    assert yen_of(ledger, "moe") == (800, 0)
    assert book_of(ledger) == {"sell": [("r1~n1", 1_000, 300)], "buy": []}


def test_a_buy_placed_earlier_in_the_same_block_meets_new_value() -> None:
    ledger = market_world()
    ledger.ok("moe", rule(price=300))
    issue = issue_g_action(ledger, "n1", "nerima-moe", "2025-06-01", 3_000)
    result = ledger.block(
        [ledger.sign("buyer", buy_action("B", 3_000, 300)), ledger.sign("mrv", issue)]
    )
    assert [r.code for r in result.results] == ["ok", "ok"]
    (trade,) = trades_of(ledger)
    assert (trade.quantity_g, trade.price_sen_per_kg) == (3_000, 300)
    assert book_of(ledger) == {"sell": [], "buy": []}
    order = ledger.app.state.sell_order("r1~n1")
    assert order is not None and order.status is OrderStatus.filled


def test_a_rule_for_some_buyers_skips_the_others() -> None:
    ledger = market_world()
    ledger.ok("moe", rule(price=300, buyers=("buyer2",)))
    ledger.ok("buyer", buy_action("B1", 1_000, 900))
    ledger.ok("buyer2", buy_action("B2", 1_000, 400))
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 3_000)
    (trade,) = trades_of(ledger)
    assert (trade.buy_order, trade.price_sen_per_kg) == ("B2", 400)
    assert book_of(ledger) == {"sell": [("r1~n1", 2_000, 300)], "buy": [("B1", 1_000, 900)]}


def test_a_hidden_rule_hides_the_seller_in_public_views() -> None:
    ledger = market_world()
    ledger.ok("moe", rule(price=300, name_public=False))
    ledger.ok("buyer", buy_action("B", 1_000, 300, sellers=["moe"]))
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 3_000)
    (trade,) = trades_of(ledger)
    assert trade.seller == "moe" and trade.seller_public is False
    state = ledger.app.state
    assert [t["seller"] for t in market.trades(state)] == [market.UNDISCLOSED]
    assert [o["seller"] for o in market.book(state)["sell"]] == [market.UNDISCLOSED]


def test_cancelling_a_rule_stops_listing_but_keeps_its_orders() -> None:
    ledger = market_world()
    ledger.ok("moe", rule(price=300, cap_g=100_000))
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 3_000)
    attempt_market(ledger, "moe", tx.CancelSellRule("r1"), Outcome.ok)
    assert book_of(ledger)["sell"] == [("r1~n1", 3_000, 300)]  # unchanged by the cancel
    issue_g(ledger, "n2", "nerima-moe", "2025-06-02", 2_000)
    assert ledger.app.state.sell_order("r1~n2") is None
    assert holding_of(ledger, "n2", "moe") == (2_000, 0, 0)
    # the order it listed still trades
    ledger.ok("buyer", buy_action("B", 1_000, 300))
    (trade,) = trades_of(ledger)
    assert (trade.sell_order, trade.lots[0].batch_id) == ("r1~n1", "n1")
    # and a new rule for the device lists again, from its own zero
    ledger.ok("moe", rule("r2", price=250, cap_g=500))
    issue_g(ledger, "n3", "nerima-moe", "2025-06-03", 2_000)
    assert listed(ledger, "r2~n3")[:2] == (500, 500)


def test_rules_survive_a_reload_of_the_state() -> None:
    """The device -> rule index is derived: a node that restarts must list as before."""
    ledger = market_world()
    ledger.ok("moe", rule("r1", cap_g=10_000))
    ledger.ok("moe", rule("r2", "setagaya-moe", cap_g=10_000))
    ledger.ok("moe", tx.CancelSellRule("r2"))
    stored_items = list(ledger.app.state.encoded_items())
    ledger.app = Application(genesis(), stored_items, ledger.app.height)
    assert ledger.app.state_root() == ledger.blocks[-1][3]
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 1_000)
    issue_g(ledger, "s1", "setagaya-moe", "2025-06-01", 1_000)
    assert ledger.app.state.sell_order("r1~n1") is not None
    assert ledger.app.state.sell_order("r2~s1") is None


def test_cases_use_the_shared_runner_too() -> None:
    """``run_case`` (world() only) sees the same refusal without a market world."""
    run_case(
        Case(
            "unknown device in the plain world",
            "maekawa",
            rule(device_id="pv-9"),
            Outcome.unknown_device,
        )
    )
    run_case(Case("plain world, own device", "maekawa", rule(device_id="pv-1"), Outcome.ok))


def test_a_hand_placed_sell_and_the_rule_share_the_device_value() -> None:
    ledger = market_world()
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 1_000)
    ledger.ok("moe", rule(cap_g=10_000))
    issue_g(ledger, "n2", "nerima-moe", "2025-06-02", 1_000)
    # n1 predates the rule and is not listed; a hand-placed order can still use it
    assert holding_of(ledger, "n1", "moe") == (1_000, 0, 0)
    attempt_market(ledger, "moe", sell_action("S", 1_001, 300), Outcome.insufficient_value)
    attempt_market(ledger, "moe", sell_action("S", 1_000, 300), Outcome.ok)
    assert book_of(ledger)["sell"] == [("r1~n2", 1_000, 300), ("S", 1_000, 300)]
