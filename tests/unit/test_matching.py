"""Matching and settlement (DESIGN.md section 5): an arriving order meets the resting orders
of the other side that are eligible under both orders' conditions, in price-time priority
(time = position in the ledger); each trade prints at the resting order's price; partial
fills; all-or-none on both sides; no self-trade; delivery versus payment in the same
transaction; expiry at block time.

World (tests.support.market_world), every device 1 MW and aggregated by mrv:
    moe       nerima-moe    solar  Nerima   131202  commissioned 2019-04-01
              setagaya-moe  solar  Setagaya 131121  commissioned 2020-07-15
    maru      koriyama-wind wind   Koriyama 072036  commissioned 2018-10-01
              fukushima-pv  solar  Fukushima 072010 commissioned 2022-01-01
    hokkaido  sapporo-pv    solar  Sapporo  011002  commissioned 2021-05-10 (name hidden)
    trader    trader-pv     solar  Nerima   131202  commissioned 2023-03-01 (also a buyer)
buyer, buyer2 and trader have 1,000,000 sen each. The Ledger harness checks every DESIGN
section 7 invariant after every block, including "no eligible pair of resting orders is
crossed", escrow = open orders and book = open orders.
"""

from __future__ import annotations

import msgspec
from tests.support import (
    Ledger,
    attempt_market,
    book_of,
    book_records,
    buy_action,
    day_start,
    holding_of,
    issue_g,
    market_world,
    sell_action,
    trades_of,
    yen_of,
)

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import OrderStatus, Source
from reco2.views import market

YEN = 1_000_000
S = 10**9  # ns per s


def trades(ledger: Ledger) -> list[tuple[str, str, int, int, int, list[tuple[str, int]]]]:
    """(buy, sell, g, sen/kg, sen, [(batch, g)]) of every trade, oldest first."""
    return [
        (
            t.buy_order,
            t.sell_order,
            t.quantity_g,
            t.price_sen_per_kg,
            t.value_sen,
            [(d.batch_id, d.quantity_g) for d in t.lots],
        )
        for t in trades_of(ledger)
    ]


def status(ledger: Ledger, order_id: str) -> OrderStatus:
    order = ledger.app.state.sell_order(order_id) or ledger.app.state.buy_order(order_id)
    assert order is not None
    return order.status


def total_yen(ledger: Ledger) -> int:
    accounts = ("buyer", "buyer2", "trader", "moe", "maru", "hokkaido", "maekawa")
    return sum(sum(yen_of(ledger, a) or (0, 0)) for a in accounts)


def world_with(*issues: tuple[str, str, str, int]) -> Ledger:
    """market_world() and issuances (batch, device, day, g), each in its own block."""
    ledger = market_world()
    for batch_id, device_id, day, grams in issues:
        issue_g(ledger, batch_id, device_id, day, grams)
    return ledger


N1 = ("n1", "nerima-moe", "2025-06-01", 5_000)
N3 = ("n3", "nerima-moe", "2025-06-03", 5_000)
S1 = ("s1", "setagaya-moe", "2025-06-01", 4_000)
K1 = ("k1", "koriyama-wind", "2025-06-01", 5_000)
F1 = ("f1", "fukushima-pv", "2025-06-01", 5_000)
H1 = ("h1", "sapporo-pv", "2025-06-01", 5_000)
T1 = ("t1", "trader-pv", "2025-06-01", 5_000)


# ---- partial fills, prices, settlement ------------------------------------------------------
def test_an_arriving_buy_fills_partly_at_the_resting_sells_price() -> None:
    ledger = world_with(N1)
    ledger.ok("moe", sell_action("S", 5_000, 300))
    ledger.ok("buyer", buy_action("B", 2_000, 500))  # escrows 1,000 sen
    assert trades(ledger) == [("B", "S", 2_000, 300, 600, [("n1", 2_000)])]
    assert status(ledger, "B") is OrderStatus.filled
    assert book_of(ledger) == {"sell": [("S", 3_000, 300)], "buy": []}
    # the value leg
    assert holding_of(ledger, "n1", "moe") == (0, 3_000, 0)
    assert holding_of(ledger, "n1", "buyer") == (2_000, 0, 0)
    # the yen leg: 600 sen leave the buyer and reach moe; the unused 400 sen are released
    assert yen_of(ledger, "buyer") == (YEN - 600, 0)
    assert yen_of(ledger, "moe") == (600, 0)


def test_an_arriving_sell_fills_partly_at_the_resting_buys_price() -> None:
    ledger = world_with(N1)
    ledger.ok("buyer", buy_action("B", 2_000, 500))
    ledger.ok("moe", sell_action("S", 5_000, 300))
    assert trades(ledger) == [("B", "S", 2_000, 500, 1_000, [("n1", 2_000)])]
    assert book_of(ledger) == {"sell": [("S", 3_000, 300)], "buy": []}
    assert yen_of(ledger, "buyer") == (YEN - 1_000, 0)
    assert yen_of(ledger, "moe") == (1_000, 0)
    order = ledger.app.state.sell_order("S")
    assert order is not None
    assert (order.quantity_g, order.remaining_g) == (5_000, 3_000)
    assert [(x.batch_id, x.quantity_g) for x in order.lots] == [("n1", 3_000)]


def test_an_arriving_buy_walks_the_sells_cheapest_first_and_rests_the_rest() -> None:
    ledger = world_with(N1, K1, T1)
    ledger.ok("moe", sell_action("S1", 1_000, 300))
    ledger.ok("maru", sell_action("S2", 1_000, 200, source=Source.wind, place="072036"))
    ledger.ok("trader", sell_action("S3", 1_000, 400))
    ledger.ok("buyer", buy_action("B", 2_500, 350))  # escrows floor(875) = 875 sen
    assert trades(ledger) == [
        ("B", "S2", 1_000, 200, 200, [("k1", 1_000)]),
        ("B", "S1", 1_000, 300, 300, [("n1", 1_000)]),
    ]
    assert book_of(ledger) == {"sell": [("S3", 1_000, 400)], "buy": [("B", 500, 350)]}
    assert yen_of(ledger, "buyer") == (YEN - 875, 375)
    assert yen_of(ledger, "maru") == (200, 0) and yen_of(ledger, "moe") == (300, 0)
    attempt_market(ledger, "buyer", tx.CancelOrder("B"), Outcome.ok)
    assert yen_of(ledger, "buyer") == (YEN - 500, 0)


def test_trade_value_is_floored_once_and_the_same_sen_reach_the_seller() -> None:
    ledger = world_with(N1, K1)
    before = total_yen(ledger)
    ledger.ok("moe", sell_action("S", 1_234, 333))
    ledger.ok("buyer", buy_action("B", 2_000, 500))  # escrows 1,000 sen
    # floor(1,234 g x 333 sen/kg / 1000) = floor(410.922) = 410 sen
    assert trades(ledger) == [("B", "S", 1_234, 333, 410, [("n1", 1_234)])]
    assert yen_of(ledger, "buyer") == (YEN - 1_000, 590)
    assert yen_of(ledger, "moe") == (410, 0)
    order = ledger.app.state.buy_order("B")
    assert order is not None and (order.remaining_g, order.escrow_sen) == (766, 590)
    # a second fill at another price: floor(766 x 457 / 1000) = floor(350.062) = 350
    ledger.ok("maru", sell_action("S2", 3_000, 457, source=Source.wind, place="072036"))
    assert trades(ledger)[1] == ("B", "S2", 766, 500, 383, [("k1", 766)])
    assert yen_of(ledger, "buyer") == (YEN - 410 - 383, 0)  # filled: 207 sen released
    assert yen_of(ledger, "maru") == (383, 0)
    assert total_yen(ledger) == before


def test_sub_sen_trades_round_down_and_the_buyer_keeps_the_difference() -> None:
    ledger = world_with(N1, K1, T1)
    ledger.ok("moe", sell_action("S1", 1, 999))
    ledger.ok("maru", sell_action("S2", 1, 999, source=Source.wind, place="072036"))
    ledger.ok("trader", sell_action("S3", 1, 999))
    ledger.ok("buyer", buy_action("B", 3, 999))  # escrows floor(2.997) = 2 sen
    assert [t[4] for t in trades(ledger)] == [0, 0, 0]  # floor(0.999) each
    assert yen_of(ledger, "buyer") == (YEN, 0)
    assert [holding_of(ledger, b, "buyer") for b in ("n1", "k1", "t1")] == [(1, 0, 0)] * 3


def test_a_fill_draws_the_oldest_batches_first_across_trades() -> None:
    ledger = world_with(N3, N1)  # n3 (June 3) issued before n1 (June 1)
    ledger.ok("moe", sell_action("S", 10_000, 300))
    order = ledger.app.state.sell_order("S")
    assert order is not None and [x.batch_id for x in order.lots] == ["n1", "n3"]
    ledger.ok("buyer", buy_action("B1", 3_000, 300))
    ledger.ok("buyer", buy_action("B2", 4_000, 300))
    ledger.ok("buyer2", buy_action("B3", 3_000, 300))
    assert [t[5] for t in trades(ledger)] == [
        [("n1", 3_000)],
        [("n1", 2_000), ("n3", 2_000)],
        [("n3", 3_000)],
    ]
    assert status(ledger, "S") is OrderStatus.filled
    assert holding_of(ledger, "n1", "buyer") == (5_000, 0, 0)
    assert holding_of(ledger, "n3", "buyer") == (2_000, 0, 0)
    assert holding_of(ledger, "n3", "buyer2") == (3_000, 0, 0)
    assert holding_of(ledger, "n1", "moe") == holding_of(ledger, "n3", "moe") == (0, 0, 0)


def test_bought_value_can_be_sold_on() -> None:
    ledger = world_with(N1)
    ledger.ok("moe", sell_action("S", 2_000, 300))
    ledger.ok("trader", buy_action("B", 2_000, 300))
    ledger.ok("trader", sell_action("T", 1_500, 450, place="13"))
    ledger.ok("buyer", buy_action("B2", 1_500, 500, places=["131202"]))
    assert trades(ledger)[1] == ("B2", "T", 1_500, 450, 675, [("n1", 1_500)])
    assert holding_of(ledger, "n1", "buyer") == (1_500, 0, 0)
    assert holding_of(ledger, "n1", "trader") == (500, 0, 0)
    assert yen_of(ledger, "trader") == (YEN - 600 + 675, 0)


# ---- all-or-none ----------------------------------------------------------------------------
def test_a_resting_all_or_none_sell_is_skipped_when_it_cannot_be_filled_whole() -> None:
    ledger = world_with(N1, K1)
    ledger.ok("moe", sell_action("S1", 2_000, 200, aon=True))
    ledger.ok("maru", sell_action("S2", 1_000, 300, source=Source.wind, place="072036"))
    ledger.ok("buyer", buy_action("B", 1_500, 500))
    assert [t[:4] for t in trades(ledger)] == [("B", "S2", 1_000, 300)]
    assert book_of(ledger) == {"sell": [("S1", 2_000, 200)], "buy": [("B", 500, 500)]}
    # a buy that can take it whole does
    ledger.ok("buyer2", buy_action("B2", 2_000, 200))
    assert trades(ledger)[-1][:4] == ("B2", "S1", 2_000, 200)


def test_a_resting_all_or_none_sell_is_filled_whole_within_a_larger_buy() -> None:
    ledger = world_with(N1, K1)
    ledger.ok("moe", sell_action("S1", 2_000, 200, aon=True))
    ledger.ok("maru", sell_action("S2", 1_000, 300, source=Source.wind, place="072036"))
    ledger.ok("buyer", buy_action("B", 2_500, 500))
    assert [t[:4] for t in trades(ledger)] == [("B", "S1", 2_000, 200), ("B", "S2", 500, 300)]


def test_an_arriving_all_or_none_buy_rests_untouched_when_it_cannot_fill_whole() -> None:
    ledger = world_with(N1)
    ledger.ok("moe", sell_action("S", 1_000, 300))
    ledger.ok("buyer", buy_action("B", 1_500, 500, aon=True))
    assert trades(ledger) == []
    assert book_of(ledger) == {"sell": [("S", 1_000, 300)], "buy": [("B", 1_500, 500)]}
    assert yen_of(ledger, "buyer") == (YEN - 750, 750)
    assert holding_of(ledger, "n1", "moe") == (4_000, 1_000, 0)
    # more value arrives: a sell of 500 alone cannot fill it either (it rests beside it) ...
    ledger.ok("moe", sell_action("S2", 500, 300))
    assert trades(ledger) == []
    # ... and a sell of the whole 1,500 g fills it at the resting buy's price
    ledger.ok("moe", sell_action("S3", 1_500, 300))
    assert [t[:5] for t in trades(ledger)] == [("B", "S3", 1_500, 500, 750)]
    assert book_of(ledger) == {"sell": [("S", 1_000, 300), ("S2", 500, 300)], "buy": []}


def test_an_arriving_all_or_none_buy_fills_whole_across_several_sells() -> None:
    ledger = world_with(N1, K1)
    ledger.ok("moe", sell_action("S1", 1_000, 300))
    ledger.ok("maru", sell_action("S2", 1_000, 300, source=Source.wind, place="072036"))
    ledger.ok("buyer", buy_action("B", 1_500, 500, aon=True))
    assert [t[:4] for t in trades(ledger)] == [("B", "S1", 1_000, 300), ("B", "S2", 500, 300)]
    assert status(ledger, "B") is OrderStatus.filled


def test_a_resting_all_or_none_buy_is_skipped_by_a_smaller_sell() -> None:
    ledger = world_with(N1)
    ledger.ok("buyer", buy_action("B", 2_000, 500, aon=True))
    ledger.ok("buyer2", buy_action("B2", 1_000, 400))
    ledger.ok("moe", sell_action("S1", 1_500, 300))
    # B (better price) would need 2,000 g: skipped; B2 takes 1,000 at its price
    assert [t[:4] for t in trades(ledger)] == [("B2", "S1", 1_000, 400)]
    assert book_of(ledger) == {"sell": [("S1", 500, 300)], "buy": [("B", 2_000, 500)]}
    ledger.ok("moe", sell_action("S2", 2_000, 300))
    assert trades(ledger)[-1][:4] == ("B", "S2", 2_000, 500)


def test_an_arriving_all_or_none_sell_rests_untouched_when_it_cannot_fill_whole() -> None:
    ledger = world_with(N1)
    ledger.ok("buyer", buy_action("B", 1_000, 500))
    ledger.ok("moe", sell_action("S", 2_000, 300, aon=True))
    assert trades(ledger) == []
    assert book_of(ledger) == {"sell": [("S", 2_000, 300)], "buy": [("B", 1_000, 500)]}
    assert holding_of(ledger, "n1", "moe") == (3_000, 2_000, 0)
    ledger.ok("buyer2", buy_action("B2", 1_999, 900))  # still short by a gram
    assert trades(ledger) == []
    ledger.ok("buyer2", buy_action("B3", 2_000, 300))
    assert [t[:4] for t in trades(ledger)] == [("B3", "S", 2_000, 300)]


def test_an_all_or_none_buy_trades_whole_with_one_sell_when_the_walk_cannot() -> None:
    """Walking in priority, the cheap S1 (3 kg) would leave 2 kg that the all-or-none S2
    (5 kg) cannot give; S2 alone fills the buy whole, so they trade: otherwise the two would
    rest eligible and crossed."""
    ledger = world_with(N1, K1)
    ledger.ok("moe", sell_action("S1", 3_000, 100))
    ledger.ok("maru", sell_action("S2", 5_000, 200, aon=True, source=Source.wind, place="072036"))
    ledger.ok("buyer", buy_action("B", 5_000, 500, aon=True))
    assert trades(ledger) == [("B", "S2", 5_000, 200, 1_000, [("k1", 5_000)])]
    assert book_of(ledger) == {"sell": [("S1", 3_000, 100)], "buy": []}
    assert yen_of(ledger, "buyer") == (YEN - 1_000, 0)


def test_an_all_or_none_sell_trades_whole_with_one_buy_when_the_walk_cannot() -> None:
    ledger = world_with(N1)
    ledger.ok("buyer", buy_action("B1", 3_000, 500))
    ledger.ok("buyer2", buy_action("B2", 5_000, 400, aon=True))
    ledger.ok("moe", sell_action("S", 5_000, 100, aon=True))
    assert trades(ledger) == [("B2", "S", 5_000, 400, 2_000, [("n1", 5_000)])]
    assert book_of(ledger) == {"sell": [], "buy": [("B1", 3_000, 500)]}


# ---- no self-trade ---------------------------------------------------------------------------
def test_no_self_trade() -> None:
    ledger = world_with(N1, T1)
    ledger.ok("trader", sell_action("T", 1_000, 100))
    ledger.ok("trader", buy_action("TB", 1_000, 500))
    assert trades(ledger) == []  # crossed, but the same owner: both rest
    assert book_of(ledger) == {"sell": [("T", 1_000, 100)], "buy": [("TB", 1_000, 500)]}
    # another seller meets the trader's buy; another buyer meets the trader's sell
    ledger.ok("moe", sell_action("S", 1_000, 300))
    ledger.ok("buyer", buy_action("B", 1_000, 100))
    assert [t[:4] for t in trades(ledger)] == [("TB", "S", 1_000, 500), ("B", "T", 1_000, 100)]


def test_an_arriving_buy_skips_its_owners_cheaper_sell() -> None:
    ledger = world_with(N1, T1)
    ledger.ok("trader", sell_action("T", 1_000, 100))
    ledger.ok("moe", sell_action("S", 1_000, 300))
    ledger.ok("trader", buy_action("TB", 1_000, 500))
    assert [t[:4] for t in trades(ledger)] == [("TB", "S", 1_000, 300)]


# ---- price-time priority --------------------------------------------------------------------
def test_at_one_price_the_earlier_sell_fills_first_and_keeps_its_place() -> None:
    ledger = world_with(N1, K1)
    ledger.ok("maru", sell_action("S1", 1_000, 300, source=Source.wind, place="072036"))
    ledger.ok("moe", sell_action("S2", 1_000, 300))
    ledger.ok("buyer", buy_action("B1", 600, 300))
    ledger.ok("buyer", buy_action("B2", 600, 300))
    assert [t[:4] for t in trades(ledger)] == [
        ("B1", "S1", 600, 300),
        ("B2", "S1", 400, 300),
        ("B2", "S2", 200, 300),
    ]


def test_within_a_block_the_position_in_the_block_decides() -> None:
    ledger = world_with(N1, K1)
    result = ledger.block(
        [
            ledger.sign("moe", sell_action("S2", 1_000, 300)),
            ledger.sign("maru", sell_action("S1", 1_000, 300, source=Source.wind, place="072036")),
            ledger.sign("buyer", buy_action("B", 1_500, 300)),
        ]
    )
    assert [r.code for r in result.results] == ["ok"] * 3
    assert [t[:4] for t in trades(ledger)] == [("B", "S2", 1_000, 300), ("B", "S1", 500, 300)]


def test_a_better_price_beats_an_earlier_order() -> None:
    ledger = world_with(N1, K1)
    ledger.ok("moe", sell_action("S1", 1_000, 300))
    ledger.ok("maru", sell_action("S2", 1_000, 250, source=Source.wind, place="072036"))
    ledger.ok("buyer", buy_action("B", 1_500, 400))
    assert [t[:4] for t in trades(ledger)] == [("B", "S2", 1_000, 250), ("B", "S1", 500, 300)]


def test_an_arriving_sell_meets_the_dearest_buys_first_each_at_its_price() -> None:
    ledger = world_with(N1)
    ledger.ok("buyer", buy_action("B1", 1_000, 400))
    ledger.ok("buyer2", buy_action("B2", 1_000, 500))
    ledger.ok("trader", buy_action("B3", 1_000, 500))
    ledger.ok("buyer", buy_action("B4", 1_000, 299))
    ledger.ok("moe", sell_action("S", 5_000, 300))
    assert [t[:5] for t in trades(ledger)] == [
        ("B2", "S", 1_000, 500, 500),
        ("B3", "S", 1_000, 500, 500),
        ("B1", "S", 1_000, 400, 400),
    ]
    assert book_of(ledger) == {"sell": [("S", 2_000, 300)], "buy": [("B4", 1_000, 299)]}


# ---- conditions --------------------------------------------------------------------------------
def test_a_buy_naming_sellers_skips_the_others() -> None:
    ledger = world_with(N1, K1, H1)
    ledger.ok("moe", sell_action("S1", 1_000, 100))
    ledger.ok("maru", sell_action("S2", 1_000, 300, source=Source.wind, place="072036"))
    ledger.ok("hokkaido", sell_action("S3", 1_000, 200, place="01"))
    ledger.ok("buyer", buy_action("B", 3_000, 500, sellers=["maru", "hokkaido"]))
    assert [t[:4] for t in trades(ledger)] == [("B", "S3", 1_000, 200), ("B", "S2", 1_000, 300)]
    assert book_of(ledger) == {"sell": [("S1", 1_000, 100)], "buy": [("B", 1_000, 500)]}


def test_a_prefecture_contains_its_municipalities() -> None:
    ledger = world_with(K1, F1, N1)
    ledger.ok("maru", sell_action("S1", 1_000, 300, source=Source.wind, place="072036"))
    ledger.ok("maru", sell_action("S2", 1_000, 300, source=Source.solar, place="072010"))
    ledger.ok("moe", sell_action("S3", 1_000, 100))
    ledger.ok("buyer", buy_action("B", 5_000, 500, places=["07"]))
    assert [t[:2] for t in trades(ledger)] == [("B", "S1"), ("B", "S2")]


def test_a_municipality_does_not_contain_its_neighbour() -> None:
    ledger = world_with(K1, F1)
    ledger.ok("maru", sell_action("S1", 1_000, 100, source=Source.solar, place="072010"))
    ledger.ok("buyer", buy_action("B", 1_000, 500, places=["072036"]))
    assert trades(ledger) == []
    ledger.ok("maru", sell_action("S2", 1_000, 300, source=Source.wind, place="07"))
    assert [t[:2] for t in trades(ledger)] == [("B", "S2")]


def test_a_prefecture_listing_gives_a_municipal_buy_only_that_municipalitys_lots() -> None:
    ledger = world_with(N1, S1)
    ledger.ok("moe", sell_action("S", 9_000, 300, place="13"))  # lots: n1 5,000, s1 4,000
    ledger.ok("buyer", buy_action("B", 6_000, 400, places=["131121"]))
    assert trades(ledger) == [("B", "S", 4_000, 300, 1_200, [("s1", 4_000)])]
    assert book_of(ledger) == {"sell": [("S", 5_000, 300)], "buy": [("B", 2_000, 400)]}
    # the Nerima lots stay for a Nerima (or Tokyo) buyer, not for the Setagaya one
    ledger.ok("buyer2", buy_action("B2", 1_000, 300, places=["131202"]))
    assert trades(ledger)[-1] == ("B2", "S", 1_000, 300, 300, [("n1", 1_000)])
    assert book_of(ledger)["buy"] == [("B", 2_000, 400)]


def test_an_arriving_prefecture_listing_checks_the_resting_buys_lots() -> None:
    ledger = world_with(N1, S1)
    ledger.ok("buyer", buy_action("B", 5_000, 400, places=["131202"]))
    ledger.ok("buyer2", buy_action("B2", 5_000, 350, places=["13"]))
    ledger.ok("moe", sell_action("S", 9_000, 300, place="13"))
    assert trades(ledger) == [
        ("B", "S", 5_000, 400, 2_000, [("n1", 5_000)]),
        ("B2", "S", 4_000, 350, 1_400, [("s1", 4_000)]),
    ]
    assert book_of(ledger) == {"sell": [], "buy": [("B2", 1_000, 350)]}


def test_a_buy_naming_sources_skips_the_others() -> None:
    ledger = world_with(N1, K1)
    ledger.ok("moe", sell_action("S1", 1_000, 100))
    ledger.ok("maru", sell_action("S2", 1_000, 300, source=Source.wind, place="072036"))
    ledger.ok("buyer", buy_action("B", 2_000, 500, sources=[Source.wind, Source.hydro]))
    assert [t[:2] for t in trades(ledger)] == [("B", "S2")]


def test_generation_period_window() -> None:
    june_2 = day_start("2025-06-02")
    ledger = world_with(N1, N3)
    ledger.ok("moe", sell_action("S", 10_000, 300))  # lots n1 (June 1), n3 (June 3)
    ledger.ok("buyer", buy_action("B1", 6_000, 300, period_from_s=june_2))
    assert trades(ledger)[-1][5] == [("n3", 5_000)]
    ledger.ok("buyer", buy_action("B2", 6_000, 300, period_to_s=june_2))
    assert trades(ledger)[-1][5] == [("n1", 5_000)]
    assert book_of(ledger)["buy"] == [("B1", 1_000, 300), ("B2", 1_000, 300)]


def test_generation_period_window_takes_whole_periods_only() -> None:
    june_2, june_3, june_4 = (day_start(f"2025-06-0{d}") for d in (2, 3, 4))
    ledger = world_with(N3)
    ledger.ok("moe", sell_action("S", 5_000, 300))
    ledger.ok("buyer", buy_action("B1", 1_000, 300, period_from_s=june_2, period_to_s=june_3))
    assert trades(ledger) == []  # n3 ends on June 4
    ledger.ok("buyer", buy_action("B2", 1_000, 300, period_from_s=june_3, period_to_s=june_4))
    assert [t[:2] for t in trades(ledger)] == [("B2", "S")]


def test_commissioned_after() -> None:
    ledger = world_with(N1, S1)
    ledger.ok("moe", sell_action("S", 9_000, 300, place="13"))
    ledger.ok("buyer", buy_action("B1", 1_000, 300, commissioned_after="2020-07-15"))
    assert trades(ledger) == []  # setagaya-moe on that day, not after it
    ledger.ok("buyer", buy_action("B2", 1_000, 300, commissioned_after="2020-01-01"))
    assert trades(ledger)[-1][5] == [("s1", 1_000)]  # not the older Nerima device's n1


def test_exclude_estimated() -> None:
    ledger = market_world()
    issue_g(ledger, "e1", "nerima-moe", "2025-06-01", 2_000, estimated=True)
    issue_g(ledger, "m2", "nerima-moe", "2025-06-02", 2_000)
    ledger.ok("moe", sell_action("S", 4_000, 300))
    ledger.ok("buyer", buy_action("B1", 3_000, 300, exclude_estimated=True))
    assert trades(ledger)[-1][5] == [("m2", 2_000)]
    ledger.ok("buyer", buy_action("B2", 1_000, 300))
    assert trades(ledger)[-1][5] == [("e1", 1_000)]


def test_an_arriving_sell_checks_the_resting_buys_value_conditions() -> None:
    ledger = market_world()
    issue_g(ledger, "e1", "nerima-moe", "2025-06-01", 2_000, estimated=True)
    issue_g(ledger, "m2", "nerima-moe", "2025-06-02", 2_000)
    ledger.ok("buyer", buy_action("B", 3_000, 500, exclude_estimated=True))
    ledger.ok("moe", sell_action("S", 4_000, 300))
    assert trades(ledger) == [("B", "S", 2_000, 500, 1_000, [("m2", 2_000)])]
    assert book_of(ledger) == {"sell": [("S", 2_000, 300)], "buy": [("B", 1_000, 500)]}


def test_a_seller_chooses_its_buyers() -> None:
    ledger = world_with(N1)
    ledger.ok("buyer", buy_action("B1", 1_000, 900))
    ledger.ok("buyer2", buy_action("B2", 1_000, 400))
    ledger.ok("moe", sell_action("S", 2_000, 300, buyers=["buyer2"]))
    assert [t[:4] for t in trades(ledger)] == [("B2", "S", 1_000, 400)]
    ledger.ok("buyer", buy_action("B3", 1_000, 900))  # an arriving buy is refused too
    assert len(trades(ledger)) == 1
    assert book_of(ledger) == {
        "sell": [("S", 1_000, 300)],
        "buy": [("B1", 1_000, 900), ("B3", 1_000, 900)],
    }


def test_a_hidden_seller_is_matched_by_its_true_identity() -> None:
    ledger = world_with(H1)
    ledger.ok("hokkaido", sell_action("H", 2_000, 300, place="01", name_public=False))
    ledger.ok("buyer", buy_action("B0", 1_000, 500, sellers=["undisclosed"]))
    assert trades(ledger) == []
    ledger.ok("buyer2", buy_action("B", 1_000, 500, sellers=["hokkaido"]))
    (trade,) = trades_of(ledger)
    assert (trade.buy_order, trade.sell_order, trade.seller) == ("B", "H", "hokkaido")
    assert trade.seller_public is False
    state = ledger.app.state
    (public,) = market.trades(state)
    assert public["seller"] == market.UNDISCLOSED and "hokkaido" not in repr(public)
    (listing,) = market.book(state)["sell"]
    assert listing["seller"] == market.UNDISCLOSED and listing["seller_name"] == "非公表"
    assert "hokkaido" not in repr(listing)


# ---- expiry at block time ----------------------------------------------------------------------
def test_a_sell_expires_at_the_start_of_the_first_block_at_or_after_its_expiry() -> None:
    ledger = world_with(N1)
    placed_at = ledger.time_ns + 10 * S
    ledger.ok("moe", sell_action("S", 1_000, 300, expires_at_ns=placed_at + 10 * S))
    assert holding_of(ledger, "n1", "moe") == (4_000, 1_000, 0)
    # the next block's time equals the expiry: the order expires before the buy arrives
    ledger.ok("buyer", buy_action("B", 1_000, 300))
    assert trades(ledger) == []
    assert status(ledger, "S") is OrderStatus.expired
    assert holding_of(ledger, "n1", "moe") == (5_000, 0, 0)
    assert book_of(ledger) == {"sell": [], "buy": [("B", 1_000, 300)]}


def test_an_order_lives_until_its_expiry() -> None:
    ledger = world_with(N1)
    placed_at = ledger.time_ns + 10 * S
    ledger.ok("buyer", buy_action("B", 2_000, 300, expires_at_ns=placed_at + 10 * S + 1))
    ledger.ok("moe", sell_action("S", 500, 300))  # one nanosecond before: B still trades
    assert [t[:3] for t in trades(ledger)] == [("B", "S", 500)]
    assert yen_of(ledger, "buyer") == (YEN - 600, 450)
    ledger.block([])
    assert status(ledger, "B") is OrderStatus.expired
    assert yen_of(ledger, "buyer") == (YEN - 150, 0)  # the unused escrow is released
    assert book_of(ledger) == {"sell": [], "buy": []}


def test_expiry_comes_before_the_blocks_transactions() -> None:
    ledger = world_with(N1)
    placed_at = ledger.time_ns + 10 * S
    ledger.block(
        [
            ledger.sign("buyer", buy_action("B1", 1_000, 500, expires_at_ns=placed_at + 5 * S)),
            ledger.sign("buyer2", buy_action("B2", 1_000, 400)),
        ]
    )
    ledger.ok("moe", sell_action("S", 2_000, 300))
    assert [t[:4] for t in trades(ledger)] == [("B2", "S", 1_000, 400)]
    assert status(ledger, "B1") is OrderStatus.expired
    assert yen_of(ledger, "buyer") == (YEN, 0)


def test_several_orders_expire_in_one_block() -> None:
    ledger = world_with(N1)
    t = ledger.time_ns + 10 * S
    ledger.block(
        [
            ledger.sign("moe", sell_action("S1", 1_000, 900, expires_at_ns=t + 30 * S)),
            ledger.sign("moe", sell_action("S2", 1_000, 900, expires_at_ns=t + 20 * S)),
            ledger.sign("buyer", buy_action("B1", 1_000, 100, expires_at_ns=t + 25 * S)),
            ledger.sign("buyer", buy_action("B2", 1_000, 100)),
        ]
    )
    ledger.block([], advance_s=60)
    assert [status(ledger, o) for o in ("S1", "S2", "B1", "B2")] == [
        OrderStatus.expired,
        OrderStatus.expired,
        OrderStatus.expired,
        OrderStatus.open,
    ]
    assert holding_of(ledger, "n1", "moe") == (5_000, 0, 0)
    assert yen_of(ledger, "buyer") == (YEN - 100, 100)


# ---- matching decides, settlement applies --------------------------------------------------
def test_matching_alone_changes_nothing() -> None:
    ledger = world_with(N1, K1)
    ledger.ok("moe", sell_action("S1", 1_000, 300))
    ledger.ok("maru", sell_action("S2", 1_000, 200, source=Source.wind, place="072036"))
    ledger.ok("buyer", buy_action("B", 500, 100))
    state = ledger.app.state
    before = book_records(ledger)
    arriving_buy = state.buy_order("B")
    assert arriving_buy is not None
    probe = msgspec.structs.replace(
        arriving_buy, order_id="probe", owner="buyer2", remaining_g=1_500, price_sen_per_kg=400
    )
    fills = state.book.match_buy(probe)
    assert [(f.resting_order, f.quantity_g, f.price_sen_per_kg) for f in fills] == [
        ("S2", 1_000, 200),
        ("S1", 500, 300),
    ]
    resting_sell = state.sell_order("S1")
    assert resting_sell is not None
    fills = state.book.match_sell(
        msgspec.structs.replace(
            resting_sell, order_id="probe-sell", owner="maekawa", price_sen_per_kg=50
        )
    )
    assert [(f.resting_order, f.quantity_g, f.price_sen_per_kg) for f in fills] == [("B", 500, 100)]
    assert book_records(ledger) == before
    assert not state.has_changes()
