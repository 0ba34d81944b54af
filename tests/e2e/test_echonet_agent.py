"""From an ECHONET Lite home to value: the agent reads a simulated smart meter (0x0288) and solar
unit (0x0279) over loopback UDP for a simulated day, signs a reading per interval and sends it
through a real Mosquitto broker (or over HTTP) to `reco2 intake` (its own process); then
`reco2 issue-days` issues the day on the ledger.

The value on the ledger is checked against a computation made here from the profile alone:
self-consumed Wh = sum of min(generation, consumption) over the intervals that reached the
intake, x 423 mg/Wh (FY2025 national average), floored to grams. Garbled answers, strays and
silence cost nothing; "no data" (0xFFFFFFFE) and a counter reset cost exactly the intervals
around them, each recorded as a rejection, and the agent keeps running.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reco2.echonet import objects
from reco2.echonet.agent import Agent, AgentConfig, Sender, http_sender, mqtt_sender
from reco2.echonet.client import EchonetClient
from reco2.echonet.device_sim import Garble, Interval, Profile, SimulatedNode
from reco2.ledger.calendar import INTERVAL_S, jst_midnight_s
from reco2.ledger.types import Source
from reco2.mrv import physics
from reco2.mrv.store import Status, open_store
from reco2.node.keys import KeyFile
from reco2.node.view import StateView
from tests.e2e.harness import issue_days, run_cli
from tests.e2e.test_intake import FIRST_DAY, IntakeProcess, Meter, new_chain, wait_stored
from tests.services import Broker, mosquitto_fixture  # noqa: F401 (fixture)

HOME = Meter("pv-echonet-setagaya", Source.solar, 4_500, "13", "131121", 3564, 13965)
FACTOR_MG_PER_WH = 423  # FY2025 national average (全国平均係数 0.000423 t-CO2/kWh)
DAY_START_S = jst_midnight_s(FIRST_DAY)
TEST_TIMEOUT_S = 240


def home_profile(seed: int) -> Profile:
    """A day of the home: generation at most 60% of the clear-sky bound for its place (and of
    half its capacity), a house using 150-700 Wh per half hour."""
    rng = random.Random(seed)
    bounds = physics.clear_sky_day_generation_wh_max(
        HOME.latitude_e2 / 100, HOME.longitude_e2 / 100, HOME.capacity_w, DAY_START_S
    )
    return Profile(
        DAY_START_S,
        tuple(
            Interval(
                min(int(bound * rng.uniform(0.3, 0.6)), HOME.capacity_w // 2),
                rng.randint(150, 700),
            )
            for bound in bounds
        ),
    )


def expected_value(profile: Profile, lost: set[int]) -> tuple[int, int, int]:
    """(intervals, self-consumed Wh, g-CO2) of the day without the ``lost`` intervals."""
    kept = [iv for i, iv in enumerate(profile.intervals) if i not in lost]
    self_consumed_wh = sum(min(iv.generation_wh, iv.consumption_wh) for iv in kept)
    return len(kept), self_consumed_wh, self_consumed_wh * FACTOR_MG_PER_WH // 1_000


@pytest.fixture
def intakes() -> Iterator[list[IntakeProcess]]:
    """Intake processes a test starts, killed at its end if still running."""
    started: list[IntakeProcess] = []
    yield started
    for intake in started:
        if intake.alive:
            intake.kill()


@pytest.fixture
def node() -> Iterator[SimulatedNode]:
    # Its own loopback address, as a real device has its own IP (the port is free, not 3610).
    with SimulatedNode(home_profile(2026), host="127.0.0.2", port=0) as running:
        yield running


def drive_a_day(
    node: SimulatedNode,
    sender: Sender,
    faults: dict[int, str],
) -> Agent:
    """The agent at each of the day's 49 boundaries in simulated time, with ``faults`` (boundary
    index -> kind) injected into the node just before that boundary's poll."""
    clock = {"now": DAY_START_S}
    client = EchonetClient("127.0.0.1", 0, timeout_s=0.3, retries=2)
    config = AgentConfig(HOME.device_id, HOME.seed, node.address, node.address)
    agent = Agent(config, client, lambda: clock["now"], sender)
    garbles = iter(list(Garble) * 10)
    try:
        for index in range(49):
            clock["now"] = DAY_START_S + index * INTERVAL_S
            node.set_time(clock["now"])
            kind = faults.get(index)
            if kind == "garble":
                node.garble_next(next(garbles), next(garbles))
            elif kind == "stray":
                node.stray_next(3)
            elif kind == "silence":
                node.drop_next(2)
            elif kind == "no_data":
                node.no_data.add((objects.SMART_METER_CLASS, objects.METER_FIXED_TIME_REVERSE))
            elif kind == "reset":
                node.reset_registers()
            agent.tick()
            node.no_data.clear()
    finally:
        client.close()
    return agent


def issue_the_day(data_dir: Path, store_url: str) -> dict[str, str]:
    days = issue_days(data_dir, store_url, until_day=FIRST_DAY.isoformat())["days"]
    return {d["batch_id"]: d["outcome"] for d in days}


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_a_simulated_day_over_echonet_and_mosquitto_becomes_the_right_value(
    tmp_path: Path, mosquitto: Broker, node: SimulatedNode, intakes: list[IntakeProcess]
) -> None:
    data_dir = tmp_path / "chain"
    new_chain(data_dir, [HOME])
    store_url = f"sqlite://{tmp_path / 'readings.sqlite'}"
    intake = IntakeProcess(data_dir, store_url, tmp_path / "intake.log", mosquitto)
    intakes.append(intake)
    intake.start()

    faults = {3: "garble", 9: "stray", 14: "silence", 22: "garble", 31: "stray", 40: "garble"}
    agent = drive_a_day(node, mqtt_sender(mosquitto.host, mosquitto.port), faults)

    # Trouble on the wire cost nothing: every interval, sent and acknowledged by the broker.
    assert agent.rejections == []
    assert len(agent.readings) == 48 and agent.outbox == [] and agent.sent == 48
    for i, (reading, interval) in enumerate(
        zip(agent.readings, node.profile.intervals, strict=True)
    ):
        assert reading.interval_start_s == DAY_START_S + i * INTERVAL_S
        assert (reading.generation_wh, reading.export_wh, reading.import_wh) == (
            interval.generation_wh,
            interval.export_wh,
            interval.import_wh,
        )
    assert agent.client.stats.ignored["other_tid"] == 6
    assert sum(v for k, v in agent.client.stats.ignored.items() if k.startswith("garbled:")) >= 12

    wait_stored(intake, 48)
    intake.stop()
    with open_store(store_url) as store:
        statuses = [r.status for r in store.readings(HOME.device_id)]
    assert statuses == [Status.accepted] * 48

    assert issue_the_day(data_dir, store_url) == {f"{HOME.device_id}:{FIRST_DAY}": "ok"}
    batch = StateView.open(data_dir).state.batch(f"{HOME.device_id}:{FIRST_DAY}")
    assert batch is not None
    intervals, self_consumed_wh, co2_g = expected_value(node.profile, set())
    assert (batch.measured_intervals, batch.self_consumed_wh, batch.co2_g) == (
        intervals,
        self_consumed_wh,
        co2_g,
    )
    assert batch.co2_g > 0 and batch.factor_mg_per_wh == FACTOR_MG_PER_WH


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_no_data_and_a_reset_are_rejected_and_the_rest_is_issued_over_http(
    tmp_path: Path, node: SimulatedNode, intakes: list[IntakeProcess]
) -> None:
    data_dir = tmp_path / "chain"
    new_chain(data_dir, [HOME])
    store_url = f"sqlite://{tmp_path / 'readings.sqlite'}"
    intake = IntakeProcess(data_dir, store_url, tmp_path / "intake.log", None)
    intakes.append(intake)
    intake.start()

    faults = {12: "no_data", 20: "garble", 27: "reset", 35: "silence"}
    agent = drive_a_day(node, http_sender(intake.url), faults)
    rejected = {(r.start_s - DAY_START_S) // INTERVAL_S: r.reason for r in agent.rejections}
    # No data at boundary 12 loses the intervals ending and starting there; the reset at
    # boundary 27 loses the interval before it (its registers ran backwards).
    assert rejected == {11: "no_data", 12: "no_start_snapshot", 26: "counter_ran_backwards"}
    assert "fffffffe" in agent.rejections[0].detail
    assert len(agent.readings) == 45 and agent.outbox == [] and agent.sent == 45
    assert intake.status()["engine"]["received"] == 45
    intake.stop()

    # The agent reports the registers as they are; the intake refuses counters below those it
    # accepted before (its rule: a reset meter is re-registered, not guessed around), so after
    # the reset nothing more is accepted.
    with open_store(store_url) as store:
        stored = {
            (r.interval_start_s - DAY_START_S) // INTERVAL_S: (r.status, r.reasons)
            for r in store.readings(HOME.device_id)
        }
    assert sorted(stored) == sorted(set(range(48)) - set(rejected))
    after_reset = set(range(27, 48))
    for index, (status, reasons) in stored.items():
        if index in after_reset:
            assert status is Status.rejected and "counter_ran_backwards" in reasons, index
        else:
            assert status is Status.accepted, (index, reasons)

    assert issue_the_day(data_dir, store_url) == {f"{HOME.device_id}:{FIRST_DAY}": "ok"}
    batch = StateView.open(data_dir).state.batch(f"{HOME.device_id}:{FIRST_DAY}")
    assert batch is not None
    intervals, self_consumed_wh, co2_g = expected_value(node.profile, set(rejected) | after_reset)
    assert intervals == 24
    assert (batch.measured_intervals, batch.self_consumed_wh, batch.co2_g) == (
        intervals,
        self_consumed_wh,
        co2_g,
    )


def test_reco2_agent_once_reads_the_simulated_home(tmp_path: Path, node: SimulatedNode) -> None:
    key_file = tmp_path / "meter.key"
    KeyFile("meter-" + HOME.device_id, HOME.seed).save(key_file)
    for _attempt in range(2):  # the wall clock may cross a boundary once, not twice
        now_s = int(time.time())
        boundary = now_s - now_s % INTERVAL_S
        node.set_time(boundary)
        node.garble_next(Garble.junk)
        proc = run_cli(
            "agent",
            "--device-id",
            HOME.device_id,
            "--meter-key",
            key_file,
            "--meter",
            f"{node.host}:{node.port}",
            "--bind",
            "127.0.0.1:0",
            "--timeout",
            "0.5",
            "--once",
            expect=None,
        )
        out = json.loads(proc.stdout)
        if out["boundary_s"] == boundary:
            break
    assert out["boundary_s"] == boundary, "the clock crossed two 30-minute boundaries"
    assert proc.returncode == 0, proc.stderr
    generated, imported, exported = node.registers_mwh(boundary)
    assert out == {
        "device_id": HOME.device_id,
        "boundary_s": boundary,
        "ok": True,
        "generated_wh": generated // 1_000,
        "imported_wh": imported // 1_000,
        "exported_wh": exported // 1_000,
        "meter_source": "fixed_time",
        "client": {"attempts": 3, "timeouts": 1, "ignored": {"garbled:frame_too_short": 1}},
    }
    # Asked for a solar unit the home does not have, it says so and exits 1.
    proc = run_cli(
        "agent",
        "--device-id",
        HOME.device_id,
        "--meter-key",
        key_file,
        "--meter",
        f"{node.host}:{node.port}",
        "--solar-instance",
        "2",
        "--bind",
        "127.0.0.1:0",
        "--once",
        expect=1,
    )
    out = json.loads(proc.stdout)
    assert (out["ok"], out["reason"]) == (False, "property_unavailable")
    assert "027902 gave no EPC 0xe1" in out["detail"]
