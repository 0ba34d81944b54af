"""PlaceSellOrder: list value of one source and place at a minimum price (DESIGN.md section 5).

World (tests.support.market_world): moe owns two solar devices, nerima-moe in Nerima (131202)
and setagaya-moe in Setagaya (131121). Setup here: moe holds n2 (Nerima, generated 2025-06-02,
3,000 g, issued first), n1 (Nerima, 2025-06-01, 2,000 g) and s1 (Setagaya, 2025-06-01,
4,000 g). A listing draws from the batches that fit its source and place, oldest generation
first (ties by batch id), and moves them tradable -> escrowed.
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
    day_start,
    holding_of,
    issue_g,
    market_world,
    sell_action,
)

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import Lot, OrderStatus, Purpose, Role, SellConditions, Source
from reco2.views import market

JUNE_1, JUNE_2 = day_start("2025-06-01"), day_start("2025-06-02")
DAY_S = 86_400
NERIMA_COMMISSIONED, SETAGAYA_COMMISSIONED = "2019-04-01", "2020-07-15"


def moe_value(ledger: Ledger) -> None:
    issue_g(ledger, "n2", "nerima-moe", "2025-06-02", 3_000)
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 2_000)
    issue_g(ledger, "s1", "setagaya-moe", "2025-06-01", 4_000)


def run(case: Case) -> Ledger:
    ledger = market_world()
    moe_value(ledger)
    if case.setup is not None:
        case.setup(ledger)
    attempt_market(ledger, case.signer, case.action, case.expected)
    if case.then is not None:
        case.then(ledger)
    return ledger


def lot(batch_id: str, grams: int) -> Lot:
    """A lot of one of moe's batches as the order should hold it."""
    start = {"n1": JUNE_1, "n2": JUNE_2, "s1": JUNE_1}[batch_id]
    municipality = "131121" if batch_id == "s1" else "131202"
    commissioned = SETAGAYA_COMMISSIONED if batch_id == "s1" else NERIMA_COMMISSIONED
    return Lot(batch_id, grams, start, start + DAY_S, municipality, commissioned, False)


def moe_holds(**amounts: tuple[int, int, int]) -> Callable[[Ledger], None]:
    expected = {"n1": (2_000, 0, 0), "n2": (3_000, 0, 0), "s1": (4_000, 0, 0)} | amounts

    def then(ledger: Ledger) -> None:
        for batch_id, held in expected.items():
            assert holding_of(ledger, batch_id, "moe") == held, batch_id

    return then


def rests(
    order_id: str,
    *lots: Lot,
    owner: str = "moe",
    all_or_none: bool = False,
    name_public: bool = True,
    buyers: tuple[str, ...] = (),
    place: str = "131202",
    expires_at_ns: int = 0,
) -> Callable[[Ledger], None]:
    """The order is open, rests in the book and holds exactly these lots."""

    def then(ledger: Ledger) -> None:
        order = ledger.app.state.sell_order(order_id)
        assert order is not None
        assert order.status is OrderStatus.open
        assert order.owner == owner
        assert order.lots == list(lots)
        quantity = sum(x.quantity_g for x in lots)
        assert order.quantity_g == order.remaining_g == quantity
        assert order.all_or_none is all_or_none
        assert order.name_public is name_public
        assert order.conditions == SellConditions(sorted(buyers))
        assert order.place == place
        assert order.expires_at_ns == expires_at_ns
        assert order.rule_id == ""
        assert order_id in ledger.app.state.book.sells
        assert book_of(ledger)["sell"] == [(order_id, quantity, order.price_sen_per_kg)]

    return then


def both(*checks: Callable[[Ledger], None]) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        for check in checks:
            check(ledger)

    return then


def book_empty(ledger: Ledger) -> None:
    assert book_of(ledger) == {"sell": [], "buy": []}


UNCHANGED = both(moe_holds(), book_empty)


def placed_s(ledger: Ledger) -> None:
    ledger.ok("moe", sell_action("S", 1_000, 300))


def buyer_placed_s(ledger: Ledger) -> None:
    ledger.ok("buyer", buy_action("S", 1_000, 100))


def cancelled_s(ledger: Ledger) -> None:
    placed_s(ledger)
    ledger.ok("moe", tx.CancelOrder("S"))


def nerima_escrowed(ledger: Ledger) -> None:
    ledger.ok("moe", sell_action("S0", 5_000, 300))


def n1_retired(ledger: Ledger) -> None:
    ledger.ok("moe", tx.RetireValue("r1", "n1", 2_000, "moe", Purpose.offset, "FY2025", ""))


def buyer_holds_n2(ledger: Ledger) -> None:
    ledger.ok("moe", tx.TransferValue("n2", "buyer", 1_200))


def case(
    name: str,
    action: tx.PlaceSellOrder,
    expected: Outcome,
    signer: str = "moe",
    setup: Callable[[Ledger], None] | None = None,
    then: Callable[[Ledger], None] | None = None,
) -> Case:
    if then is None and expected is not Outcome.ok and setup is None:
        then = UNCHANGED
    return Case(name, signer, action, expected, setup=setup, then=then)


FAR = GENESIS_TIME_NS + 365 * DAY_S * 10**9

CASES = [
    # escrow: tradable -> escrowed, oldest generation first
    case(
        "ok oldest batch first",
        sell_action("S", 2_500, 300),
        Outcome.ok,
        then=both(
            moe_holds(n1=(0, 2_000, 0), n2=(2_500, 500, 0)),
            rests("S", lot("n1", 2_000), lot("n2", 500)),
        ),
    ),
    case(
        "ok one batch",
        sell_action("S", 1_500, 300),
        Outcome.ok,
        then=both(moe_holds(n1=(500, 1_500, 0)), rests("S", lot("n1", 1_500))),
    ),
    case(
        "ok everything in the municipality",
        sell_action("S", 5_000, 300),
        Outcome.ok,
        then=both(
            moe_holds(n1=(0, 2_000, 0), n2=(0, 3_000, 0)),
            rests("S", lot("n1", 2_000), lot("n2", 3_000)),
        ),
    ),
    case(
        "ok a prefecture draws every municipality in it",
        sell_action("S", 9_000, 300, place="13"),
        Outcome.ok,
        then=both(
            moe_holds(n1=(0, 2_000, 0), n2=(0, 3_000, 0), s1=(0, 4_000, 0)),
            rests("S", lot("n1", 2_000), lot("s1", 4_000), lot("n2", 3_000), place="13"),
        ),
    ),
    case(
        "ok another municipality",
        sell_action("S", 4_000, 300, place="131121"),
        Outcome.ok,
        then=both(moe_holds(s1=(0, 4_000, 0)), rests("S", lot("s1", 4_000), place="131121")),
    ),
    case(
        "ok all or none",
        sell_action("S", 1_000, 300, aon=True),
        Outcome.ok,
        then=rests("S", lot("n1", 1_000), all_or_none=True),
    ),
    case(
        "ok name hidden",
        sell_action("S", 1_000, 300, name_public=False),
        Outcome.ok,
        then=rests("S", lot("n1", 1_000), name_public=False),
    ),
    case(
        "ok only for some buyers",
        sell_action("S", 1_000, 300, buyers=["buyer2", "buyer"]),
        Outcome.ok,
        then=rests("S", lot("n1", 1_000), buyers=("buyer", "buyer2")),
    ),
    case(
        "ok with an expiry",
        sell_action("S", 1_000, 300, expires_at_ns=FAR),
        Outcome.ok,
        then=rests("S", lot("n1", 1_000), expires_at_ns=FAR),
    ),
    case(
        "ok the unretired rest",
        sell_action("S", 3_000, 300),
        Outcome.ok,
        setup=n1_retired,
        then=both(moe_holds(n1=(0, 0, 2_000), n2=(0, 3_000, 0)), rests("S", lot("n2", 3_000))),
    ),
    case(
        "ok by a buyer reselling what it bought",
        sell_action("S", 1_200, 300),
        Outcome.ok,
        signer="buyer",
        setup=buyer_holds_n2,
        then=both(moe_holds(n2=(1_800, 0, 0)), rests("S", lot("n2", 1_200), owner="buyer")),
    ),
    case(
        "ok one gram at one sen", sell_action("S", 1, 1), Outcome.ok, then=rests("S", lot("n1", 1))
    ),
    # fields
    case("zero price", sell_action("S", 1_000, 0), Outcome.price_must_be_positive),
    case("negative price", sell_action("S", 1_000, -300), Outcome.price_must_be_positive),
    case("absurd price", sell_action("S", 1_000, 10_000_001), Outcome.amount_too_large),
    case("zero quantity", sell_action("S", 0, 300), Outcome.quantity_must_be_positive),
    case("negative quantity", sell_action("S", -1, 300), Outcome.quantity_must_be_positive),
    case("zero quantity and price", sell_action("S", 0, 0), Outcome.quantity_must_be_positive),
    case("absurd quantity", sell_action("S", 10**15 + 1, 300), Outcome.amount_too_large),
    case(
        "unknown municipality",
        sell_action("S", 1_000, 300, place="131209"),
        Outcome.invalid_place_code,
    ),
    case("no prefecture 48", sell_action("S", 1_000, 300, place="48"), Outcome.invalid_place_code),
    case(
        "municipality in prefecture 48",
        sell_action("S", 1_000, 300, place="481009"),
        Outcome.invalid_place_code,
    ),
    case("prefecture 00", sell_action("S", 1_000, 300, place="00"), Outcome.invalid_place_code),
    case(
        "a prefecture's own six-digit code",
        sell_action("S", 1_000, 300, place="130001"),
        Outcome.invalid_place_code,
    ),
    case("five digits", sell_action("S", 1_000, 300, place="13120"), Outcome.invalid_place_code),
    case("empty place", sell_action("S", 1_000, 300, place=""), Outcome.invalid_place_code),
    case(
        "full-width digits", sell_action("S", 1_000, 300, place="１３"), Outcome.invalid_place_code
    ),
    case("negative expiry", sell_action("S", 1_000, 300, expires_at_ns=-1), Outcome.invalid_expiry),
    case(
        "buyer named twice",
        sell_action("S", 1_000, 300, buyers=["buyer", "buyer"]),
        Outcome.invalid_conditions,
    ),
    case(
        "too many buyers",
        sell_action("S", 1_000, 300, buyers=[f"b{i}" for i in range(33)]),
        Outcome.invalid_conditions,
    ),
    case("bad buyer id", sell_action("S", 1_000, 300, buyers=["a buyer"]), Outcome.invalid_id),
    case("bad order id", sell_action("S 1", 1_000, 300), Outcome.invalid_id),
    case("order id in a rule's form", sell_action("r1~n1", 1_000, 300), Outcome.invalid_id),
    case("empty order id", sell_action("", 1_000, 300), Outcome.invalid_id),
    # who may sign
    case("an aggregator", sell_action("S", 1_000, 300), Outcome.role_not_allowed, signer="mrv"),
    case(
        "the authority", sell_action("S", 1_000, 300), Outcome.role_not_allowed, signer="authority"
    ),
    case(
        "a settlement agent", sell_action("S", 1_000, 300), Outcome.role_not_allowed, signer="bank"
    ),
    # against state
    case(
        "id reused",
        sell_action("S", 500, 200),
        Outcome.order_exists,
        setup=placed_s,
        then=both(moe_holds(n1=(1_000, 1_000, 0)), rests("S", lot("n1", 1_000))),
    ),
    case(
        "id of a buy order",
        sell_action("S", 500, 200),
        Outcome.order_exists,
        setup=buyer_placed_s,
        then=moe_holds(),
    ),
    case(
        "id of a cancelled order",
        sell_action("S", 500, 200),
        Outcome.order_exists,
        setup=cancelled_s,
        then=moe_holds(),
    ),
    case(
        "id of another seller's order",
        sell_action("S", 500, 200),
        Outcome.order_exists,
        signer="buyer",
        setup=both(buyer_holds_n2, placed_s),
    ),
    case(
        "expiry before the block",
        sell_action("S", 1_000, 300, expires_at_ns=GENESIS_TIME_NS),
        Outcome.order_expired,
    ),
    case(
        "expiry at the epoch's first instant",
        sell_action("S", 1_000, 300, expires_at_ns=1),
        Outcome.order_expired,
    ),
    case(
        "more than the municipality holds", sell_action("S", 5_001, 300), Outcome.insufficient_value
    ),
    case(
        "more than the prefecture holds",
        sell_action("S", 9_001, 300, place="13"),
        Outcome.insufficient_value,
    ),
    case(
        "another source", sell_action("S", 1, 300, source=Source.wind), Outcome.insufficient_value
    ),
    case("another prefecture", sell_action("S", 1, 300, place="01"), Outcome.insufficient_value),
    case(
        "a municipality without value",
        sell_action("S", 1, 300, place="131016"),
        Outcome.insufficient_value,
    ),
    case(
        "escrowed value is not sellable twice",
        sell_action("S", 1, 300),
        Outcome.insufficient_value,
        setup=nerima_escrowed,
        then=moe_holds(n1=(0, 2_000, 0), n2=(0, 3_000, 0)),
    ),
    case(
        "retired value is not sellable",
        sell_action("S", 3_001, 300),
        Outcome.insufficient_value,
        setup=n1_retired,
        then=moe_holds(n1=(0, 0, 2_000)),
    ),
    case(
        "a prosumer without value",
        sell_action("S", 1, 300),
        Outcome.insufficient_value,
        signer="maekawa",
    ),
    case(
        "a buyer without value",
        sell_action("S", 1, 300),
        Outcome.insufficient_value,
        signer="buyer",
    ),
    case(
        "more than the buyer bought",
        sell_action("S", 1_201, 300),
        Outcome.insufficient_value,
        signer="buyer",
        setup=buyer_holds_n2,
        then=moe_holds(n2=(1_800, 0, 0)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_place_sell_order(case: Case) -> None:
    run(case)


def test_expiry_equal_to_the_block_time_is_refused() -> None:
    ledger = market_world()
    moe_value(ledger)
    block_time = ledger.time_ns + 10 * 10**9  # Ledger.block advances 10 s
    attempt_market(
        ledger, "moe", sell_action("S", 1_000, 300, expires_at_ns=block_time), Outcome.order_expired
    )
    moe_holds()(ledger)
    attempt_market(
        ledger,
        "moe",
        sell_action("S", 1_000, 300, expires_at_ns=ledger.time_ns + 10 * 10**9 + 1),
        Outcome.ok,
    )
    moe_holds(n1=(1_000, 1_000, 0))(ledger)


def test_the_order_takes_the_next_ledger_position() -> None:
    ledger = market_world()
    moe_value(ledger)
    ledger.ok("moe", sell_action("S1", 1_000, 300))
    ledger.ok("buyer", buy_action("B1", 1_000, 100))
    ledger.ok("moe", sell_action("S2", 1_000, 300))
    seqs = [
        ledger.app.state.sell_order("S1"),
        ledger.app.state.buy_order("B1"),
        ledger.app.state.sell_order("S2"),
    ]
    assert [o.seq for o in seqs if o is not None] == [0, 1, 2]
    heights = [o.placed_height for o in seqs if o is not None]
    assert heights == sorted(heights) and len(set(heights)) == 3


def test_the_public_book_hides_a_hidden_seller() -> None:
    ledger = market_world()
    moe_value(ledger)
    ledger.ok("moe", sell_action("S", 1_000, 300, name_public=False))
    ledger.ok("moe", sell_action("T", 1_000, 400))
    view = market.book(ledger.app.state)
    assert [(o["order_id"], o["seller"]) for o in view["sell"]] == [
        ("S", market.UNDISCLOSED),
        ("T", "moe"),
    ]
    assert view["sell"][0]["seller_name"] == "非公表"
    assert "moe" not in repr(view["sell"][0])
    order = ledger.app.state.sell_order("S")
    assert order is not None and order.owner == "moe"


def test_a_sell_rests_when_no_buy_meets_it() -> None:
    ledger = market_world()
    moe_value(ledger)
    ledger.ok("buyer", buy_action("B", 1_000, 299))  # below the minimum
    ledger.ok("moe", sell_action("S", 1_000, 300))
    assert book_of(ledger) == {"sell": [("S", 1_000, 300)], "buy": [("B", 1_000, 299)]}


def test_a_new_participant_with_both_roles_may_sell() -> None:
    ledger = market_world()
    moe_value(ledger)
    add_participant(ledger, "both", Role.buyer, Role.prosumer)
    ledger.ok("moe", tx.TransferValue("s1", "both", 10))
    attempt_market(ledger, "both", sell_action("S", 10, 300, place="131121"), Outcome.ok)
    assert holding_of(ledger, "s1", "both") == (0, 10, 0)
