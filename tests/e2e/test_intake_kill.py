"""Kill test: `reco2 intake` is SIGKILLed several times while a gateway publishes readings over
MQTT (QoS 1, through a real Mosquitto) and another posts batches over HTTP. After the last
restart every reading the broker acknowledged to its sender (PUBACK, seen through paho's
``wait_for_publish``) and every reading of an HTTP batch the intake answered is stored exactly
once, as accepted, and nothing was ever recorded as a rejection or a conflict.

The kill moments come from a seeded random generator; the seed is printed and named in every
failure (set RECO2_INTAKE_KILL_SEED to replay one).
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from reco2.ledger.types import Source
from reco2.mrv.readings import decode_reading, reading_id, sign_reading
from reco2.mrv.store import Status, StoredReading, open_store
from tests.e2e.test_intake import (
    FIRST_DAY,
    IntakeProcess,
    Meter,
    MqttSender,
    day_starts,
    intakes,  # noqa: F401 (fixture)
    meter_readings,
    new_chain,
    post,
)
from tests.services import (  # noqa: F401 (fixtures)
    Broker,
    mosquitto_fixture,
    postgres_server_fixture,
    postgres_url_fixture,
)

KILLS = 4
DAYS = 10
MQTT_METERS = tuple(
    Meter(f"pv-mqtt-{i}", Source.solar, 4_500, "13", "131202", 3574, 13965) for i in range(3)
)
HTTP_METERS = tuple(
    Meter(f"pv-http-{i}", Source.solar, 4_500, "13", "131202", 3574, 13965) for i in range(2)
)
HTTP_BATCH = 12
MQTT_WINDOW = 25
SEND_DEADLINE_S = 240.0


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    mqtt_acked: list[bytes] = field(default_factory=list)
    http_acked: list[bytes] = field(default_factory=list)
    http_statuses: set[str] = field(default_factory=set)
    http_retries: int = 0
    errors: list[str] = field(default_factory=list)


def mqtt_gateway(broker: Broker, raws: list[bytes], tally: Tally, pace_s: float) -> None:
    """Publish in order, a window at a time, each window acknowledged by the broker before the
    next: fast enough that the intake always has readings between receipt and commit."""
    sender = MqttSender(broker, client_id="kill-test-gateway")
    try:
        for i in range(0, len(raws), MQTT_WINDOW):
            window = raws[i : i + MQTT_WINDOW]
            acked = sender.publish(window)
            with tally.lock:
                tally.mqtt_acked.extend(acked)
            if len(acked) != len(window):
                tally.errors.append(f"the broker did not acknowledge readings from {i}")
            time.sleep(pace_s)
    except Exception as exc:
        tally.errors.append(f"mqtt gateway: {exc!r}")
    finally:
        sender.close()


def http_gateway(url: str, raws: list[bytes], tally: Tally, pace_s: float) -> None:
    """Post small batches; when the intake is down or killed mid-request, send the batch again."""
    deadline = time.monotonic() + SEND_DEADLINE_S
    for i in range(0, len(raws), HTTP_BATCH):
        batch = raws[i : i + HTTP_BATCH]
        while True:
            if time.monotonic() > deadline:
                tally.errors.append(f"http gateway: batch {i} never answered")
                return
            try:
                response = post(url, batch, timeout=30.0)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                statuses = {r["status"] for r in response.json()["results"]}
                with tally.lock:
                    tally.http_acked.extend(batch)
                    tally.http_statuses |= statuses
                break
            if response is not None and response.status_code != 503:
                tally.errors.append(f"http gateway: {response.status_code} {response.text[:200]}")
                return
            with tally.lock:
                tally.http_retries += 1
            time.sleep(0.1)
        time.sleep(pace_s)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_intake_sigkilled_under_load_loses_no_acknowledged_reading(
    tmp_path: Path,
    backend: str,
    mosquitto: Broker,
    intakes: list[IntakeProcess],  # noqa: F811 (fixture)
    request: pytest.FixtureRequest,
) -> None:
    seed = int(os.environ.get("RECO2_INTAKE_KILL_SEED", random.SystemRandom().randrange(2**32)))
    print(f"intake kill test seed: {seed} (replay with RECO2_INTAKE_KILL_SEED={seed})")
    rng = random.Random(seed)
    where = f"seed {seed}, {backend}"
    if backend == "sqlite":
        store_url, workers = f"sqlite://{tmp_path / 'readings.sqlite'}", 0
    else:
        store_url, workers = str(request.getfixturevalue("postgres_url")), 2
    data_dir = tmp_path / "chain"
    new_chain(data_dir, MQTT_METERS + HTTP_METERS)
    starts = day_starts(FIRST_DAY, DAYS)

    def interleaved(meters: tuple[Meter, ...]) -> list[bytes]:
        """Each meter's readings in order, the meters taking turns interval by interval."""
        per_meter = [
            [sign_reading(r, m.seed) for r in meter_readings(m, starts, rng)] for m in meters
        ]
        return [raw for group in zip(*per_meter, strict=True) for raw in group]

    mqtt_raws, http_raws = interleaved(MQTT_METERS), interleaved(HTTP_METERS)
    intake = IntakeProcess(data_dir, store_url, tmp_path / "intake.log", mosquitto, workers)
    intakes.append(intake)
    intake.start()

    tally = Tally()
    senders = [
        threading.Thread(target=mqtt_gateway, args=(mosquitto, mqtt_raws, tally, 0.1)),
        threading.Thread(target=http_gateway, args=(intake.url, http_raws, tally, 0.1)),
    ]
    for thread in senders:
        thread.start()
    kills = 0
    orphans: set[int] = set()  # worker processes of killed intakes
    try:
        for round_ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.5))
            if not any(thread.is_alive() for thread in senders):
                break
            assert intake.proc is not None
            helpers = descendants(intake.proc.pid)
            assert len(helpers) >= workers, f"{where}: the worker processes are not running"
            intake.kill()
            kills += 1
            orphans.update(helpers)
            if round_ % 2 == 0:
                # Down long enough for a backlog, then killed again as soon as it is back on
                # the broker, while the broker delivers what it queued.
                time.sleep(rng.uniform(1.0, 2.0))
                kill_on_reconnect(intake, rng.uniform(0.0, 0.05))
                kills += 1
            time.sleep(rng.uniform(0.05, 0.5))
            intake.start()
    finally:
        for thread in senders:
            thread.join(timeout=SEND_DEADLINE_S)
    assert not tally.errors, f"{where}: {tally.errors[:5]}"
    assert kills >= 3, f"{where}: the senders finished before the intake was killed enough"
    assert len(tally.mqtt_acked) == len(mqtt_raws), where
    assert len(tally.http_acked) == len(http_raws), where
    assert tally.http_statuses <= {"accepted", "duplicate"}, (where, tally.http_statuses)

    # Messages the broker queued while the intake was down arrive after the last restart.
    acked = tally.mqtt_acked + tally.http_acked
    deadline = time.monotonic() + 180
    with open_store(store_url) as store:
        while time.monotonic() < deadline:
            if store.counts()["accepted"] >= len(acked):
                break
            time.sleep(0.2)
        counts = store.counts()
        lost = [_name(raw) for raw in acked if not _stored_as_accepted(store.find(raw))]
        assert not lost, (
            f"{where}: {len(lost)} acknowledged readings not stored ({kills} kills), "
            f"e.g. {lost[:5]}"
        )
        assert counts["accepted"] == len(acked), f"{where}: {counts}"
        assert counts["rejected"] == 0 and counts["rejections"] == 0, f"{where}: {counts}"
        assert len({r.reading_id for r in store.readings()}) == len(acked), where
    # The worker processes of the killed intakes noticed and ended.
    deadline = time.monotonic() + 30
    while running(orphans) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(orphans), f"{where}: worker processes outlived their intake"
    print(f"{where}: {kills} kills, {len(acked)} readings, {tally.http_retries} HTTP retries")
    intake.stop()


def descendants(pid: int) -> set[int]:
    """The processes a process started, and theirs (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            parent = int(stat.rsplit(b")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            alive.add(pid)
    return alive


def kill_on_reconnect(intake: IntakeProcess, delay_s: float) -> None:
    """Start the intake and SIGKILL it ``delay_s`` after it logs its new broker connection."""
    seen = intake.log(tail=None).count("connected to")
    intake.launch()
    deadline = time.monotonic() + 60
    while intake.log(tail=None).count("connected to") == seen:
        assert intake.alive and time.monotonic() < deadline, f"no reconnection:\n{intake.log()}"
        time.sleep(0.002)
    time.sleep(delay_s)
    intake.kill()


def _name(raw: bytes) -> str:
    decoded = decode_reading(raw)
    assert not isinstance(decoded, str)
    return reading_id(decoded.reading.device_id, decoded.reading.interval_start_s)


def _stored_as_accepted(found: object) -> bool:
    return isinstance(found, StoredReading) and found.status is Status.accepted
