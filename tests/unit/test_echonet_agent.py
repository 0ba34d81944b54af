"""The ECHONET Lite agent against the simulated node over loopback UDP, in simulated time:
readings equal the profile's energy (computed here on its own), and every kind of trouble (no
data, garbled frames, silence, unknown objects, counter resets, stale fixed-time data, missed
boundaries, a failing sender) becomes a named rejection or a retry while the agent goes on."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from reco2.echonet import objects
from reco2.echonet.agent import Agent, AgentConfig, Rejection, RejectReason
from reco2.echonet.client import EchonetClient
from reco2.echonet.device_sim import Garble, Interval, Profile, SimulatedNode
from reco2.echonet.frame import EOJ
from reco2.ingest.sim_send import SendSummary
from reco2.ledger import tx
from reco2.mrv.readings import Reading, decode_reading, verify_reading_signature

START_S = 1_748_703_600  # 2025-06-01 00:00 JST
HALF_HOUR_S = 1_800
SEED = bytes(range(32))


def day_profile(rng: random.Random, days: int = 1) -> Profile:
    """Generation by day (a bell from 06:00 to 18:00 JST), a house using 100-600 Wh."""
    intervals = []
    for _day in range(days):
        for i in range(48):
            sun = max(0, 12 - abs(i - 24)) / 12
            intervals.append(
                Interval(int(1_800 * sun * rng.uniform(0.3, 1.0)), rng.randint(100, 600))
            )
    return Profile(START_S, tuple(intervals))


@dataclass
class Rig:
    node: SimulatedNode
    client: EchonetClient
    agent: Agent
    now_s: int

    def at(self, at_s: int, device_s: int | None = None) -> None:
        """Set the agent's clock, and the device's (the same unless told)."""
        self.now_s = at_s
        self.node.set_time(at_s if device_s is None else device_s)

    def boundary(self, index: int) -> None:
        """Move both clocks to boundary ``index`` and tick."""
        self.at(START_S + index * HALF_HOUR_S)
        self.agent.tick()

    def run_boundaries(self, indices: Sequence[int]) -> None:
        for index in indices:
            self.boundary(index)


@pytest.fixture
def rigs() -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.node.stop()
        rig.client.close()


def make_rig(
    rigs: list[Rig],
    profile: Profile,
    *,
    solar: EOJ = objects.SOLAR_EOJ,
    retries: int = 1,
    sender: object = None,
    **node_options: object,
) -> Rig:
    node = SimulatedNode(profile, port=0, **node_options).start()  # type: ignore[arg-type]
    client = EchonetClient("127.0.0.1", 0, timeout_s=0.2, retries=retries)
    config = AgentConfig("pv-echonet", SEED, node.address, node.address, solar=solar)
    rig = Rig(node, client, None, START_S)  # type: ignore[arg-type]
    rig.agent = Agent(config, client, lambda: rig.now_s, sender)  # type: ignore[arg-type]
    rigs.append(rig)
    return rig


def expected(profile: Profile, index: int, origin_wh: tuple[int, int, int] = (0, 0, 0)) -> Reading:
    """The reading of interval ``index``, from the profile alone (unit 0.001 kWh = 1 Wh)."""
    done = profile.intervals[: index + 1]
    interval = profile.intervals[index]
    generation = interval.generation_wh
    export = max(0, generation - interval.consumption_wh)
    imported = max(0, interval.consumption_wh - generation)
    return Reading(
        "pv-echonet",
        START_S + index * HALF_HOUR_S,
        generation,
        export,
        imported,
        origin_wh[0] + sum(i.generation_wh for i in done),
        origin_wh[2] + sum(max(0, i.generation_wh - i.consumption_wh) for i in done),
    )


def test_a_day_of_polls_gives_the_profiles_energy_signed(rigs: list[Rig]) -> None:
    profile = day_profile(random.Random(1))
    rig = make_rig(rigs, profile)
    rig.run_boundaries(range(49))
    assert rig.agent.rejections == []
    assert rig.agent.readings == [expected(profile, i) for i in range(48)]
    assert sum(r.generation_wh for r in rig.agent.readings) == sum(
        i.generation_wh for i in profile.intervals
    )
    # Signed with the meter key, in the project's envelope, waiting in the outbox.
    assert len(rig.agent.outbox) == 48
    for (device_id, raw), reading in zip(rig.agent.outbox, rig.agent.readings, strict=True):
        decoded = decode_reading(raw)
        assert not isinstance(decoded, str) and decoded.reading == reading
        assert device_id == "pv-echonet"
        assert verify_reading_signature(decoded.envelope, tx.public_key_of(SEED))
    # Polling again within the same interval does nothing new.
    rig.at(START_S + 48 * HALF_HOUR_S + 60)
    assert rig.agent.tick().boundary_s is None and len(rig.agent.readings) == 48


@pytest.mark.parametrize(
    ("unit_code", "coefficient"), [(0x02, 1), (0x01, 10), (0x04, 1), (0x0A, 2)]
)
def test_meter_unit_and_coefficient_scale_the_registers(
    rigs: list[Rig], unit_code: int, coefficient: int
) -> None:
    profile = day_profile(random.Random(unit_code))
    rig = make_rig(rigs, profile, meter_unit_code=unit_code, meter_coefficient=coefficient)
    rig.run_boundaries(range(49))
    step_mwh = {0x01: 100_000, 0x02: 10_000, 0x04: 100, 0x0A: 10_000_000}[unit_code] * coefficient

    def register_wh(mwh: int) -> int:  # what the meter shows, in Wh (floored)
        return mwh // step_mwh * step_mwh // 1_000

    assert len(rig.agent.readings) == 48 and rig.agent.rejections == []
    for i, reading in enumerate(rig.agent.readings):
        low = profile.cumulative_mwh(START_S + i * HALF_HOUR_S)
        high = profile.cumulative_mwh(START_S + (i + 1) * HALF_HOUR_S)
        assert reading.generation_wh == profile.intervals[i].generation_wh
        assert reading.import_wh == register_wh(high[1]) - register_wh(low[1])
        assert reading.export_wh == register_wh(high[2]) - register_wh(low[2])
        assert reading.export_counter_wh == register_wh(high[2])


def test_a_meter_without_fixed_time_data_is_read_at_e0_and_e3(rigs: list[Rig]) -> None:
    profile = day_profile(random.Random(2))
    rig = make_rig(rigs, profile, fixed_time=False)
    rig.run_boundaries(range(49))
    assert rig.agent.readings == [expected(profile, i) for i in range(48)]
    assert rig.agent.last is not None and rig.agent.last.meter_source == "instant"


def rejected(rig: Rig) -> list[tuple[int, int, str]]:
    return [
        ((r.start_s - START_S) // HALF_HOUR_S, (r.end_s - START_S) // HALF_HOUR_S, r.reason)
        for r in rig.agent.rejections
    ]


def readings_by_index(rig: Rig) -> dict[int, Reading]:
    return {(r.interval_start_s - START_S) // HALF_HOUR_S: r for r in rig.agent.readings}


@pytest.mark.parametrize(
    ("class_code", "epc"),
    [
        (objects.SMART_METER_CLASS, objects.METER_FIXED_TIME_NORMAL),
        (objects.SMART_METER_CLASS, objects.METER_FIXED_TIME_REVERSE),
        (objects.SMART_METER_CLASS, objects.METER_COEFFICIENT),
        (objects.SOLAR_CLASS, objects.SOLAR_CUMULATIVE_GENERATED),
    ],
)
def test_no_data_rejects_the_intervals_around_it_and_the_agent_goes_on(
    rigs: list[Rig], class_code: int, epc: int
) -> None:
    profile = day_profile(random.Random(3))
    rig = make_rig(rigs, profile)
    rig.run_boundaries(range(12))
    rig.node.no_data.add((class_code, epc))
    rig.boundary(12)
    rig.node.no_data.clear()
    rig.run_boundaries(range(13, 49))
    # Boundary 12 has no snapshot: interval 11 has no end, interval 12 no start.
    assert rejected(rig) == [(11, 12, "no_data"), (12, 13, "no_start_snapshot")]
    assert "fffffffe" in rig.agent.rejections[0].detail
    by_index = readings_by_index(rig)
    assert sorted(by_index) == [i for i in range(48) if i not in (11, 12)]
    assert all(by_index[i] == expected(profile, i) for i in by_index)


def test_garbled_frames_strays_and_silence_are_survived(rigs: list[Rig]) -> None:
    profile = day_profile(random.Random(4))
    rig = make_rig(rigs, profile, retries=2)
    kinds = itertools.cycle(Garble)
    for index in range(49):
        if index % 11 == 3:
            rig.node.drop_next(2)  # two attempts lost, the third answers
        elif index % 5 == 1:
            rig.node.garble_next(next(kinds))
        if index % 7 == 2:
            rig.node.stray_next(2)
        rig.boundary(index)
    assert rig.agent.rejections == []
    assert rig.agent.readings == [expected(profile, i) for i in range(48)]
    ignored = rig.client.stats.ignored
    assert ignored["other_tid"] >= 7 and rig.client.stats.timeouts >= 8
    assert {k for k in ignored if k.startswith("garbled:")} >= {
        "garbled:edt_runs_past_end",
        "garbled:wrong_ehd1",
        "garbled:trailing_bytes",
        "garbled:unknown_esv",
        "garbled:frame_too_short",
    }


def test_a_silent_device_is_a_rejection_not_a_crash(rigs: list[Rig]) -> None:
    profile = day_profile(random.Random(5))
    rig = make_rig(rigs, profile, retries=1)
    rig.run_boundaries(range(3))
    rig.node.drop_next(2)
    rig.boundary(3)
    rig.run_boundaries(range(4, 7))
    assert rejected(rig) == [(2, 3, "device_unreachable"), (3, 4, "no_start_snapshot")]
    assert "no_answer after 2 attempts" in rig.agent.rejections[0].detail
    assert sorted(readings_by_index(rig)) == [0, 1, 4, 5]


def test_an_object_the_node_lacks_is_property_unavailable(rigs: list[Rig]) -> None:
    rig = make_rig(rigs, day_profile(random.Random(6)), solar=EOJ(objects.SOLAR_CLASS, 2))
    rig.run_boundaries(range(3))
    assert rejected(rig) == [(0, 1, "property_unavailable"), (1, 2, "property_unavailable")]
    assert "027902 gave no EPC 0xe1 (Get_SNA)" in rig.agent.rejections[0].detail
    assert rig.agent.readings == []


def test_an_unknown_class_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="not a household solar power generation"):
        AgentConfig("pv", SEED, ("127.0.0.1", 3610), ("127.0.0.1", 3610), solar=EOJ(0x0130, 1))
    with pytest.raises(ValueError, match="not a low-voltage smart electric energy meter"):
        AgentConfig("pv", SEED, ("127.0.0.1", 3610), ("127.0.0.1", 3610), meter=EOJ(0x0287, 1))


def test_a_counter_reset_is_rejected_and_counting_starts_again(rigs: list[Rig]) -> None:
    profile = day_profile(random.Random(7))
    rig = make_rig(rigs, profile)
    rig.run_boundaries(range(31))
    rig.node.reset_registers()  # at boundary 30: every register reads 0
    rig.run_boundaries(range(31, 49))
    assert rejected(rig) == [(30, 31, "counter_ran_backwards")]
    assert "register went from" in rig.agent.rejections[0].detail
    by_index = readings_by_index(rig)
    assert sorted(by_index) == [i for i in range(48) if i != 30]
    for i in range(31, 48):
        reading = by_index[i]
        want = expected(profile, i)
        assert (reading.generation_wh, reading.export_wh, reading.import_wh) == (
            want.generation_wh,
            want.export_wh,
            want.import_wh,
        )
        base = profile.cumulative_mwh(START_S + 30 * HALF_HOUR_S)
        assert want.generation_counter_wh is not None
        assert reading.generation_counter_wh == want.generation_counter_wh - base[0] // 1_000


def test_stale_fixed_time_data_is_waited_for_then_rejected(rigs: list[Rig]) -> None:
    profile = day_profile(random.Random(8))
    rig = make_rig(rigs, profile)
    rig.run_boundaries(range(3))
    # The meter's clock lags: at boundary 3 it still shows boundary 2.
    rig.at(START_S + 3 * HALF_HOUR_S + 5, device_s=START_S + 3 * HALF_HOUR_S - 1)
    assert rig.agent.tick().retry_later
    rig.at(START_S + 3 * HALF_HOUR_S + 20, device_s=START_S + 3 * HALF_HOUR_S)  # caught up
    assert rig.agent.tick().readings == [expected(profile, 2)]
    # At boundary 4 the meter stays behind for longer than the agent waits.
    rig.at(START_S + 4 * HALF_HOUR_S + 10, device_s=START_S + 4 * HALF_HOUR_S - 1)
    assert rig.agent.tick().retry_later
    rig.at(START_S + 4 * HALF_HOUR_S + 301, device_s=START_S + 4 * HALF_HOUR_S - 1)
    result = rig.agent.tick()
    assert [r.reason for r in result.rejections] == ["fixed_time_mismatch"]
    assert "still stamped" in result.rejections[0].detail
    rig.run_boundaries(range(5, 7))
    assert rejected(rig) == [(3, 4, "fixed_time_mismatch"), (4, 5, "no_start_snapshot")]
    assert sorted(readings_by_index(rig)) == [0, 1, 2, 5]


def test_late_polls_and_missed_boundaries_are_rejected(rigs: list[Rig]) -> None:
    profile = day_profile(random.Random(9))
    rig = make_rig(rigs, profile)
    rig.at(START_S + 400)  # started too long after a boundary: wait for the next one
    assert rig.agent.tick().boundary_s is None and rig.agent.last is None
    rig.run_boundaries(range(1, 4))
    rig.run_boundaries(range(6, 8))  # boundaries 4 and 5 never polled
    rig.at(START_S + 8 * HALF_HOUR_S + 400)
    rig.agent.tick()
    rig.run_boundaries(range(9, 11))
    assert rejected(rig) == [
        (3, 6, "intervals_missed"),
        (7, 8, "polled_too_late"),
        (8, 9, "no_start_snapshot"),
    ]
    assert sorted(readings_by_index(rig)) == [1, 2, 6, 9]


def test_undelivered_readings_stay_in_the_outbox_until_sent(rigs: list[Rig]) -> None:
    batches: list[list[tuple[str, bytes]]] = []
    up = {"ok": False}

    def sender(readings: Sequence[tuple[str, bytes]]) -> SendSummary:
        batches.append(list(readings))
        summary = SendSummary("test", sent=len(readings))
        if up["ok"]:
            summary.acknowledged = len(readings)
        else:
            summary.failed = len(readings)
            summary.errors.append("intake away")
        return summary

    rig = make_rig(rigs, day_profile(random.Random(10)), sender=sender)
    rig.run_boundaries(range(4))
    assert [len(b) for b in batches] == [1, 2, 3] and len(rig.agent.outbox) == 3
    up["ok"] = True
    rig.boundary(4)
    assert [len(b) for b in batches][-1] == 4
    assert rig.agent.outbox == [] and rig.agent.sent == 4
    assert [r.interval_start_s for r in rig.agent.readings] == [
        START_S + i * HALF_HOUR_S for i in range(4)
    ]


def test_a_rejection_names_its_intervals() -> None:
    rejection = Rejection(START_S, START_S + HALF_HOUR_S, RejectReason.no_start_snapshot, "x")
    assert rejection.reason == "no_start_snapshot"
