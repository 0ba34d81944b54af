"""`reco2 issue-days` on its own: idempotent runs, a day the ledger refuses kept with its outcome
code, a run that died between the ledger's receipt and the store's row recovered without a
second batch, and submission to a running node over HTTP.

Readings reach the store through the intake engine in this process (the real engine, the real
device lookup in the ledger's file, a real SQLite store); the intake process and its transports
have their own tests in test_intake.py.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path
from typing import Any

from reco2.ingest.devices import LedgerDevices
from reco2.ingest.engine import IntakeEngine
from reco2.ledger.calendar import jst_midnight_s
from reco2.ledger.types import SchemeEnrollment, Source
from reco2.mrv.readings import sign_reading
from reco2.mrv.store import Status, open_store
from reco2.node.view import StateView
from tests.e2e.harness import NodeProcess, audit_json, issue_days
from tests.e2e.test_intake import (
    FIRST_DAY,
    Meter,
    day_starts,
    expected_batches,
    meter_readings,
    new_chain,
)

PLAIN = Meter("pv-plain", Source.solar, 4_500, "13", "131202", 3574, 13965)
ENROLLED = Meter("pv-jcredit", Source.solar, 4_500, "13", "131202", 3574, 13965)
SECOND_DAY = FIRST_DAY + dt.timedelta(days=1)
LAST_DAY = FIRST_DAY + dt.timedelta(days=2)


def issue(data_dir: Path, store_url: str, until: dt.date, *extra: str) -> list[dict[str, Any]]:
    days: list[dict[str, Any]] = issue_days(
        data_dir, store_url, *extra, until_day=until.isoformat()
    )["days"]
    return days


def outcomes(days: list[dict[str, Any]]) -> dict[str, str]:
    return {d["batch_id"]: d["outcome"] for d in days}


def test_issue_days_is_idempotent_keeps_refusals_and_recovers_from_a_crash(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "chain"
    # pv-jcredit is enrolled in J-Credit for the second day: the ledger must refuse that day.
    second = jst_midnight_s(SECOND_DAY)
    new_chain(
        data_dir,
        [PLAIN, ENROLLED],
        {ENROLLED.device_id: [SchemeEnrollment("j-credit", second, second + 86_400)]},
    )
    rng = random.Random("issue days")
    readings = [
        r
        for meter in (PLAIN, ENROLLED)
        for r in meter_readings(meter, day_starts(FIRST_DAY, 3), rng)
    ]
    store_url = f"sqlite://{tmp_path / 'readings.sqlite'}"
    store = open_store(store_url)
    devices = LedgerDevices(data_dir)
    with IntakeEngine(store, devices) as engine:
        raws = [sign_reading(r, seed_for(r.device_id)) for r in readings]
        answers = engine.ingest(raws)
    assert {a.status for a in answers} == {Status.accepted}
    devices.close()

    first = issue(data_dir, store_url, FIRST_DAY)
    assert outcomes(first) == {
        f"pv-plain:{FIRST_DAY}": "ok",
        f"pv-jcredit:{FIRST_DAY}": "ok",
    }
    # A run that died after the ledger committed pv-plain's first day, before the store
    # recorded it: the row is gone, the batch is on the ledger.
    with sqlite3.connect(tmp_path / "readings.sqlite") as conn:
        conn.execute("DELETE FROM issued_days WHERE batch_id = ?", (f"pv-plain:{FIRST_DAY}",))
    rest = issue(data_dir, store_url, LAST_DAY)
    assert outcomes(rest) == {
        f"pv-plain:{FIRST_DAY}": "ok",  # recovered from the ledger, not issued twice
        f"pv-plain:{SECOND_DAY}": "ok",
        f"pv-plain:{LAST_DAY}": "ok",
        f"pv-jcredit:{SECOND_DAY}": "device_enrolled_elsewhere",
        f"pv-jcredit:{LAST_DAY}": "ok",
    }
    recovered = next(d for d in rest if d["batch_id"] == f"pv-plain:{FIRST_DAY}")
    original = next(d for d in first if d["batch_id"] == f"pv-plain:{FIRST_DAY}")
    assert recovered["tx_hash"] == original["tx_hash"]

    # Nothing is left to issue, and a refused day is not tried again unless asked.
    assert issue(data_dir, store_url, LAST_DAY) == []
    again = issue(data_dir, store_url, LAST_DAY, "--retry-refused")
    assert outcomes(again) == {f"pv-jcredit:{SECOND_DAY}": "device_enrolled_elsewhere"}
    with open_store(store_url) as reopened:
        recorded = {d.batch_id: d.outcome for d in reopened.issued_days()}
    assert recorded[f"pv-jcredit:{SECOND_DAY}"] == "device_enrolled_elsewhere"
    assert len(recorded) == 6

    # The ledger holds exactly the five issued batches, with the value computed here.
    view = StateView.open(data_dir)
    # The refused day issued nothing, so pv-jcredit's carry goes from its first day to its third.
    refused = [
        r for r in readings if r.device_id == "pv-jcredit" and _on(r.interval_start_s, second)
    ]
    expected = expected_batches([r for r in readings if r not in refused])
    for batch_id, want in expected.items():
        batch = view.state.batch(batch_id)
        assert batch is not None, batch_id
        assert (batch.self_consumed_wh, batch.co2_g, batch.readings_root) == (
            want.self_consumed_wh,
            want.co2_g,
            want.root,
        ), batch_id
    assert view.state.batch(f"pv-jcredit:{SECOND_DAY}") is None
    code, report = audit_json(data_dir)
    assert code == 0 and report["ok"], report["problems"][:5]
    store.close()


def test_issue_days_submits_to_a_running_node(tmp_path: Path) -> None:
    data_dir = tmp_path / "chain"
    new_chain(data_dir, [PLAIN])
    rng = random.Random("issue over http")
    readings = meter_readings(PLAIN, day_starts(FIRST_DAY, 2), rng)
    store_url = f"sqlite://{tmp_path / 'readings.sqlite'}"
    with open_store(store_url) as store:
        devices = LedgerDevices(data_dir)
        with IntakeEngine(store, devices, workers=1) as engine:
            answers = engine.ingest([sign_reading(r, PLAIN.seed) for r in readings])
        devices.close()
    assert {a.status for a in answers} == {Status.accepted}
    with NodeProcess(data_dir, tmp_path / "node.log") as node:
        days = issue(data_dir, store_url, SECOND_DAY, "--node", node.url)
        assert outcomes(days) == {f"pv-plain:{FIRST_DAY}": "ok", f"pv-plain:{SECOND_DAY}": "ok"}
        assert issue(data_dir, store_url, SECOND_DAY, "--node", node.url) == []
    view = StateView.open(data_dir)
    for batch_id, want in expected_batches(readings).items():
        batch = view.state.batch(batch_id)
        assert batch is not None and batch.co2_g == want.co2_g, batch_id
    assert audit_json(data_dir)[0] == 0


def _on(instant_s: int, day_start_s: int) -> bool:
    return day_start_s <= instant_s < day_start_s + 86_400


def seed_for(device_id: str) -> bytes:
    return PLAIN.seed if device_id == PLAIN.device_id else ENROLLED.seed
