"""From meter to value with the real commands only: `reco2 simulate` signs a week of a small
fleet's readings (with injected night and inflated generation) and publishes them through a real
Mosquitto broker to `reco2 intake` (its own process); `reco2 issue-days` turns the stored days
into batches on the ledger, and `reco2 audit` re-verifies the chain.

Everything the ledger holds is checked against what the test computes on its own from the
readings store: each stored envelope is decoded here with a plain MessagePack decoder and its
Ed25519 signature checked against the meter key on the ledger; self-consumed Wh, the FY2025
national factor (423 mg/Wh), the floor to grams and the sub-gram carry chained per device are
computed here; only the Merkle root uses the project's ``quantify.readings_root`` (the tree
itself is tested elsewhere).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nacl.bindings
import nacl.exceptions
import pytest

from reco2.ingest.simulator import Fleet, Signed, Simulation, make_fleet, parse_faults
from reco2.ledger.types import Source, ValueBatch
from reco2.mrv.quantify import readings_root
from reco2.mrv.readings import Reading
from reco2.node.view import StateView
from tests.e2e.harness import RECO2, audit_json, cli_env, free_port, issue_days, run_cli
from tests.services import Broker, mosquitto_fixture  # noqa: F401 (fixture)

JST = dt.timezone(dt.timedelta(hours=9))
FACTOR_MG_PER_WH = 423  # FY2025 national average (全国平均係数 0.000423 t-CO2/kWh)
READING_DOMAIN = b"reco2/reading/v1\n"  # what a meter signs: this tag, then the reading body
AGGREGATOR = "mrv"

#: The week: 2025-06-01 .. 2025-06-07 JST (FY2025, long past).
START_DAY = dt.date(2025, 6, 1)
DAYS = 7
DEVICES = 6
SEED = 11
FAULTS = "night,inflated"
FAULT_RATE = 0.05

READY_TIMEOUT_S = 90.0
STORED_TIMEOUT_S = 90.0
STEP_TIMEOUT_S = 150.0
#: A hard bound on each test (about 25 s and 10 s on an idle 2-core machine).
TEST_TIMEOUT_S = 180


# ---- `reco2 intake` in its own process --------------------------------------------------------


@dataclass
class Intake:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4_000:]
        except FileNotFoundError:
            return "(no log)"

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/status", timeout=10.0)
        response.raise_for_status()
        return dict(response.json())

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, f"intake exited {self.proc.returncode}:\n{self.log()}"

    def stop(self) -> None:
        """SIGTERM, which must end it cleanly (exit 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                raise AssertionError(f"intake ignored SIGTERM for 60 s:\n{self.log()}") from None
        assert self.proc.returncode == 0, f"intake exited {self.proc.returncode}:\n{self.log()}"


@contextlib.contextmanager
def running_intake(
    data_dir: Path, store_url: str, log_path: Path, broker: Broker | None
) -> Iterator[Intake]:
    """`reco2 intake` on a free loopback port, ready (and subscribed, with a broker) on entry;
    killed on exit if the test did not stop it."""
    intake: Intake | None = None
    for _attempt in range(5):  # the free port may be taken before the intake binds it
        port = free_port()
        argv = [
            str(RECO2),
            "intake",
            "-d",
            str(data_dir),
            "--store",
            store_url,
            "--http-port",
            str(port),
            "--mqtt-client-id",
            "reco2-intake-meter-to-value",
        ]
        if broker is None:
            argv.append("--no-mqtt")
        else:
            argv += ["--mqtt-host", broker.host, "--mqtt-port", str(broker.port)]
        with log_path.open("ab") as log:
            log.write(f"\n--- start on port {port}\n".encode())
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=cli_env())
        candidate = Intake(proc, port, log_path)
        if _wait_ready(candidate, broker is not None):
            intake = candidate
            break
        if "could not listen" not in candidate.log() and "in use" not in candidate.log():
            break
    assert intake is not None, f"intake did not start:\n{log_path.read_text(errors='replace')}"
    try:
        yield intake
    finally:
        if intake.proc.poll() is None:
            intake.proc.kill()
            intake.proc.wait(timeout=30)


def _wait_ready(intake: Intake, mqtt: bool) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if intake.proc.poll() is not None:
            return False
        with contextlib.suppress(httpx.TransportError, httpx.HTTPStatusError):
            status = intake.status()
            if not mqtt or status["mqtt"]["subscribed"]:
                return True
        time.sleep(0.1)
    intake.proc.kill()
    intake.proc.wait(timeout=30)
    raise AssertionError(f"intake not ready after {READY_TIMEOUT_S} s:\n{intake.log()}")


# ---- the readings store, read on its own ------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A row of the store's ``readings`` table, its envelope decoded by the test."""

    device_id: str
    start_s: int
    status: str
    reasons: tuple[str, ...]
    raw: bytes
    body: bytes
    signature: bytes
    fields: tuple[Any, ...]  # device, start, generation, export, import, counters

    @property
    def generation_wh(self) -> int:
        return int(self.fields[2])

    @property
    def export_wh(self) -> int:
        return int(self.fields[3])


def open_readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)


def stored_count(path: Path) -> int:
    """Rows of ``readings`` (one per device interval received) as committed now."""
    if not path.exists():
        return 0
    with contextlib.closing(open_readonly(path)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0])


def stored_rows(path: Path) -> dict[tuple[str, int], Row]:
    rows: dict[tuple[str, int], Row] = {}
    with contextlib.closing(open_readonly(path)) as conn:
        found = conn.execute(
            "SELECT device_id, interval_start_s, status, reasons, raw FROM readings"
        ).fetchall()
    for device_id, start_s, status, reasons, raw in found:
        body, signature = msgspec.msgpack.decode(bytes(raw))
        fields = tuple(msgspec.msgpack.decode(body))
        assert len(fields) == 7 and fields[:2] == (device_id, start_s), fields
        rows[(device_id, start_s)] = Row(
            device_id,
            int(start_s),
            str(status),
            tuple(json.loads(reasons)),
            bytes(raw),
            bytes(body),
            bytes(signature),
            fields,
        )
    return rows


def signed_by(row: Row, meter_public_key: bytes) -> bool:
    try:
        nacl.bindings.crypto_sign_open(row.signature + READING_DOMAIN + row.body, meter_public_key)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


def jst_day(start_s: int) -> dt.date:
    return dt.datetime.fromtimestamp(start_s, JST).date()


def jst_midnight(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=JST).timestamp())


@dataclass(frozen=True)
class Expected:
    day_start_s: int
    readings: list[Row]
    self_consumed_wh: int
    carried_in_mg: int
    co2_g: int
    carried_out_mg: int


def expected_batches(rows: dict[tuple[str, int], Row]) -> dict[str, Expected]:
    """Batch id -> what the ledger must hold, from the accepted rows alone: per device and JST
    day, Wh = sum max(0, generation - export); g = floor((Wh x 423 + carry) / 1000), the
    remainder carried to the device's next day."""
    by_day: dict[tuple[str, dt.date], list[Row]] = {}
    for row in rows.values():
        if row.status == "accepted":
            by_day.setdefault((row.device_id, jst_day(row.start_s)), []).append(row)
    carry: dict[str, int] = {}
    out: dict[str, Expected] = {}
    for (device_id, day), day_rows in sorted(by_day.items()):
        day_rows.sort(key=lambda r: r.start_s)
        wh = sum(max(0, r.generation_wh - r.export_wh) for r in day_rows)
        carried_in = carry.get(device_id, 0)
        total_mg = wh * FACTOR_MG_PER_WH + carried_in
        carry[device_id] = total_mg % 1_000
        out[f"{device_id}:{day.isoformat()}"] = Expected(
            jst_midnight(day), day_rows, wh, carried_in, total_mg // 1_000, total_mg % 1_000
        )
    return out


def send_simulated(
    data_dir: Path, store_path: Path, log_path: Path, fleet: tuple[int, int, int], *extra: object
) -> dict[tuple[str, int], Row]:
    """`reco2 simulate` of a fleet (devices, days, seed) with ``extra`` options (faults) over
    HTTP to an intake storing in ``store_path`` (SQLite); every reading is acknowledged without
    errors. Returns the stored rows."""
    with running_intake(data_dir, f"sqlite://{store_path}", log_path, None) as intake:
        sim = run_cli(
            *simulate_args(data_dir, *fleet), "--http", intake.url, *extra, timeout=STEP_TIMEOUT_S
        )
        send = json.loads(sim.stdout)["send"]
        assert send["sent"] == send["acknowledged"] and not send["errors"], send
        intake.stop()
    return stored_rows(store_path)


def simulate_args(data_dir: Path, devices: int, days: int, seed: int) -> list[object]:
    return [
        "simulate",
        "--devices",
        devices,
        "--days",
        days,
        "--seed",
        seed,
        "--start-day",
        START_DAY.isoformat(),
        "-d",
        data_dir,
        "--register",
        "--json",
    ]


# ---- the week ---------------------------------------------------------------------------------


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_a_simulated_week_through_mosquitto_becomes_the_right_value(
    tmp_path: Path, mosquitto: Broker
) -> None:
    data_dir = tmp_path / "chain"
    store_path = tmp_path / "readings.sqlite"
    store_url = f"sqlite://{store_path}"
    manifest_path = tmp_path / "m.json"
    run_cli("init", "-d", data_dir, "--chain-id", "reco2-meter-to-value")

    with running_intake(data_dir, store_url, tmp_path / "intake.log", mosquitto) as intake:
        sim = run_cli(
            *simulate_args(data_dir, DEVICES, DAYS, SEED),
            "--mqtt-host",
            mosquitto.host,
            "--mqtt-port",
            mosquitto.port,
            "--faults",
            FAULTS,
            "--fault-rate",
            FAULT_RATE,
            "--manifest",
            manifest_path,
            "--ack-timeout",
            60,
            timeout=STEP_TIMEOUT_S,
        )
        summary = json.loads(sim.stdout)
        send = summary["send"]
        assert send["transport"] == "mqtt" and not send["errors"], send
        assert send["sent"] == send["acknowledged"] == summary["readings"], send
        acknowledged = send["acknowledged"]
        # The broker acknowledged them; the intake acknowledges to the broker after committing.
        deadline = time.monotonic() + STORED_TIMEOUT_S
        while stored_count(store_path) < acknowledged:
            intake.assert_alive()
            assert time.monotonic() < deadline, (
                f"{stored_count(store_path)} of {acknowledged} stored after "
                f"{STORED_TIMEOUT_S} s: {intake.status()}\n{intake.log()}"
            )
            time.sleep(0.2)
        intake.stop()

    rows = stored_rows(store_path)
    # Every reading the broker acknowledged is stored, byte for byte, once per interval: the
    # same seed gives the same signed bytes, regenerated here in-process.
    fleet = make_fleet(SEED, DEVICES, START_DAY, DAYS)
    sent = {(s.reading.device_id, s.reading.interval_start_s): s.raw for s in _readings(fleet)}
    assert len(sent) == acknowledged
    assert set(rows) == set(sent)
    assert all(rows[key].raw == raw for key, raw in sent.items())

    manifest = json.loads(manifest_path.read_text("utf-8"))
    faulty = {(e["device_id"], e["interval_start_s"]): e["kind"] for e in manifest["entries"]}
    kinds = manifest["readings_by_kind"]
    assert kinds["night"] > 0 and kinds["inflated"] > 0, kinds
    assert set(faulty.values()) == {"night", "inflated"}
    assert len(faulty) == len(manifest["entries"]) == sum(kinds.values())

    view = StateView.open(data_dir)
    devices = {}
    for device_id in {key[0] for key in rows}:
        device = view.state.device(device_id)
        assert device is not None, device_id
        devices[device_id] = device

    # (3) The impossible readings are rejected for physics, and nothing else is rejected.
    for key, kind in faulty.items():
        row = rows[key]
        source = devices[row.device_id].source
        reason = (
            "generation_exceeds_capacity"
            if kind == "inflated" and source is Source.wind
            else "generation_exceeds_clear_sky_bound"
        )
        assert row.status == "rejected" and reason in row.reasons, (kind, source, row)
    rejected = {key for key, row in rows.items() if row.status != "accepted"}
    assert rejected == set(faulty), {key: rows[key].reasons for key in rejected - set(faulty)}
    for row in rows.values():
        assert signed_by(row, devices[row.device_id].meter_public_key), row

    issued = issue_days(data_dir, store_url, key=AGGREGATOR, timeout=STEP_TIMEOUT_S)
    expected = expected_batches(rows)
    assert len(expected) == DEVICES * DAYS  # a faulty day keeps its honest intervals

    # (1) Exactly one batch per device-day with accepted readings, named <device>:<day>.
    assert sorted(d["batch_id"] for d in issued["days"]) == sorted(expected)
    assert {d["outcome"] for d in issued["days"]} == {"ok"}, issued["days"]
    view = StateView.open(data_dir)
    on_ledger: dict[str, ValueBatch] = {}
    for state_key, found in view.state.records_with_prefix(b"batch/"):
        assert isinstance(found, ValueBatch)
        on_ledger[state_key.decode().removeprefix("batch/")] = found
    assert sorted(on_ledger) == sorted(expected)

    # (2) Each batch's value and root from the accepted readings, computed here.
    for batch_id, want in expected.items():
        batch = on_ledger[batch_id]
        device_id = batch_id.split(":")[0]
        root = readings_root([Reading(*r.fields) for r in want.readings])
        assert (
            batch.device_id,
            batch.period_start_s,
            batch.period_end_s,
            batch.self_consumed_wh,
            batch.measured_intervals,
            batch.estimated_intervals,
            batch.factor_fiscal_year,
            batch.factor_mg_per_wh,
            batch.carried_in_mg,
            batch.co2_g,
            batch.carried_out_mg,
            batch.readings_root,
        ) == (
            device_id,
            want.day_start_s,
            want.day_start_s + 86_400,
            want.self_consumed_wh,
            len(want.readings),
            0,
            2025,
            FACTOR_MG_PER_WH,
            want.carried_in_mg,
            want.co2_g,
            want.carried_out_mg,
            root,
        ), batch_id
        # No injected reading is among the leaves of any batch.
        assert not {(r.device_id, r.start_s) for r in want.readings} & set(faulty)
    assert sum(b.co2_g for b in on_ledger.values()) > 0
    # The same through the command line, for one batch of each faulty device-day.
    for device_id, day in sorted({(d, jst_day(s)) for d, s in faulty}):
        batch_id = f"{device_id}:{day.isoformat()}"
        shown = json.loads(run_cli("query", f"batch/{batch_id}", "-d", data_dir).stdout)
        # A record prints as an object with every field of its struct.
        record = shown["record"]
        assert list(record) == list(ValueBatch.__struct_fields__)
        assert record["co2_g"] == expected[batch_id].co2_g, (batch_id, record)
        assert record["measured_intervals"] == len(expected[batch_id].readings) < 48

    # (4) The chain re-verifies from genesis.
    code, report = audit_json(data_dir)
    assert code == 0 and report["ok"], report["problems"][:5]


def _readings(fleet: Fleet) -> Iterator[Signed]:
    yield from Simulation(fleet, parse_faults(FAULTS, FAULT_RATE)).readings()


# ---- the same small fleet over HTTP -----------------------------------------------------------


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_a_simulated_fleet_over_http_is_stored_as_the_simulator_reports(tmp_path: Path) -> None:
    data_dir = tmp_path / "chain"
    store_path = tmp_path / "readings.sqlite"
    run_cli("init", "-d", data_dir, "--chain-id", "reco2-meter-to-value-http")
    with running_intake(
        data_dir, f"sqlite://{store_path}", tmp_path / "intake.log", None
    ) as intake:
        sim = run_cli(
            *simulate_args(data_dir, 3, 2, SEED),
            "--http",
            intake.url,
            "--faults",
            "night:0.2",
            "--batch",
            40,
            timeout=STEP_TIMEOUT_S,
        )
        summary = json.loads(sim.stdout)
        send = summary["send"]
        assert send["transport"] == "http" and not send["errors"], send
        assert send["sent"] == send["acknowledged"] == summary["readings"] == 3 * 2 * 48
        assert send["requests"] >= summary["readings"] // 40
        by_status = send["by_status"]
        assert by_status.get("rejected", 0) == summary["faulty_readings"]["night"] > 0, send
        assert by_status["accepted"] + by_status["rejected"] == send["acknowledged"]
        # An HTTP answer follows the commit: everything answered is stored already.
        rows = stored_rows(store_path)
        counts = {"accepted": 0, "rejected": 0}
        for row in rows.values():
            counts[row.status] += 1
        assert counts == {"accepted": by_status["accepted"], "rejected": by_status["rejected"]}
        for row in rows.values():
            if row.status == "rejected":
                assert "generation_exceeds_clear_sky_bound" in row.reasons, row
        assert intake.status()["engine"]["received"] == send["acknowledged"]
        intake.stop()
