"""PlaceBuyOrder: bid for value under conditions; yen for the whole order at the limit price,
floor(quantity g x limit sen/kg / 1000) sen, is escrowed when it is placed (DESIGN.md 2, 5).

World (tests.support.market_world): buyer, buyer2 and trader (prosumer and buyer) each have
1,000,000 sen available; moe, maru, maekawa and hokkaido are prosumers without yen. No value
is listed, so every accepted order here rests whole.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import (
    GENESIS_TIME_NS,
    Case,
    Ledger,
    add_participant,
    attempt_market,
    book_of,
    buy_action,
    buy_conditions,
    day_start,
    deposit,
    issue_g,
    market_world,
    sell_action,
    yen_of,
)

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import BuyConditions, OrderStatus, Role, Source
from reco2.views import market

YEN = 1_000_000
JUNE_1, JUNE_8 = day_start("2025-06-01"), day_start("2025-06-08")
FAR = GENESIS_TIME_NS + 365 * 86_400 * 10**9


def run(case: Case) -> Ledger:
    ledger = market_world()
    if case.setup is not None:
        case.setup(ledger)
    attempt_market(ledger, case.signer, case.action, case.expected)
    if case.then is not None:
        case.then(ledger)
    return ledger


def yen(account: str, available: int, escrowed: int = 0) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        assert yen_of(ledger, account) == (available, escrowed)

    return then


def rests(
    order_id: str,
    quantity_g: int,
    price: int,
    escrow_sen: int,
    conditions: BuyConditions | None = None,
    owner: str = "buyer",
    all_or_none: bool = False,
    expires_at_ns: int = 0,
) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        order = ledger.app.state.buy_order(order_id)
        assert order is not None
        assert order.status is OrderStatus.open
        assert order.owner == owner
        assert order.quantity_g == order.remaining_g == quantity_g
        assert order.price_sen_per_kg == price
        assert order.escrow_sen == escrow_sen
        assert order.all_or_none is all_or_none
        assert order.expires_at_ns == expires_at_ns
        assert order.conditions == (conditions or buy_conditions())
        assert book_of(ledger)["buy"] == [(order_id, quantity_g, price)]
        assert yen_of(ledger, owner) == (YEN - escrow_sen, escrow_sen)

    return then


def no_account(account: str) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        assert yen_of(ledger, account) is None

    return then


def both(*checks: Callable[[Ledger], None]) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        for check in checks:
            check(ledger)

    return then


def nothing_rests(ledger: Ledger) -> None:
    assert book_of(ledger) == {"sell": [], "buy": []}


UNCHANGED = both(yen("buyer", YEN), nothing_rests)


def placed_b(ledger: Ledger) -> None:
    ledger.ok("buyer", buy_action("B", 1_000, 100))


def moe_sells_b(ledger: Ledger) -> None:
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 1_000)
    ledger.ok("moe", sell_action("B", 1_000, 300))


def cancelled_b(ledger: Ledger) -> None:
    placed_b(ledger)
    ledger.ok("buyer", tx.CancelOrder("B"))


def half_escrowed(ledger: Ledger) -> None:
    ledger.ok("buyer", buy_action("B0", 1_000_000, 500))  # 500,000 sen


def poor_buyer(ledger: Ledger) -> None:
    add_participant(ledger, "poor", Role.buyer)


def case(
    name: str,
    action: tx.PlaceBuyOrder,
    expected: Outcome,
    signer: str = "buyer",
    setup: Callable[[Ledger], None] | None = None,
    then: Callable[[Ledger], None] | None = None,
) -> Case:
    if then is None and expected is not Outcome.ok and setup is None:
        then = UNCHANGED
    return Case(name, signer, action, expected, setup=setup, then=then)


ALL = buy_conditions(
    sellers=["moe", "maru"],
    places=["13", "072036"],
    sources=[Source.wind, Source.solar],
    period_from_s=JUNE_1,
    period_to_s=JUNE_8,
    commissioned_after="2019-01-01",
    exclude_estimated=True,
)
ALL_SORTED = buy_conditions(
    sellers=["maru", "moe"],
    places=["072036", "13"],
    sources=[Source.solar, Source.wind],
    period_from_s=JUNE_1,
    period_to_s=JUNE_8,
    commissioned_after="2019-01-01",
    exclude_estimated=True,
)

CASES = [
    # escrow = floor(quantity g x limit sen/kg / 1000)
    case("ok", buy_action("B", 3_000, 100), Outcome.ok, then=rests("B", 3_000, 100, 300)),
    case(
        "ok escrow rounds down",
        buy_action("B", 1_234, 333),
        Outcome.ok,
        then=rests("B", 1_234, 333, 410),
    ),
    case("ok escrow of nothing", buy_action("B", 1, 1), Outcome.ok, then=rests("B", 1, 1, 0)),
    case(
        "ok every sen",
        buy_action("B", 1_000_000, 1_000),
        Outcome.ok,
        then=rests("B", 1_000_000, 1_000, YEN),
    ),
    case(
        "ok every condition, kept sorted",
        tx.PlaceBuyOrder("B", 2_000, False, 250, ALL, 0),
        Outcome.ok,
        then=rests("B", 2_000, 250, 500, ALL_SORTED),
    ),
    case(
        "ok all or none",
        buy_action("B", 2_000, 250, aon=True),
        Outcome.ok,
        then=rests("B", 2_000, 250, 500, all_or_none=True),
    ),
    case(
        "ok with an expiry",
        buy_action("B", 2_000, 250, expires_at_ns=FAR),
        Outcome.ok,
        then=rests("B", 2_000, 250, 500, expires_at_ns=FAR),
    ),
    case(
        "ok a seller that does not exist yet",
        buy_action("B", 10, 100, sellers=["later"]),
        Outcome.ok,
        then=rests("B", 10, 100, 1, buy_conditions(sellers=["later"])),
    ),
    case(
        "ok a prefecture and a municipality in it",
        buy_action("B", 10, 100, places=["131202", "13"]),
        Outcome.ok,
        then=rests("B", 10, 100, 1, buy_conditions(places=["13", "131202"])),
    ),
    case(
        "ok by a prosumer that is also a buyer",
        buy_action("B", 10, 100),
        Outcome.ok,
        signer="trader",
        then=rests("B", 10, 100, 1, owner="trader"),
    ),
    case(
        "ok with the other half",
        buy_action("B", 1_000_000, 500),
        Outcome.ok,
        setup=half_escrowed,
        then=yen("buyer", 0, YEN),
    ),
    case(
        "ok the escrow rounds down to what is left",
        buy_action("B", 1_000_001, 500),
        Outcome.ok,
        setup=half_escrowed,
        then=yen("buyer", 0, YEN),
    ),
    # fields
    case("zero price", buy_action("B", 1_000, 0), Outcome.price_must_be_positive),
    case("negative price", buy_action("B", 1_000, -1), Outcome.price_must_be_positive),
    case("absurd price", buy_action("B", 1_000, 10_000_001), Outcome.amount_too_large),
    case("zero quantity", buy_action("B", 0, 100), Outcome.quantity_must_be_positive),
    case("negative quantity", buy_action("B", -1_000, 100), Outcome.quantity_must_be_positive),
    case("absurd quantity", buy_action("B", 10**15 + 1, 100), Outcome.amount_too_large),
    case(
        "unknown municipality",
        buy_action("B", 1_000, 100, places=["131209"]),
        Outcome.invalid_place_code,
    ),
    case(
        "no prefecture 48", buy_action("B", 1_000, 100, places=["48"]), Outcome.invalid_place_code
    ),
    case("prefecture 00", buy_action("B", 1_000, 100, places=["00"]), Outcome.invalid_place_code),
    case(
        "one bad place among good ones",
        buy_action("B", 1_000, 100, places=["13", "999999"]),
        Outcome.invalid_place_code,
    ),
    case(
        "five-digit code", buy_action("B", 1_000, 100, places=["07203"]), Outcome.invalid_place_code
    ),
    case(
        "place named twice",
        buy_action("B", 1_000, 100, places=["13", "13"]),
        Outcome.invalid_conditions,
    ),
    case(
        "too many places",
        buy_action("B", 1_000, 100, places=[f"{p:02d}" for p in range(1, 34)]),
        Outcome.invalid_conditions,
    ),
    case(
        "seller named twice",
        buy_action("B", 1_000, 100, sellers=["moe", "moe"]),
        Outcome.invalid_conditions,
    ),
    case(
        "too many sellers",
        buy_action("B", 1_000, 100, sellers=[f"s{i}" for i in range(33)]),
        Outcome.invalid_conditions,
    ),
    case(
        "source named twice",
        buy_action("B", 1_000, 100, sources=[Source.wind, Source.wind]),
        Outcome.invalid_conditions,
    ),
    case("bad seller id", buy_action("B", 1_000, 100, sellers=["m o e"]), Outcome.invalid_id),
    case(
        "unknown source",
        buy_action("B", 1_000, 100, sources=["coal"]),
        Outcome.malformed_transaction,
    ),
    case(
        "negative period start",
        buy_action("B", 1_000, 100, period_from_s=-1),
        Outcome.invalid_period,
    ),
    case(
        "period ends before it starts",
        buy_action("B", 1_000, 100, period_from_s=JUNE_8, period_to_s=JUNE_1),
        Outcome.invalid_period,
    ),
    case(
        "empty period",
        buy_action("B", 1_000, 100, period_from_s=JUNE_1, period_to_s=JUNE_1),
        Outcome.invalid_period,
    ),
    case(
        "no such date",
        buy_action("B", 1_000, 100, commissioned_after="2020-02-30"),
        Outcome.invalid_date,
    ),
    case("negative expiry", buy_action("B", 1_000, 100, expires_at_ns=-5), Outcome.invalid_expiry),
    case("bad order id", buy_action("B/1", 1_000, 100), Outcome.invalid_id),
    # who may sign
    case("a prosumer", buy_action("B", 1_000, 100), Outcome.role_not_allowed, signer="moe"),
    case("an aggregator", buy_action("B", 1_000, 100), Outcome.role_not_allowed, signer="mrv"),
    case(
        "a settlement agent", buy_action("B", 1_000, 100), Outcome.role_not_allowed, signer="bank"
    ),
    # against state
    case(
        "id reused",
        buy_action("B", 500, 100),
        Outcome.order_exists,
        setup=placed_b,
        then=both(yen("buyer", YEN - 100, 100), rests("B", 1_000, 100, 100)),
    ),
    case(
        "id of a sell order",
        buy_action("B", 500, 100),
        Outcome.order_exists,
        setup=moe_sells_b,
        then=yen("buyer", YEN),
    ),
    case(
        "id of a cancelled order",
        buy_action("B", 500, 100),
        Outcome.order_exists,
        setup=cancelled_b,
        then=both(yen("buyer", YEN), nothing_rests),
    ),
    case(
        "id of another buyer's order",
        buy_action("B", 500, 100),
        Outcome.order_exists,
        signer="buyer2",
        setup=placed_b,
        then=yen("buyer2", YEN),
    ),
    case(
        "expiry before the block",
        buy_action("B", 1_000, 100, expires_at_ns=GENESIS_TIME_NS),
        Outcome.order_expired,
    ),
    case("one sen short", buy_action("B", 1_000_001, 1_000), Outcome.insufficient_yen),
    case(
        "yen escrowed elsewhere is not available",
        buy_action("B", 1_000_002, 500),
        Outcome.insufficient_yen,
        setup=half_escrowed,
        then=yen("buyer", 500_000, 500_000),
    ),
    case(
        "a buyer without an account",
        buy_action("B", 1_000, 100),
        Outcome.insufficient_yen,
        signer="poor",
        setup=poor_buyer,
        then=no_account("poor"),
    ),
    case(
        "a buyer without an account, even for nothing",
        buy_action("B", 1, 1),
        Outcome.insufficient_yen,
        signer="poor",
        setup=poor_buyer,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_place_buy_order(case: Case) -> None:
    run(case)


def test_expiry_equal_to_the_block_time_is_refused() -> None:
    ledger = market_world()
    next_block = ledger.time_ns + 10 * 10**9  # Ledger.block advances 10 s
    attempt_market(
        ledger,
        "buyer",
        buy_action("B", 1_000, 100, expires_at_ns=next_block),
        Outcome.order_expired,
    )
    assert yen_of(ledger, "buyer") == (YEN, 0)
    next_block = ledger.time_ns + 10 * 10**9
    attempt_market(
        ledger, "buyer", buy_action("B", 1_000, 100, expires_at_ns=next_block + 1), Outcome.ok
    )
    assert yen_of(ledger, "buyer") == (YEN - 100, 100)


def test_a_deposit_makes_a_refused_order_possible() -> None:
    ledger = market_world()
    attempt_market(ledger, "buyer", buy_action("B", 1_000_100, 1_000), Outcome.insufficient_yen)
    deposit(ledger, "buyer", 100)
    attempt_market(ledger, "buyer", buy_action("B", 1_000_100, 1_000), Outcome.ok)
    assert yen_of(ledger, "buyer") == (0, YEN + 100)


def test_the_public_book_shows_the_conditions() -> None:
    ledger = market_world()
    ledger.ok("buyer", tx.PlaceBuyOrder("B", 2_000, True, 250, ALL, 0))
    (view,) = market.book(ledger.app.state)["buy"]
    assert view["order_id"] == "B" and view["buyer"] == "buyer"
    assert view["sellers"] == ["maru", "moe"]
    assert view["places"] == ["072036", "13"]
    assert view["place_names"] == ["福島県郡山市", "東京都"]
    assert view["sources"] == ["solar", "wind"]
    assert view["all_or_none"] is True
    assert (view["quantity_g"], view["price_sen_per_kg"]) == (2_000, 250)
