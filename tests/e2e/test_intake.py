"""From meter to value, end to end with the real services: a fleet registered on a ledger through
the embedded node, a week of readings signed with each meter's key and sent through a real
Mosquitto broker or over HTTP to `reco2 intake` (its own process), the readings store in a
SQLite file or a real PostgreSQL server, then `reco2 issue-days` and `reco2 audit`.

The value of every batch on the ledger is checked against an independent computation in this
file (self-consumed Wh, the 423 mg/Wh factor, the sub-gram carry from day to day, and the
readings' Merkle root computed here with hashlib). Bad input of every kind, over MQTT and over
HTTP, must be answered or recorded with its reason while the intake keeps running.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from reco2 import factors
from reco2.ingest import contract
from reco2.ledger import tx
from reco2.ledger.calendar import INTERVAL_S, jst_midnight_s
from reco2.ledger.types import GridContract, Role, SchemeEnrollment, Source
from reco2.mrv import physics
from reco2.mrv.readings import Reading, sign_reading
from reco2.mrv.store import ReadingsStore, Status, StoredReading, StoredRejection, open_store
from reco2.node.client import EmbeddedSubmitter, submit
from reco2.node.keys import KeyFile, key_path
from reco2.node.view import StateView
from tests.e2e.harness import (
    RECO2,
    audit_json,
    cli_env,
    free_port,
    init_chain,
    issue_days,
)
from tests.services import (  # noqa: F401 (fixtures)
    Broker,
    mosquitto_fixture,
    postgres_server_fixture,
    postgres_url_fixture,
)
from tests.support import public_key, seed_of

FIRST_DAY = dt.date(2026, 3, 2)  # FY2025: the shipped factor table's year, and in the past
DAYS = 7
FACTOR_MG_PER_WH = 423  # FY2025 national average (全国平均係数 0.000423 t-CO2/kWh)
HOUSE_WH = (150, 450)  # a house uses this much per half hour [Wh]
READY_TIMEOUT_S = 90.0
STORED_TIMEOUT_S = 180.0


# ---- the fleet ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Meter:
    device_id: str
    source: Source
    capacity_w: int
    prefecture: str
    municipality: str
    latitude_e2: int
    longitude_e2: int

    @property
    def seed(self) -> bytes:
        return seed_of("meter-" + self.device_id)

    def register_action(self, other_schemes: Sequence[SchemeEnrollment] = ()) -> tx.RegisterDevice:
        return tx.RegisterDevice(
            self.device_id,
            "maekawa",
            "mrv",
            self.source,
            self.capacity_w,
            self.prefecture,
            self.municipality,
            self.latitude_e2,
            self.longitude_e2,
            "2019-04-01",
            GridContract.fit,
            "",
            list(other_schemes),
            public_key("meter-" + self.device_id),
        )


FLEET = (
    Meter("pv-chiyoda", Source.solar, 4_500, "13", "131016", 3569, 13975),
    Meter("pv-sapporo", Source.solar, 6_000, "01", "011002", 4306, 14135),
    Meter("pv-naha", Source.solar, 3_200, "47", "472018", 2621, 12768),
    Meter("wt-choshi", Source.wind, 3_000, "12", "122025", 3573, 14083),
)


def new_chain(
    data_dir: Path,
    meters: Sequence[Meter],
    schemes: dict[str, list[SchemeEnrollment]] | None = None,
) -> KeyFile:
    """`reco2 init`, then through the embedded node: a prosumer, the aggregator mrv (its key
    saved in DIR/keys/), the meters' devices approved (``schemes``: the other schemes a device
    is enrolled in), the shipped factor table published."""
    authority = init_chain(data_dir)
    aggregator = KeyFile("mrv", seed_of("mrv"))
    aggregator.save(key_path(data_dir, "mrv"))
    with EmbeddedSubmitter(data_dir) as ledger:
        for pid, role in (("maekawa", Role.prosumer), ("mrv", Role.aggregator)):
            ok(ledger, authority, tx.RegisterParticipant(pid, public_key(pid), [role], pid, True))
        ok(ledger, authority, factors.publish_action())
        owner = KeyFile("maekawa", seed_of("maekawa"))
        for meter in meters:
            ok(ledger, owner, meter.register_action((schemes or {}).get(meter.device_id, [])))
            ok(ledger, authority, tx.ApproveDevice(meter.device_id))
    return authority


def ok(ledger: EmbeddedSubmitter, key: KeyFile, action: tx.Action) -> None:
    receipt = submit(ledger, key, action)
    assert receipt.ok, (action, receipt)


def day_starts(first: dt.date = FIRST_DAY, days: int = DAYS) -> list[int]:
    return [jst_midnight_s(first + dt.timedelta(days=d)) for d in range(days)]


def meter_readings(meter: Meter, starts: Sequence[int], rng: random.Random) -> list[Reading]:
    """Honest readings for whole days: solar below half its clear-sky bound times a random
    cloudiness, wind below rated power; a house that uses 150-450 Wh per half hour decides
    export and import; cumulative generation and export counters."""
    out: list[Reading] = []
    generated, exported = 1_000_000, 700_000
    for day_start_s in starts:
        if meter.source is Source.solar:
            bounds = physics.clear_sky_day_generation_wh_max(
                meter.latitude_e2 / 100, meter.longitude_e2 / 100, meter.capacity_w, day_start_s
            )
            clouds = rng.uniform(0.2, 0.8)
            generation = [int(b * clouds * rng.uniform(0.5, 0.8)) for b in bounds]
        else:
            generation = [rng.randrange(0, meter.capacity_w // 2) for _ in range(48)]
        for i, gen in enumerate(generation):
            gen = min(gen, meter.capacity_w // 2)
            house = rng.randint(*HOUSE_WH)
            export = max(0, gen - house)
            generated += gen
            exported += export
            out.append(
                Reading(
                    meter.device_id,
                    day_start_s + i * INTERVAL_S,
                    gen,
                    export,
                    max(0, house - gen),
                    generated,
                    exported,
                )
            )
    return out


# ---- the independent computation ------------------------------------------------------------


def rfc6962_root(leaves: Sequence[bytes]) -> bytes:
    """Merkle root as CometBFT's simple tree (RFC 6962): leaf = H(0 || x), node = H(1 || l || r),
    split at the largest power of two below the count; H(empty) for no leaves."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    left, right = rfc6962_root(leaves[:split]), rfc6962_root(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass(frozen=True)
class ExpectedBatch:
    self_consumed_wh: int
    intervals: int
    co2_g: int
    carried_out_mg: int
    root: bytes


def expected_batches(accepted: Sequence[Reading]) -> dict[str, ExpectedBatch]:
    """Batch id -> what the ledger must hold, computed from the accepted readings alone."""
    by_day: dict[tuple[str, int], list[Reading]] = {}
    for r in accepted:
        local = dt.datetime.fromtimestamp(r.interval_start_s, dt.timezone(dt.timedelta(hours=9)))
        day_start_s = jst_midnight_s(local.date())
        by_day.setdefault((r.device_id, day_start_s), []).append(r)
    out: dict[str, ExpectedBatch] = {}
    carry: dict[str, int] = {}
    for (device_id, day_start_s), readings in sorted(by_day.items()):
        readings.sort(key=lambda r: r.interval_start_s)
        wh = sum(r.generation_wh - r.export_wh for r in readings if r.generation_wh > r.export_wh)
        total_mg = wh * FACTOR_MG_PER_WH + carry.get(device_id, 0)
        carry[device_id] = total_mg % 1_000
        day = dt.datetime.fromtimestamp(day_start_s + 9 * 3600, dt.UTC).date().isoformat()
        out[f"{device_id}:{day}"] = ExpectedBatch(
            wh,
            len(readings),
            total_mg // 1_000,
            total_mg % 1_000,
            rfc6962_root([msgspec.msgpack.encode(r) for r in readings]),
        )
    return out


# ---- the intake process ---------------------------------------------------------------------


class IntakeProcess:
    """`reco2 intake` in its own process on a fixed HTTP port, its output kept in a log file."""

    def __init__(
        self,
        data_dir: Path,
        store_url: str,
        log_path: Path,
        broker: Broker | None,
        workers: int = 0,
        client_id: str = "reco2-intake-test",
    ) -> None:
        self.data_dir = data_dir
        self.store_url = store_url
        self.log_path = log_path
        self.broker = broker
        self.workers = workers
        self.client_id = client_id
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log(self, tail: int | None = 5_000) -> str:
        """The intake's output: its last ``tail`` characters, or all of it."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text if tail is None else text[-tail:]

    def start(self) -> dict[str, Any]:
        """Start the intake and wait until it answers (and has subscribed to the broker)."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the intake process without waiting for it."""
        assert self.proc is None or self.proc.poll() is not None, "intake already running"
        argv = [
            str(RECO2),
            "intake",
            "-d",
            str(self.data_dir),
            "--store",
            self.store_url,
            "--http-port",
            str(self.http_port),
            "--workers",
            str(self.workers),
            "--mqtt-client-id",
            self.client_id,
        ]
        if self.broker is None:
            argv.append("--no-mqtt")
        else:
            argv += ["--mqtt-host", self.broker.host, "--mqtt-port", str(self.broker.port)]
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {self.starts}\n".encode())
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=cli_env())

    def wait_ready(self) -> dict[str, Any]:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"intake exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status = self.status()
                if self.broker is None or status["mqtt"]["subscribed"]:
                    return status
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"intake not ready after {READY_TIMEOUT_S} s:\n{self.log()}")

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/status", timeout=30.0)
        response.raise_for_status()
        return dict(response.json())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code of the intake runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL if it does not end."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
        assert self.proc.returncode == 0, f"intake exited {self.proc.returncode}:\n{self.log()}"


@pytest.fixture
def intakes() -> Iterator[list[IntakeProcess]]:
    """Intake processes a test starts, stopped (killed if need be) at its end."""
    started: list[IntakeProcess] = []
    yield started
    for intake in started:
        if intake.alive:
            intake.kill()


# ---- senders --------------------------------------------------------------------------------


class MqttSender:
    """A meter gateway: publishes signed readings with QoS 1 and waits for each PUBACK."""

    def __init__(self, broker: Broker, client_id: str = "gateway") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, raws: Sequence[bytes], topic_of: Any = None) -> list[bytes]:
        """Publish each reading to its device's topic; returns those the broker acknowledged."""
        infos = []
        for raw in raws:
            topic = topic_of(raw) if topic_of else contract.topic_for(device_of(raw))
            infos.append((raw, self.client.publish(topic, raw, qos=contract.QOS)))
        acked = []
        for raw, info in infos:
            info.wait_for_publish(timeout=60)
            if info.is_published():
                acked.append(raw)
        return acked

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device_of(raw: bytes) -> str:
    body = msgspec.msgpack.decode(raw)[0]
    return str(msgspec.msgpack.decode(body)[0])


def post(url: str, raws: Sequence[bytes], timeout: float = 120.0) -> httpx.Response:
    return httpx.post(
        f"{url}{contract.HTTP_PATH}",
        content=contract.encode_batch(list(raws)),
        headers={"content-type": contract.CONTENT_TYPE},
        timeout=timeout,
    )


def wait_stored(intake: IntakeProcess, received: int) -> dict[str, Any]:
    """Wait until the intake has answered for ``received`` readings since it started (MQTT
    messages are answered into the store only)."""
    deadline = time.monotonic() + STORED_TIMEOUT_S
    while time.monotonic() < deadline:
        status = intake.status()
        if status["engine"]["received"] >= received:
            return status
        time.sleep(0.1)
    raise AssertionError(f"intake stored too little: {intake.status()}\n{intake.log()}")


def verdict(store: ReadingsStore, raw: bytes) -> tuple[Status, tuple[str, ...]]:
    found = store.find(raw)
    assert found is not None, "the reading is stored nowhere"
    if isinstance(found, StoredReading):
        return found.status, found.reasons
    assert isinstance(found, StoredRejection)
    return Status.rejected, found.reasons


# ---- a week of a fleet turns into value --------------------------------------------------------


def impossible(reading: Reading, meter: Meter) -> Reading:
    """The same interval claiming more than the sun allows (at night: any generation)."""
    bound = physics.clear_sky_generation_wh_max(
        meter.latitude_e2 / 100,
        meter.longitude_e2 / 100,
        meter.capacity_w,
        reading.interval_start_s,
    )
    generation = bound + 50
    return msgspec.structs.replace(reading, generation_wh=generation, export_wh=0)


def run_week(
    tmp_path: Path,
    store_url: str,
    intakes: list[IntakeProcess],
    transport: str,
    broker: Broker | None,
    workers: int,
) -> None:
    rng = random.Random(f"week/{transport}")
    data_dir = tmp_path / "chain"
    new_chain(data_dir, FLEET)
    starts = day_starts()
    honest = {m.device_id: meter_readings(m, starts, rng) for m in FLEET}
    # Physically impossible claims for a solar device: generation at 02:00 JST, and at noon
    # above the clear-sky bound. They replace the honest readings of those intervals.
    chiyoda = FLEET[0]
    fakes = {
        index: impossible(honest[chiyoda.device_id][index], chiyoda)
        for index in (3 * 48 + 4, 5 * 48 + 24)
    }
    sent: list[Reading] = []
    for meter in FLEET:
        for index, r in enumerate(honest[meter.device_id]):
            fake = fakes.get(index) if meter is chiyoda else None
            sent.append(fake if fake is not None else r)
    rng.shuffle(sent)  # meters do not report in step; the intake must not care
    raws = [sign_reading(r, seed_of("meter-" + r.device_id)) for r in sent]

    intake = IntakeProcess(data_dir, store_url, tmp_path / "intake.log", broker, workers)
    intakes.append(intake)
    intake.start()
    if transport == "mqtt":
        assert broker is not None
        sender = MqttSender(broker)
        try:
            assert len(sender.publish(raws)) == len(raws), "the broker acknowledged every reading"
        finally:
            sender.close()
    else:
        for i in range(0, len(raws), 250):
            response = post(intake.url, raws[i : i + 250])
            assert response.status_code == 200, response.text
    status = wait_stored(intake, len(raws))
    assert status["engine"]["received"] == len(raws)
    intake.stop()

    with open_store(store_url) as store:
        for raw, r in zip(raws, sent, strict=True):
            is_fake = any(r == fake for fake in fakes.values())
            status_, reasons = verdict(store, raw)
            if is_fake:
                assert status_ is Status.rejected
                assert "generation_exceeds_clear_sky_bound" in reasons, reasons
            else:
                assert (status_, reasons) == (Status.accepted, ()), (r, reasons)
        assert store.counts()["accepted"] == len(sent) - len(fakes)

    last_day = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    issued = issue_days(data_dir, store_url, until_day=last_day.isoformat())["days"]
    accepted = [r for r in sent if not any(r == fake for fake in fakes.values())]
    expected = expected_batches(accepted)
    assert {d["batch_id"] for d in issued} == set(expected)
    assert {d["outcome"] for d in issued} == {"ok"}, issued

    view = StateView.open(data_dir)
    for batch_id, want in expected.items():
        batch = view.state.batch(batch_id)
        assert batch is not None, batch_id
        got = (
            batch.self_consumed_wh,
            batch.measured_intervals,
            batch.co2_g,
            batch.carried_out_mg,
            batch.readings_root,
        )
        assert got == (
            want.self_consumed_wh,
            want.intervals,
            want.co2_g,
            want.carried_out_mg,
            want.root,
        ), batch_id
        assert (batch.owner, batch.aggregator, batch.factor_mg_per_wh) == (
            "maekawa",
            "mrv",
            FACTOR_MG_PER_WH,
        )
        assert batch.estimated_intervals == 0
    # The day with the impossible night reading issued from its 47 honest intervals only.
    chiyoda_day = f"pv-chiyoda:{(FIRST_DAY + dt.timedelta(days=3)).isoformat()}"
    assert expected[chiyoda_day].intervals == 47
    assert sum(b.co2_g for b in expected.values()) > 0

    code, report = audit_json(data_dir)
    assert code == 0 and report["ok"], report["problems"][:5]

    # Idempotent: a second run issues nothing and the ledger does not move.
    again = issue_days(data_dir, store_url)
    assert again["days"] == []
    assert audit_json(data_dir)[1]["blocks"] == report["blocks"]


def test_a_week_over_mqtt_becomes_value_on_the_ledger(
    tmp_path: Path, mosquitto: Broker, intakes: list[IntakeProcess]
) -> None:
    run_week(
        tmp_path,
        f"sqlite://{tmp_path / 'readings.sqlite'}",
        intakes,
        "mqtt",
        mosquitto,
        workers=0,
    )


def test_a_week_over_http_into_postgresql_becomes_value_on_the_ledger(
    tmp_path: Path, postgres_url: str, intakes: list[IntakeProcess]
) -> None:
    run_week(tmp_path, postgres_url, intakes, "http", None, workers=2)


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input_over_mqtt_and_http_is_answered_or_recorded(
    tmp_path: Path, mosquitto: Broker, postgres_url: str, intakes: list[IntakeProcess]
) -> None:
    good, old, late = (
        Meter("pv-good", Source.solar, 4_500, "13", "131202", 3574, 13965),
        Meter("pv-old", Source.solar, 4_500, "13", "131202", 3574, 13965),
        Meter("pv-late", Source.solar, 4_500, "13", "131202", 3574, 13965),
    )
    data_dir = tmp_path / "chain"
    authority = new_chain(data_dir, [good, old])
    intake = IntakeProcess(data_dir, postgres_url, tmp_path / "intake.log", mosquitto)
    intakes.append(intake)
    intake.start()
    rng = random.Random("bad input")
    earlier = day_starts(FIRST_DAY - dt.timedelta(days=1), 1)

    # The intake meets pv-old while it is active and pv-late before it exists ...
    before = [
        sign_reading(meter_readings(old, earlier, rng)[24], old.seed),
        sign_reading(meter_readings(late, earlier, rng)[24], late.seed),
    ]
    answers = post(intake.url, before).json()["results"]
    assert [(a["status"], a["reasons"]) for a in answers] == [
        ("accepted", []),
        ("rejected", ["unknown_device"]),
    ]
    # ... then pv-old is deactivated and pv-late registered and approved, while it runs.
    with EmbeddedSubmitter(data_dir) as ledger:
        ok(ledger, KeyFile("maekawa", seed_of("maekawa")), tx.DeactivateDevice("pv-old", "gone"))
        ok(ledger, KeyFile("maekawa", seed_of("maekawa")), late.register_action())
        ok(ledger, authority, tx.ApproveDevice("pv-late"))
    time.sleep(1.0)  # the intake looks at the ledger again at most every 0.25 s

    day = day_starts(FIRST_DAY, 2)
    both = meter_readings(good, day, rng)  # one meter: its counters run on across the days
    mqtt_day, http_day = both[:48], both[48:]
    now_s = int(time.time())

    def cases(readings: list[Reading]) -> list[tuple[str, bytes, str | None]]:
        """(what, raw bytes, the reason expected; None: accepted) for one transport."""
        noon, one_pm = readings[24], readings[26]
        start = noon.interval_start_s
        forged = sign_reading(noon, seed_of("someone else"))
        future_start = (now_s // INTERVAL_S + 4) * INTERVAL_S
        return [
            ("honest", sign_reading(noon, good.seed), None),
            ("forged signature", forged, "bad_signature"),
            (
                "unknown device",
                sign_reading(msgspec.structs.replace(noon, device_id="pv-nobody"), seed_of("x")),
                "unknown_device",
            ),
            (
                "deactivated device",
                sign_reading(msgspec.structs.replace(noon, device_id="pv-old"), old.seed),
                "device_not_active",
            ),
            (
                "registered after the intake started",
                sign_reading(msgspec.structs.replace(noon, device_id="pv-late"), late.seed),
                None,
            ),
            (
                "misaligned",
                sign_reading(
                    msgspec.structs.replace(readings[30], interval_start_s=start + 7 * 60 + 1800),
                    good.seed,
                ),
                "interval_not_on_grid",
            ),
            (
                "future",
                sign_reading(Reading("pv-good", future_start, 0, 0, None, None, None), good.seed),
                "interval_in_future",
            ),
            ("duplicate", sign_reading(noon, good.seed), "duplicate"),
            (
                "counter reset",
                sign_reading(
                    msgspec.structs.replace(one_pm, generation_counter_wh=10, export_counter_wh=5),
                    good.seed,
                ),
                "counter_ran_backwards",
            ),
            (
                "oversized",
                b"\x92\xc5" + (20_000).to_bytes(2, "big") + bytes(20_000),
                "reading_too_large",
            ),
            ("malformed", b"\x92\xa3abc\xa3def", "malformed_reading"),
            ("not msgpack at all", b"\xc1\xc1\xc1", "malformed_reading"),
            ("honest, after all that", sign_reading(readings[40], good.seed), None),
        ]

    mqtt_cases, http_cases = cases(mqtt_day), cases(http_day)
    received = intake.status()["engine"]["received"]

    # Over MQTT: nothing comes back; each message is recorded with its reason.
    sender = MqttSender(mosquitto)
    try:
        for what, raw, _ in mqtt_cases:
            device = "pv-good" if what in ("oversized", "malformed", "not msgpack at all") else None
            topic = contract.topic_for(device or device_of(raw))
            assert sender.publish([raw], topic_of=lambda _raw, t=topic: t) == [raw], what
    finally:
        sender.close()
    wait_stored(intake, received + len(mqtt_cases))

    # Over HTTP: every item of a batch is answered in order.
    response = post(intake.url, [raw for _, raw, _ in http_cases])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(http_cases)
    for (what, _, reason), result in zip(http_cases, results, strict=True):
        if reason is None:
            assert (result["status"], result["reasons"]) == ("accepted", []), (what, result)
        elif reason == "duplicate":
            assert (result["status"], result["reasons"]) == ("duplicate", []), (what, result)
        else:
            assert result["status"] == "rejected" and reason in result["reasons"], (what, result)
    undecodable = {"oversized", "malformed", "not msgpack at all"}
    for (what, _, _), result in zip(http_cases, results, strict=True):
        assert (result["reading_id"] is None) == (what in undecodable), (what, result)

    # Bodies that are not a batch at all: a clear error, nothing stored.
    for body, content_type, code, words in (
        (b"\xc1", contract.CONTENT_TYPE, 400, "MessagePack array of byte strings"),
        (msgspec.msgpack.encode([1, 2]), contract.CONTENT_TYPE, 400, "Expected `bytes`"),
        (msgspec.msgpack.encode({"a": b"x"}), contract.CONTENT_TYPE, 400, "Expected `array`"),
        (json.dumps(["x"]).encode(), "application/json", 415, "application/msgpack"),
        (bytes(contract.MAX_BATCH_BYTES + 1), contract.CONTENT_TYPE, 413, "over 1048576 bytes"),
        (
            contract.encode_batch([b"x"] * (contract.MAX_BATCH_READINGS + 1)),
            contract.CONTENT_TYPE,
            413,
            "at most 4096",
        ),
    ):
        answer = httpx.post(
            f"{intake.url}{contract.HTTP_PATH}",
            content=body,
            headers={"content-type": content_type},
            timeout=60,
        )
        assert answer.status_code == code and words in answer.json()["detail"], answer.text

    # The intake is still running and still takes good readings.
    assert intake.alive
    fresh = sign_reading(mqtt_day[44], good.seed)
    assert post(intake.url, [fresh]).json()["results"][0]["status"] == "accepted"
    status = intake.status()
    assert status["engine"]["failed_batches"] == 0, status
    intake.stop()

    with open_store(postgres_url) as store:
        for what, raw, reason in mqtt_cases:
            got = verdict(store, raw)
            if reason is None or reason == "duplicate":
                assert got == (Status.accepted, ()), (what, got)
            else:
                assert got[0] is Status.rejected and reason in got[1], (what, got)
        # Stored once: each accepted interval has one row; the duplicate added nothing.
        accepted = [r for r in store.readings() if r.status is Status.accepted]
        assert len({r.reading_id for r in accepted}) == len(accepted) == 8
        oversized = [r for r in store.rejections() if r.size_bytes > 10_000]
        assert len(oversized) == 1 and len(oversized[0].raw) == 4_096, "kept, cut to 4 KiB"
    assert math.isfinite(status["engine"]["uptime_s"])
