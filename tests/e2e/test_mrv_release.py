"""Screening before issuance, and the registry authority's release on the ledger, with the real
commands only: `reco2 mrv train` trains a small anomaly model; `reco2 simulate` sends a small
fleet's signed readings, with a neighbour's data copied into some device-days (a fault no
physical bound can catch), to `reco2 intake` over HTTP; `reco2 issue-days --model` holds every
day with a flagged reading (days of copied data among them) and issues the others; `reco2 mrv
flags` lists what is withheld; the aggregator cannot release a flagged reading, the authority
can (`reco2 mrv release`); once the review window is over the held days issue, counting the
released reading and nothing else the model flagged, and a release of a reading whose day is
issued is refused; `reco2 audit` passes.

What each batch must hold is computed here from the store's rows (decoded with a plain
MessagePack decoder) and the flags the runs printed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from reco2.ledger.state import release_key
from reco2.node.view import StateView
from tests.e2e.harness import audit_json, issue_days, run_cli, train_anomaly_model
from tests.e2e.test_meter_to_value import (
    STEP_TIMEOUT_S,
    Row,
    jst_day,
    send_simulated,
)

DEVICES = 8
DAYS = 8
SEED = 21  # the fleet; the model is trained on seed 11 and calibrated on 17
LAST_DAY = "2025-06-08"
TEST_TIMEOUT_S = 400


def issue(data_dir: Path, store_url: str, model: Path, *extra: object) -> dict[str, Any]:
    return issue_days(
        data_dir, store_url, "--model", model, *extra, until_day=LAST_DAY, timeout=STEP_TIMEOUT_S
    )


def wh(row: Row) -> int:
    return max(0, row.generation_wh - row.export_wh)


def day_rows(rows: dict[tuple[str, int], Row], device_id: str, day: str) -> list[Row]:
    return sorted(
        (
            r
            for r in rows.values()
            if r.device_id == device_id
            and r.status == "accepted"
            and jst_day(r.start_s).isoformat() == day
        ),
        key=lambda r: r.start_s,
    )


def rid(row: Row) -> str:
    return f"{row.device_id}/{row.start_s}"


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_flagged_readings_issue_nothing_until_the_authority_releases_them(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "chain"
    store_path = tmp_path / "readings.sqlite"
    store_url = f"sqlite://{store_path}"
    model = tmp_path / "models" / "anomaly"
    run_cli("init", "-d", data_dir, "--chain-id", "reco2-mrv-release")
    train_anomaly_model(model, DEVICES, DAYS, STEP_TIMEOUT_S)
    version = json.loads(model.with_suffix(".json").read_text())["version"]

    manifest_path = tmp_path / "faults.json"
    faults = ("--faults", "copy", "--fault-rate", "0.06", "--manifest", manifest_path)
    rows = send_simulated(
        data_dir, store_path, tmp_path / "intake.log", (DEVICES, DAYS, SEED), *faults
    )
    copied = {
        (entry["device_id"], jst_day(entry["interval_start_s"]).isoformat())
        for entry in json.loads(manifest_path.read_text())["entries"]
        if entry["kind"] == "copy"
    }
    assert copied, "the simulator injected no copied day"
    for device_id, day in copied:  # the intake's physical checks accept a neighbour's data
        assert len(day_rows(rows, device_id, day)) == 48

    # ---- the first run: every day with a flagged reading is held, the others issue whole
    first = issue(data_dir, store_url, model)
    assert first["model_version"] == version
    held = {(h["device_id"], h["day"]): h["withheld"] for h in first["held"]}
    # The small model catches copied days, not every one (recall is the held-out evaluation's
    # business, tests/unit/test_ai_anomaly.py); whatever it flagged must not issue.
    caught = copied & set(held)
    assert caught, f"no day of copied readings was held: {sorted(copied)}"
    view = StateView.open(data_dir)
    for device_id, day in held:
        assert view.state.batch(f"{device_id}:{day}") is None, "a held day issued value"
    assert len(first["days"]) + len(held) == DEVICES * DAYS
    for issued in first["days"]:
        assert issued["outcome"] == "ok" and issued["withheld"] == [], issued
        device_id, day = issued["device_id"], issued["day"]
        batch = view.state.batch(issued["batch_id"])
        assert batch is not None
        expected = day_rows(rows, device_id, day)
        assert batch.measured_intervals == len(expected)
        assert batch.self_consumed_wh == sum(wh(r) for r in expected)

    # ---- the reviewer's list: every withheld reading, with its score, none released yet
    listed = json.loads(run_cli("mrv", "flags", "-d", data_dir, "--json").stdout)["flags"]
    assert {f["reading_id"] for f in listed} == {r for w in held.values() for r in w}
    assert all(f["model_version"] == version and not f["released"] for f in listed)
    assert all(
        f["score"] >= json.loads(model.with_suffix(".json").read_text())["threshold"]
        for f in listed
    )

    # ---- a release: the aggregator may not; the registry authority may, once
    device_id, day = max(caught, key=lambda k: (len(held[k]), k))
    flagged = [r for r in day_rows(rows, device_id, day) if rid(r) in held[(device_id, day)]]
    chosen = max(flagged, key=lambda r: (wh(r), r.start_s))
    assert wh(chosen) > 0
    where = ("-d", data_dir, "--store", store_url)
    refused = run_cli("mrv", "release", rid(chosen), *where, "--key", "mrv", expect=2)
    assert "role_not_allowed" in refused.stderr
    receipt = json.loads(
        run_cli(
            "mrv",
            "release",
            rid(chosen),
            *where,
            "--key",
            "authority",
            "--note",
            "inverter log checked on site",
            "--json",
        ).stdout
    )
    assert receipt["code"] == "ok", receipt
    again = run_cli("mrv", "release", rid(chosen), *where, "--key", "authority", "--json", expect=2)
    assert json.loads(again.stdout)["code"] == "reading_already_released"
    view = StateView.open(data_dir)
    record = view.state.release(device_id, chosen.start_s, version)
    assert record is not None and record.reviewer == "authority"
    assert record.reading_hash == hashlib.sha256(chosen.raw).digest()
    assert release_key(device_id, chosen.start_s, version).decode() in receipt["events"]

    listed = json.loads(run_cli("mrv", "flags", "-d", data_dir, "--json").stdout)["flags"]
    assert [f["reading_id"] for f in listed if f["released"]] == [rid(chosen)]

    # ---- inside the review window a day with an unreleased flag stays held
    second = issue(data_dir, store_url, model)
    still = {(h["device_id"], h["day"]) for h in second["held"]}
    unreleased = set(held[(device_id, day)]) - {rid(chosen)}
    assert unreleased, "the copied day had one flagged reading only"
    assert (device_id, day) in still
    assert second["days"] == [] and still == set(held)

    # ---- after it, held days issue without what nobody released, with what was released
    third = issue(data_dir, store_url, model, "--review-days", "0")
    assert third["held"] == []
    decided = {(d["device_id"], d["day"]): d for d in third["days"]}
    assert set(decided) == set(held)
    view = StateView.open(data_dir)
    for key, withheld in held.items():
        entry = decided[key]
        kept = [r for r in day_rows(rows, *key) if rid(r) not in withheld]
        released = [rid(chosen)] if key == (device_id, day) else []
        assert entry["released"] == released
        assert sorted(entry["withheld"]) == sorted(set(withheld) - set(released))
        counted = kept + [chosen] * bool(released)
        batch = view.state.batch(entry["batch_id"])
        if not counted:
            assert entry["outcome"] == "flagged_by_anomaly_model" and entry["tx_hash"] is None
            assert batch is None
            continue
        assert entry["outcome"] == "ok", entry
        assert batch is not None
        assert batch.measured_intervals == len(counted)
        assert batch.self_consumed_wh == sum(wh(r) for r in counted)
    released_batch = view.state.batch(f"{device_id}:{day}")
    assert released_batch is not None and released_batch.self_consumed_wh >= wh(chosen) > 0

    # ---- a release of a reading whose day is issued can never count: refused
    late = sorted(unreleased)[0]
    late_row = next(r for r in flagged if rid(r) == late)
    proc = run_cli(
        "tx",
        "release-reading",
        late,
        "--hash",
        hashlib.sha256(late_row.raw).hexdigest(),
        "--model-version",
        version,
        "-d",
        data_dir,
        "--key",
        "authority",
        "--json",
        expect=2,
    )
    assert json.loads(proc.stdout)["code"] == "reading_already_issued"

    code, report = audit_json(data_dir)
    assert code == 0 and report["ok"], report["problems"][:5]
