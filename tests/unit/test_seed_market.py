"""The seed's market picture (seed/READING.md; issue 3's "Show"): the shipped scenario, run on a
fresh embedded ledger, gives exactly the three trades of the seed and the final book, and the
public view hides S1's seller while the state holds its true owner.

Quantities in g, prices in sen per kg: 5 kg @ 4 yen = 5,000 g @ 400 sen/kg.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reco2.cli.market import seed_scenario
from reco2.ledger import invariants
from reco2.node.view import StateView
from reco2.scenario import model, runner
from reco2.views import market

#: The installed command, beside the interpreter running the tests (the venv's bin).
RECO2 = str(Path(sys.executable).with_name("reco2"))

TRADES = [
    # buy, sell, g, sen/kg
    ("B2", "S2", 5_000, 400),
    ("B3", "S3", 4_000, 300),
    ("B4", "S4", 3_000, 600),
]
SELLS = [
    # id, g left, all-or-none, sen/kg, public seller, place, source (priority: cheapest first)
    ("S3", 8_000, False, 200, "moe", "131202", "solar"),
    ("S1", 1_000, True, 300, market.UNDISCLOSED, "01", "solar"),
    ("S2", 25_000, False, 300, "maru-batsu", "072036", "wind"),
]
BUYS = [
    # id, g left, all-or-none, sen/kg (priority: dearest first)
    ("B4", 7_000, False, 1_000),
    ("B1", 3_000, False, 100),
]


def trade_rows(trades: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    return [
        (t["buy_order"], t["sell_order"], t["quantity_g"], t["price_sen_per_kg"]) for t in trades
    ]


def sell_rows(book: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            o["order_id"],
            o["quantity_g"],
            o["all_or_none"],
            o["price_sen_per_kg"],
            o["seller"],
            o["place"],
            o["source"],
        )
        for o in book["sell"]
    ]


def buy_rows(book: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (o["order_id"], o["quantity_g"], o["all_or_none"], o["price_sen_per_kg"])
        for o in book["buy"]
    ]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> runner.ScenarioResult:
    data_dir = tmp_path_factory.mktemp("seed") / "chain"
    return runner.run(model.load(seed_scenario()), data_dir)


def test_every_step_of_the_seed_succeeds(seed_run: runner.ScenarioResult) -> None:
    assert seed_run.failures == []
    labels = [label for label, _ in seed_run.receipts]
    for order in ("S1", "B1", "B2", "B3", "S2", "S3", "S4", "B4"):
        assert any(label.endswith(f" {order}") for label in labels), order


def test_the_seed_gives_exactly_the_three_trades(seed_run: runner.ScenarioResult) -> None:
    assert trade_rows(seed_run.trades) == TRADES
    # trade value = floor(g x sen/kg / 1000): 2,000, 1,200 and 1,800 sen
    assert [t["value_sen"] for t in seed_run.trades] == [2_000, 1_200, 1_800]
    assert not any(t["buy_order"] == "B1" for t in seed_run.trades)
    assert not any(t["sell_order"] == "S1" for t in seed_run.trades)
    assert [t["batches"] for t in seed_run.trades] == [
        [["koriyama-wind:2025-06-01", 5_000]],
        [["nerima-pv:2025-06-01", 4_000]],
        [["setagaya-pv:2025-06-01", 3_000]],
    ]


def test_the_final_book(seed_run: runner.ScenarioResult) -> None:
    assert sell_rows(seed_run.book) == SELLS
    assert buy_rows(seed_run.book) == BUYS
    b4 = next(o for o in seed_run.book["buy"] if o["order_id"] == "B4")
    assert b4["sellers"] == ["maekawa"]


def test_the_board_uses_the_seeds_labels(seed_run: runner.ScenarioResult) -> None:
    board = seed_run.board
    assert board["trades"] == [
        ["B2", "S2", "5", "4"],
        ["B3", "S3", "4", "3"],
        ["B4", "S4", "3", "6"],
    ]
    s1 = next(row for row in board["sell"] if row[0] == "S1")
    assert s1 == ["S1", "1", "3", "非公表", "北海道", "太陽光"]
    s2 = next(row for row in board["sell"] if row[0] == "S2")
    assert s2 == ["S2", "25まで", "3", "〇×株式会社", "福島県郡山市", "風力"]
    b1 = next(row for row in board["buy"] if row[0] == "B1")
    assert b1 == ["B1", "3まで", "1", "不問", "不問", "不問"]


def test_the_state_holds_the_truth_the_public_view_hides(
    seed_run: runner.ScenarioResult,
) -> None:
    view = StateView.open(seed_run.data_dir)
    state = view.state
    s1 = state.sell_order("S1")
    assert s1 is not None
    assert s1.owner == "hokkaido-home" and s1.name_public is False
    assert (s1.remaining_g, s1.all_or_none, s1.price_sen_per_kg) == (1_000, True, 300)
    public = next(o for o in market.book(state)["sell"] if o["order_id"] == "S1")
    assert public["seller"] == market.UNDISCLOSED
    assert public["seller_name"] == "非公表"
    assert "hokkaido" not in json.dumps(public, ensure_ascii=False)
    # the views read from a restarted state give the runner's answer
    assert market.book(state) == seed_run.book
    assert trade_rows(market.trades(state)) == TRADES
    # and every DESIGN section 7 invariant holds, including no eligible crossed pair
    # (B4 at 10 yen faces S2 at 3 yen: a condition, not a price, keeps them apart)
    assert invariants.check(state) == []


def test_reco2_demo_json(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [RECO2, "demo", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert trade_rows(out["trades"]) == TRADES
    assert sell_rows(out["book"]) == SELLS
    assert buy_rows(out["book"]) == BUYS
    assert out["audit_ok"] is True
    assert out["proof_ok"] is True
    assert [s["code"] for s in out["steps"]] == ["ok"] * len(out["steps"])
    # the public output never names S1's seller; the data directory does
    assert "hokkaido-home" not in json.dumps(out["book"], ensure_ascii=False)
    assert all(t["seller"] != "hokkaido-home" for t in out["trades"])
    s1 = StateView.open(data_dir).state.sell_order("S1")
    assert s1 is not None and s1.owner == "hokkaido-home"
