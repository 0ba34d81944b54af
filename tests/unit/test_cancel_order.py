"""CancelOrder: the owner withdraws a resting order; what its escrow still holds goes back.

World (tests.support.market_world): moe holds n1 (Nerima, 2025-06-01, 2,000 g) and n2
(Nerima, 2025-06-02, 3,000 g); buyer and buyer2 have 1,000,000 sen each.
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
    holding_of,
    issue_g,
    market_world,
    sell_action,
    trades_of,
    yen_of,
)

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import OrderStatus

YEN = 1_000_000


def moe_value(ledger: Ledger) -> None:
    issue_g(ledger, "n1", "nerima-moe", "2025-06-01", 2_000)
    issue_g(ledger, "n2", "nerima-moe", "2025-06-02", 3_000)


def run(case: Case) -> Ledger:
    ledger = market_world()
    moe_value(ledger)
    if case.setup is not None:
        case.setup(ledger)
    attempt_market(ledger, case.signer, case.action, case.expected)
    if case.then is not None:
        case.then(ledger)
    return ledger


# ---- setups ------------------------------------------------------------------------------
def sell_s(ledger: Ledger) -> None:
    ledger.ok("moe", sell_action("S", 2_500, 300))  # escrows n1 2,000 + n2 500


def hidden_sell_s(ledger: Ledger) -> None:
    ledger.ok("moe", sell_action("S", 2_500, 300, name_public=False))


def buy_b(ledger: Ledger) -> None:
    ledger.ok("buyer", buy_action("B", 2_000, 500))  # escrows 1,000 sen


def partly_filled_b(ledger: Ledger) -> None:
    ledger.ok("moe", sell_action("S", 1_234, 333))
    buy_b(ledger)  # takes 1,234 g at the resting 333 sen/kg: floor(410.922) = 410 sen


def partly_filled_s(ledger: Ledger) -> None:
    sell_s(ledger)
    ledger.ok("buyer", buy_action("B", 1_000, 300))  # draws 1,000 g of n1


def filled_s(ledger: Ledger) -> None:
    sell_s(ledger)
    ledger.ok("buyer", buy_action("B", 3_000, 400))  # S is filled, B rests with 500 g


def filled_b(ledger: Ledger) -> None:
    sell_s(ledger)
    ledger.ok("buyer", buy_action("B", 1_000, 400))


def cancelled_s(ledger: Ledger) -> None:
    sell_s(ledger)
    ledger.ok("moe", tx.CancelOrder("S"))


def expiring(order: Callable[[int], tuple[str, tx.Action]]) -> Callable[[Ledger], None]:
    """Place an order that expires just after its own block, then run one empty block."""

    def setup(ledger: Ledger) -> None:
        signer, action = order(ledger.time_ns + 10 * 10**9 + 1)
        ledger.ok(signer, action)
        ledger.block([])

    return setup


expired_s = expiring(lambda t: ("moe", sell_action("S", 2_500, 300, expires_at_ns=t)))
expired_b = expiring(lambda t: ("buyer", buy_action("B", 2_000, 500, expires_at_ns=t)))


def rule_listed(ledger: Ledger) -> None:
    ledger.ok("moe", tx.SetSellRule("r1", "nerima-moe", 300, True, 10_000, []))
    issue_g(ledger, "n3", "nerima-moe", "2025-06-03", 1_500)


# ---- checks ------------------------------------------------------------------------------
def status(order_id: str, expected: OrderStatus) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        order = ledger.app.state.sell_order(order_id) or ledger.app.state.buy_order(order_id)
        assert order is not None
        assert order.status is expected

    return then


def holds(holder: str, **amounts: tuple[int, int, int] | None) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        for batch_id, held in amounts.items():
            assert holding_of(ledger, batch_id, holder) == held, (holder, batch_id)

    return then


def yen(account: str, available: int, escrowed: int = 0) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        assert yen_of(ledger, account) == (available, escrowed)

    return then


def book(
    sell: list[tuple[str, int, int]], buy: list[tuple[str, int, int]]
) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        assert book_of(ledger) == {"sell": sell, "buy": buy}

    return then


def both(*checks: Callable[[Ledger], None]) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        for check in checks:
            check(ledger)

    return then


def released_sell(ledger: Ledger) -> None:
    order = ledger.app.state.sell_order("S")
    assert order is not None
    assert order.lots == []
    assert "S" not in ledger.app.state.book.sells


def released_buy(ledger: Ledger) -> None:
    order = ledger.app.state.buy_order("B")
    assert order is not None
    assert order.escrow_sen == 0
    assert "B" not in ledger.app.state.book.buys


S_RESTS = both(
    status("S", OrderStatus.open),
    holds("moe", n1=(0, 2_000, 0), n2=(2_500, 500, 0)),
    book([("S", 2_500, 300)], []),
)
B_RESTS = both(
    status("B", OrderStatus.open), yen("buyer", YEN - 1_000, 1_000), book([], [("B", 2_000, 500)])
)
MOE_HAS_ALL = holds("moe", n1=(2_000, 0, 0), n2=(3_000, 0, 0))


def case(
    name: str,
    signer: str,
    order_id: str,
    expected: Outcome,
    setup: Callable[[Ledger], None] | None = None,
    then: Callable[[Ledger], None] | None = None,
) -> Case:
    return Case(name, signer, tx.CancelOrder(order_id), expected, setup=setup, then=then)


CASES = [
    case(
        "ok a sell order",
        "moe",
        "S",
        Outcome.ok,
        setup=sell_s,
        then=both(status("S", OrderStatus.cancelled), MOE_HAS_ALL, released_sell, book([], [])),
    ),
    case(
        "ok a hidden seller's order",
        "moe",
        "S",
        Outcome.ok,
        setup=hidden_sell_s,
        then=both(status("S", OrderStatus.cancelled), MOE_HAS_ALL, released_sell),
    ),
    case(
        "ok a buy order",
        "buyer",
        "B",
        Outcome.ok,
        setup=buy_b,
        then=both(
            status("B", OrderStatus.cancelled), yen("buyer", YEN), released_buy, book([], [])
        ),
    ),
    case(
        "ok a partly filled buy releases what is left",
        "buyer",
        "B",
        Outcome.ok,
        setup=partly_filled_b,
        then=both(
            status("B", OrderStatus.cancelled),
            yen("buyer", YEN - 410),
            yen("moe", 410),
            released_buy,
            holds("buyer", n1=(1_234, 0, 0)),
            holds("moe", n1=(766, 0, 0), n2=(3_000, 0, 0)),
            book([], []),
        ),
    ),
    case(
        "ok a partly filled sell releases what is left",
        "moe",
        "S",
        Outcome.ok,
        setup=partly_filled_s,
        then=both(
            status("S", OrderStatus.cancelled),
            released_sell,
            holds("moe", n1=(1_000, 0, 0), n2=(3_000, 0, 0)),
            holds("buyer", n1=(1_000, 0, 0), n2=None),
            yen("buyer", YEN - 300),
            yen("moe", 300),
            book([], []),
        ),
    ),
    case(
        "ok an order a sell rule listed",
        "moe",
        "r1~n3",
        Outcome.ok,
        setup=rule_listed,
        then=both(
            status("r1~n3", OrderStatus.cancelled), holds("moe", n3=(1_500, 0, 0)), book([], [])
        ),
    ),
    # who may cancel: only the owner
    case(
        "a buyer cancels a seller's order",
        "buyer",
        "S",
        Outcome.not_order_owner,
        setup=sell_s,
        then=S_RESTS,
    ),
    case(
        "another buyer's order",
        "buyer2",
        "B",
        Outcome.not_order_owner,
        setup=buy_b,
        then=both(B_RESTS, yen("buyer2", YEN)),
    ),
    case(
        "a seller cancels a buyer's order",
        "moe",
        "B",
        Outcome.not_order_owner,
        setup=buy_b,
        then=B_RESTS,
    ),
    case("the authority", "authority", "S", Outcome.not_order_owner, setup=sell_s, then=S_RESTS),
    case(
        "another prosumer, a rule's order",
        "maekawa",
        "r1~n3",
        Outcome.not_order_owner,
        setup=rule_listed,
        then=holds("moe", n3=(0, 1_500, 0)),
    ),
    case("someone else's filled order", "buyer2", "S", Outcome.not_order_owner, setup=filled_s),
    # only open orders
    case(
        "a filled sell",
        "moe",
        "S",
        Outcome.order_not_open,
        setup=filled_s,
        then=both(
            status("S", OrderStatus.filled),
            holds("moe", n1=(0, 0, 0), n2=(2_500, 0, 0)),
            book([], [("B", 500, 400)]),
        ),
    ),
    case(
        "a filled buy",
        "buyer",
        "B",
        Outcome.order_not_open,
        setup=filled_b,
        then=both(status("B", OrderStatus.filled), yen("buyer", YEN - 300)),
    ),
    case(
        "cancelled twice",
        "moe",
        "S",
        Outcome.order_not_open,
        setup=cancelled_s,
        then=both(status("S", OrderStatus.cancelled), MOE_HAS_ALL),
    ),
    case(
        "an expired sell",
        "moe",
        "S",
        Outcome.order_not_open,
        setup=expired_s,
        then=both(status("S", OrderStatus.expired), MOE_HAS_ALL),
    ),
    case(
        "an expired buy",
        "buyer",
        "B",
        Outcome.order_not_open,
        setup=expired_b,
        then=both(status("B", OrderStatus.expired), yen("buyer", YEN)),
    ),
    # which order
    case("unknown order", "moe", "S", Outcome.unknown_order, then=MOE_HAS_ALL),
    case("unknown rule order", "moe", "r1~n9", Outcome.unknown_order, setup=rule_listed),
    case(
        "id of nobody's order, in lower case",
        "moe",
        "s",
        Outcome.unknown_order,
        setup=sell_s,
        then=S_RESTS,
    ),
    case("bad id", "moe", "S 1", Outcome.invalid_id),
    case("empty id", "moe", "", Outcome.invalid_id),
    case("three parts", "moe", "a~b~c", Outcome.invalid_id),
    case("empty rule part", "moe", "~n1", Outcome.invalid_id),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cancel_order(case: Case) -> None:
    run(case)


def test_a_cancelled_order_no_longer_trades() -> None:
    ledger = market_world()
    moe_value(ledger)
    sell_s(ledger)
    ledger.ok("moe", tx.CancelOrder("S"))
    ledger.ok("buyer", buy_action("B", 1_000, 500))
    assert trades_of(ledger) == []
    assert book_of(ledger) == {"sell": [], "buy": [("B", 1_000, 500)]}
    # the value is back and can be listed again under a new id
    ledger.ok("moe", sell_action("S2", 1_000, 300))
    (trade,) = trades_of(ledger)
    assert (trade.buy_order, trade.sell_order, trade.quantity_g) == ("B", "S2", 1_000)
    assert trade.price_sen_per_kg == 500  # the resting buy's price


def test_cancel_and_place_in_one_block_apply_in_order() -> None:
    ledger = market_world()
    moe_value(ledger)
    sell_s(ledger)
    result = ledger.block(
        [
            ledger.sign("moe", tx.CancelOrder("S")),
            ledger.sign("buyer", buy_action("B", 1_000, 500)),
            ledger.sign("moe", tx.CancelOrder("S")),
        ]
    )
    assert [r.code for r in result.results] == ["ok", "ok", Outcome.order_not_open.value]
    assert trades_of(ledger) == []
    assert yen_of(ledger, "buyer") == (YEN - 500, 500)
