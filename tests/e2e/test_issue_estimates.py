"""Gap estimates in issuance with the real commands only: `reco2 mrv train` trains a small
anomaly model and gap estimator; `reco2 simulate` sends a small fleet's signed readings with gaps
to `reco2 intake` over HTTP; `reco2 issue-days --model --estimate-gaps` issues each day's
measured energy and, apart, the estimates of its gaps (the batch's ``estimated_intervals`` and
``estimated_wh``); a buy order with ``--exclude-estimated`` buys none of a seller's batches with
estimates, and one without it does.

What each batch must hold is computed here from the store's rows and the review store's
estimates (read with plain SQL)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reco2.node.view import StateView
from tests.e2e.harness import issue_days, run_cli, train_anomaly_model
from tests.e2e.test_meter_to_value import (
    STEP_TIMEOUT_S,
    Row,
    jst_day,
    send_simulated,
)

DEVICES = 6
DAYS = 8
SEED = 21
LAST_DAY = "2025-06-08"
TEST_TIMEOUT_S = 300


def wh(row: Row) -> int:
    return max(0, row.generation_wh - row.export_wh)


def tx(data_dir: Path, *args: object, key: str) -> dict[str, Any]:
    proc = run_cli("tx", *args, "-d", data_dir, "--json", "-k", key)
    receipt: dict[str, Any] = json.loads(proc.stdout)
    assert receipt["code"] == "ok", receipt
    return receipt


def stored_estimates(path: Path) -> dict[str, list[tuple[int, int, float, float, str]]]:
    """Per batch id: (interval start, Wh, quantile, confidence, version) of each estimate."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT device_id, interval_start_s, self_consumed_wh, quantile, confidence, "
            "model_version FROM estimates ORDER BY device_id, interval_start_s"
        ).fetchall()
    out: dict[str, list[tuple[int, int, float, float, str]]] = {}
    for device_id, start_s, value, quantile, confidence, version in rows:
        batch_id = f"{device_id}:{jst_day(start_s).isoformat()}"
        out.setdefault(batch_id, []).append((start_s, value, quantile, confidence, version))
    return out


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_gaps_issue_apart_and_a_buyer_can_exclude_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "chain"
    store_path = tmp_path / "readings.sqlite"
    store_url = f"sqlite://{store_path}"
    model = tmp_path / "models" / "anomaly"
    run_cli("init", "-d", data_dir, "--chain-id", "reco2-estimates")
    train_anomaly_model(model, DEVICES, DAYS, STEP_TIMEOUT_S)
    gaps_meta = json.loads(model.with_name("anomaly-gaps.json").read_text())
    fleet = (DEVICES, DAYS, SEED)
    rows = send_simulated(
        data_dir,
        store_path,
        tmp_path / "intake.log",
        fleet,
        "--faults",
        "gaps",
        "--fault-rate",
        "0.3",
    )

    # --estimate-gaps is a policy: not without --model, and off unless asked
    refused = run_cli("issue-days", "-d", data_dir, "--key", "mrv", "--estimate-gaps", expect=1)
    assert "--model" in refused.stderr
    run = issue_days(
        data_dir,
        store_url,
        "--model",
        model,
        "--review-days",
        "0",
        "--estimate-gaps",
        until_day=LAST_DAY,
        timeout=STEP_TIMEOUT_S,
    )
    assert run["estimator_version"] == gaps_meta["version"]
    estimates = stored_estimates(data_dir / "review.sqlite")
    assert estimates, "no gap was filled"
    view = StateView.open(data_dir)
    estimated_batches: dict[str, int] = {}
    measured_batches: dict[str, int] = {}
    for entry in run["days"]:
        if entry["outcome"] != "ok":
            continue
        batch = view.state.batch(entry["batch_id"])
        assert batch is not None
        counted = [
            r
            for r in rows.values()
            if r.device_id == entry["device_id"]
            and r.status == "accepted"
            and jst_day(r.start_s).isoformat() == entry["day"]
            and f"{r.device_id}/{r.start_s}" not in entry["withheld"]
        ]
        filled = estimates.get(entry["batch_id"], [])
        measured_at = {r.start_s for r in counted}
        assert not measured_at & {start_s for start_s, *_ in filled}
        assert all(
            (q, c, v)
            == (gaps_meta["quantile"], round(1 - gaps_meta["quantile"], 6), gaps_meta["version"])
            for _, _, q, c, v in filled
        )
        assert batch.measured_intervals == len(counted)
        assert batch.estimated_intervals == len(filled) == entry["estimated_intervals"]
        assert batch.estimated_wh == sum(value for _, value, *_ in filled) == entry["estimated_wh"]
        assert batch.self_consumed_wh == sum(wh(r) for r in counted) + batch.estimated_wh
        if batch.estimated_intervals:
            estimated_batches[batch.batch_id] = batch.co2_g
        elif batch.co2_g > 0:
            measured_batches[batch.batch_id] = batch.co2_g
    assert estimated_batches, "no batch holds estimated value"

    # ---- a seller whose value is part estimated, part measured, sells all of it
    owners: dict[str, set[str]] = {}
    for batch_id in estimated_batches | measured_batches:
        batch = view.state.batch(batch_id)
        assert batch is not None
        owners.setdefault(batch.owner, set()).add(batch_id)
    seller, mine = max(
        (
            (o, ids)
            for o, ids in owners.items()
            if ids & set(estimated_batches) and ids & set(measured_batches)
        ),
        key=lambda item: (len(item[1]), item[0]),
    )
    first = view.state.batch(sorted(mine)[0])
    assert first is not None
    total_g = sum((estimated_batches | measured_batches)[b] for b in mine)
    measured_g = sum(measured_batches.get(b, 0) for b in mine)
    for pid, role in (("buyer", "buyer"), ("bank", "settlement_agent")):
        public = run_cli("keygen", pid, "-d", data_dir).stdout.strip()
        tx(
            data_dir,
            "register-participant",
            pid,
            "--public-key",
            public,
            "--role",
            role,
            "--name",
            pid,
            key="authority",
        )
    tx(data_dir, "deposit", "buyer", "--amount-sen", 10**9, "--reference", "pay-1", key="bank")
    tx(
        data_dir,
        "sell",
        "S",
        "--quantity-kg",
        f"{total_g / 1000:.3f}",
        "--price-yen-per-kg",
        "1",
        "--source",
        first.source.value,
        "--place",
        first.municipality_code,
        key=seller,
    )

    # ---- a buyer that excludes estimated value gets the measured batches only
    tx(
        data_dir,
        "buy",
        "B1",
        "--quantity-kg",
        f"{total_g / 1000:.3f}",
        "--price-yen-per-kg",
        "1",
        "--exclude-estimated",
        key="buyer",
    )
    trades = json.loads(run_cli("trades", "-d", data_dir, "--json").stdout)
    bought = [(b, g) for t in trades if t["buy_order"] == "B1" for b, g in t["batches"]]
    assert bought, "the buyer bought none of the measured value"
    assert not {b for b, _ in bought} & set(estimated_batches), bought
    assert sum(g for _, g in bought) == measured_g

    # ---- one that does not exclude it buys the rest, estimated value included
    tx(
        data_dir,
        "buy",
        "B2",
        "--quantity-kg",
        f"{total_g / 1000:.3f}",
        "--price-yen-per-kg",
        "1",
        key="buyer",
    )
    trades = json.loads(run_cli("trades", "-d", data_dir, "--json").stdout)
    rest = {b for t in trades if t["buy_order"] == "B2" for b, _ in t["batches"]}
    assert rest and rest <= set(estimated_batches) & mine
