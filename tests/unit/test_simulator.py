"""The simulated fleet: real places, determinism, physical plausibility, faults as described
in the manifest, signatures under the registered meter keys, and registration on a ledger."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reco2.cli.main import app
from reco2.ingest.sim_places import ALL_PLACES, SOLAR_PLACES, WIND_PLACES
from reco2.ingest.simulator import (
    FaultKind,
    Fleet,
    ManifestEntry,
    MeterSigner,
    Signed,
    Simulation,
    make_fleet,
    parse_faults,
    register_fleet,
)
from reco2.ledger.calendar import INTERVAL_S, JST_OFFSET_S
from reco2.ledger.genesis import Genesis, GenesisParticipant
from reco2.ledger.kinds import register_device
from reco2.ledger.municipalities import MUNICIPALITY_NAMES
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import DeviceStatus, Role, Source
from reco2.mrv import physics
from reco2.mrv.readings import (
    Reading,
    decode_reading,
    self_consumed_wh,
    sign_reading,
    verify_reading_signature,
)
from reco2.mrv.validation import ReadingHistory, ValidationContext, validate
from reco2.node.client import EmbeddedSubmitter
from reco2.node.embedded import create_chain
from reco2.node.keys import KeyFile, key_path

DAY_S = 86_400
TOKYO = ("131202", "131121")  # 練馬区, 世田谷区
ALL_FAULTS = dict.fromkeys(FaultKind, 0.05)


@cache
def faulty() -> tuple[Fleet, Simulation, tuple[Signed, ...]]:
    """A small fleet with every fault kind, run once for the fault tests."""
    fleet = make_fleet(3, 14, dt.date(2025, 6, 2), 3)
    sim = Simulation(fleet, ALL_FAULTS)
    return fleet, sim, tuple(sim.run())


@cache
def tokyo(month: int) -> tuple[Fleet, tuple[Signed, ...]]:
    """Six homes in Tokyo for a week of June or December, no faults."""
    fleet = make_fleet(21, 6, dt.date(2025, month, 8), 7, places=TOKYO)
    return fleet, tuple(Simulation(fleet).run())


def by_device(readings: Iterable[Signed]) -> dict[str, list[Reading]]:
    out: dict[str, list[Reading]] = defaultdict(list)
    for signed in readings:
        out[signed.reading.device_id].append(signed.reading)
    return out


def faulty_keys(manifest: list[ManifestEntry]) -> set[tuple[str, int]]:
    return {(e.device_id, e.interval_start_s) for e in manifest}


# ---- places and fleet --------------------------------------------------------------------


def test_places_are_real_municipalities_in_japan() -> None:
    assert len(SOLAR_PLACES) >= 30 and len(WIND_PLACES) >= 3
    assert len({p.code for p in ALL_PLACES}) == len(ALL_PLACES)
    prefectures = {p.prefecture_code for p in ALL_PLACES}
    assert {"01", "13", "47"} <= prefectures and len(prefectures) >= 30
    for place in ALL_PLACES:
        assert place.code in MUNICIPALITY_NAMES, place
        assert 24.0 <= place.latitude_deg <= 45.6 and 123.0 <= place.longitude_deg <= 146.0
        assert round(place.latitude_deg, 2) == place.latitude_deg
    assert MUNICIPALITY_NAMES["131202"] == "練馬区"
    assert next(p for p in ALL_PLACES if p.code == "131202").latitude_deg == 35.74


def test_fleet_is_deterministic_and_registrable() -> None:
    a = make_fleet(42, 40, dt.date(2025, 6, 1), 2)
    assert a == make_fleet(42, 40, dt.date(2025, 6, 1), 2)
    b = make_fleet(43, 40, dt.date(2025, 6, 1), 2)
    assert {d.meter_seed for d in a.devices}.isdisjoint({d.meter_seed for d in b.devices})
    assert {d.device_id for d in a.devices}.isdisjoint({d.device_id for d in b.devices})
    kinds = Counter(d.source for d in a.devices)
    assert kinds[Source.wind] >= 1 and kinds[Source.solar] > kinds[Source.wind]
    assert len({d.meter_public_key for d in a.devices}) == 40
    for device in a.devices:
        if device.source is Source.solar:
            assert 3_000 <= device.capacity_w <= 6_000
            assert device.place in SOLAR_PLACES
        else:
            assert 1_000 <= device.capacity_w <= 10_000
            assert device.place in WIND_PLACES
        assert device.commissioned_on < a.start_day
        action = device.register_action("mrv")
        assert register_device.stateless(action) is Outcome.ok
        assert action.meter_public_key == device.meter_public_key


def test_parse_faults() -> None:
    assert parse_faults("inflated, night:0.2,gaps", 0.01) == {
        FaultKind.inflated: 0.01,
        FaultKind.night: 0.2,
        FaultKind.gaps: 0.01,
    }
    assert parse_faults("", 0.5) == {}
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("solar-flare", 0.1)
    with pytest.raises(ValueError, match="outside"):
        parse_faults("gaps:2", 0.1)


# ---- determinism -------------------------------------------------------------------------


def test_same_seed_same_bytes_and_manifest() -> None:
    _, sim, readings = faulty()
    again = Simulation(make_fleet(3, 14, dt.date(2025, 6, 2), 3), ALL_FAULTS)
    assert [s.raw for s in again.run()] == [s.raw for s in readings]
    assert again.manifest == sim.manifest
    other = Simulation(make_fleet(4, 14, dt.date(2025, 6, 2), 3), ALL_FAULTS).run()
    assert {s.raw for s in other}.isdisjoint({s.raw for s in readings})


# ---- physical plausibility ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "low", "high"),
    # Daily yield [kWh per kW]: a residential PV system in Tokyo makes about 3 kWh/kW a day in
    # June and 2.5 in December on average (1,000-1,200 kWh/kW a year), 0.2-7 on single days.
    [(6, 1.5, 5.0), (12, 1.5, 4.5)],
)
def test_tokyo_solar_is_physically_plausible(month: int, low: float, high: float) -> None:
    fleet, readings = tokyo(month)
    per_kw_days: list[float] = []
    for device_id, series in by_device(readings).items():
        device = fleet.device(device_id)
        assert device.source is Source.solar
        assert len(series) == fleet.days * 48
        previous: Reading | None = None
        for reading in series:
            bound = physics.clear_sky_generation_wh_max(
                device.latitude_deg,
                device.longitude_deg,
                device.capacity_w,
                reading.interval_start_s,
            )
            assert 0 <= reading.generation_wh <= bound
            if bound == 0:  # night: the sun below -6 degrees all interval long
                assert reading.generation_wh == 0
            assert 0 <= self_consumed_wh(reading) <= reading.generation_wh
            assert reading.export_wh <= reading.generation_wh
            assert reading.import_wh is not None and reading.import_wh >= 0
            assert reading.generation_counter_wh is not None
            assert reading.export_counter_wh is not None
            if previous is not None:
                assert previous.generation_counter_wh is not None
                assert previous.export_counter_wh is not None
                assert (
                    reading.generation_counter_wh - previous.generation_counter_wh
                    == reading.generation_wh
                )
                assert reading.export_counter_wh - previous.export_counter_wh == reading.export_wh
            previous = reading
        for day in range(fleet.days):
            day_readings = series[day * 48 : (day + 1) * 48]
            generated = sum(r.generation_wh for r in day_readings)
            per_kw_days.append(generated / device.capacity_w)
            demand = sum(self_consumed_wh(r) + (r.import_wh or 0) for r in day_readings)
            assert 6_000 <= demand <= 24_000  # a home uses 10-15 kWh a day (+- season, noise)
            noon = day_readings[24]  # 12:00-12:30 JST
            assert noon.generation_wh > 0
    assert all(0.1 <= value <= 7.5 for value in per_kw_days)
    mean = sum(per_kw_days) / len(per_kw_days)
    assert low <= mean <= high, mean


def test_wind_is_within_rating_and_blows_at_night() -> None:
    fleet = make_fleet(8, 3, dt.date(2025, 1, 10), 5, places=("012149", "122025"))
    series = by_device(Simulation(fleet).run())
    night_output = 0
    for device_id, readings in series.items():
        device = fleet.device(device_id)
        assert device.source is Source.wind
        rated = physics.wind_generation_wh_max(device.capacity_w)
        assert all(0 <= r.generation_wh <= rated for r in readings)
        night_output += sum(
            r.generation_wh
            for r in readings
            if (r.interval_start_s + JST_OFFSET_S) % DAY_S < 5 * 3_600
        )
        capacity_factor = sum(r.generation_wh for r in readings) / (device.capacity_w * 24 * 5)
        assert 0.005 <= capacity_factor <= 0.7
    assert night_output > 0


# ---- faults ------------------------------------------------------------------------------


def test_every_fault_kind_is_in_the_manifest() -> None:
    _, sim, readings = faulty()
    kinds = {entry.kind for entry in sim.manifest}
    assert kinds == set(FaultKind)
    assert len(readings) == sim.expected_readings()


def test_inflated_and_night_readings_break_physics() -> None:
    fleet, sim, readings = faulty()
    index = {(s.reading.device_id, s.reading.interval_start_s): s.reading for s in readings}
    for entry in sim.manifest:
        if entry.kind not in (FaultKind.inflated, FaultKind.night):
            continue
        device = fleet.device(entry.device_id)
        reading = index[(entry.device_id, entry.interval_start_s)]
        if device.source is Source.solar:
            bound = physics.clear_sky_generation_wh_max(
                device.latitude_deg,
                device.longitude_deg,
                device.capacity_w,
                reading.interval_start_s,
            )
        else:
            bound = physics.wind_generation_wh_max(device.capacity_w)
        assert reading.generation_wh > bound
        if entry.kind is FaultKind.night:
            assert bound == 0 and device.source is Source.solar


def test_copied_readings_repeat_the_neighbours_numbers() -> None:
    _, sim, readings = faulty()
    index = {(s.reading.device_id, s.reading.interval_start_s): s.reading for s in readings}
    copies = [e for e in sim.manifest if e.kind is FaultKind.copy]
    assert copies
    for entry in copies:
        assert entry.source_device_id is not None and entry.source_device_id != entry.device_id
        mine = index[(entry.device_id, entry.interval_start_s)]
        theirs = index[(entry.source_device_id, entry.interval_start_s)]
        assert (mine.generation_wh, mine.export_wh, mine.import_wh) == (
            theirs.generation_wh,
            theirs.export_wh,
            theirs.import_wh,
        )


def test_replayed_day_is_resent_and_resigned_shifted() -> None:
    _, sim, readings = faulty()
    raw_counts = Counter(s.raw for s in readings)
    index = {(s.reading.device_id, s.reading.interval_start_s): s for s in readings}
    resent = [e for e in sim.manifest if e.kind is FaultKind.replay and e.note.startswith("resent")]
    shifted = [e for e in sim.manifest if e.kind is FaultKind.replay and "shifted" in e.note]
    assert len(resent) == len(shifted) > 0 and len(resent) % 48 == 0
    for entry in resent:  # the same bytes, sent twice
        assert raw_counts[index[(entry.device_id, entry.interval_start_s)].raw] == 2
    for entry in shifted:
        assert entry.source_interval_s is not None
        new = index[(entry.device_id, entry.interval_start_s)]
        old = index[(entry.device_id, entry.source_interval_s)]
        assert entry.interval_start_s - entry.source_interval_s in {k * DAY_S for k in range(1, 8)}
        assert new.raw != old.raw and raw_counts[new.raw] == 1
        for field in (
            "generation_wh",
            "export_wh",
            "import_wh",
            "generation_counter_wh",
            "export_counter_wh",
        ):
            assert getattr(new.reading, field) == getattr(old.reading, field)
    # Counters run backwards at the start of the replayed day.
    first = min(shifted, key=lambda e: (e.device_id, e.interval_start_s))
    before = index[(first.device_id, first.interval_start_s - INTERVAL_S)].reading
    after = index[(first.device_id, first.interval_start_s)].reading
    assert before.generation_counter_wh is not None and after.generation_counter_wh is not None
    assert after.generation_counter_wh < before.generation_counter_wh


def test_stuck_meter_repeats_itself_with_frozen_counters() -> None:
    _, sim, readings = faulty()
    index = {(s.reading.device_id, s.reading.interval_start_s): s.reading for s in readings}
    stuck = sorted(
        (e for e in sim.manifest if e.kind is FaultKind.stuck),
        key=lambda e: (e.device_id, e.interval_start_s),
    )
    assert len(stuck) >= 4
    by_run: dict[str, list[Reading]] = defaultdict(list)
    for entry in stuck:
        by_run[entry.device_id].append(index[(entry.device_id, entry.interval_start_s)])
    for run in by_run.values():
        first = run[0]
        assert first.generation_wh > 0
        before = index[(first.device_id, first.interval_start_s - INTERVAL_S)]
        for reading in run:
            assert reading.generation_wh == first.generation_wh
            assert reading.export_wh == first.export_wh
            assert reading.generation_counter_wh == before.generation_counter_wh
            assert reading.export_counter_wh == before.export_counter_wh


def test_gaps_are_not_sent() -> None:
    _, sim, readings = faulty()
    sent = {(s.reading.device_id, s.reading.interval_start_s) for s in readings}
    gaps = [e for e in sim.manifest if e.kind is FaultKind.gaps]
    assert gaps
    assert all((e.device_id, e.interval_start_s) not in sent for e in gaps)


def test_meter_signer_makes_the_bytes_of_sign_reading() -> None:
    fleet, _, readings = faulty()
    seeds = {d.device_id: d.meter_seed for d in fleet.devices}
    for signed in readings[::97]:
        seed = seeds[signed.reading.device_id]
        assert signed.raw == sign_reading(signed.reading, seed)
        assert MeterSigner(seed).sign(signed.reading) == signed.raw


def test_signatures_verify_with_the_registered_meter_keys() -> None:
    fleet, _, readings = faulty()
    keys = {d.device_id: d.register_action("mrv").meter_public_key for d in fleet.devices}
    for signed in readings:
        decoded = decode_reading(signed.raw)
        assert not isinstance(decoded, str)
        assert decoded.reading == signed.reading
        assert verify_reading_signature(decoded.envelope, keys[signed.reading.device_id])
        other = keys[fleet.devices[0].device_id]
        if signed.reading.device_id != fleet.devices[0].device_id:
            assert not verify_reading_signature(decoded.envelope, other)


# ---- registration and validation ---------------------------------------------------------


def new_chain(path: Path) -> KeyFile:
    authority = KeyFile("authority", bytes.fromhex("11" * 32))  # a fixed test key
    genesis = Genesis(
        "reco2-sim-test",
        time.time_ns(),
        [GenesisParticipant("authority", authority.public_key, [Role.authority], "Authority")],
    )
    create_chain(path, genesis)
    authority.save(key_path(path, "authority"))
    return authority


def test_register_fleet_then_the_pipeline_accepts_clean_and_rejects_impossible(
    tmp_path: Path,
) -> None:
    fleet, sim, readings = faulty()
    authority = new_chain(tmp_path)
    aggregator = KeyFile("mrv", bytes.fromhex("22" * 32))
    with EmbeddedSubmitter(tmp_path) as submitter:
        report = register_fleet(submitter, fleet, authority, aggregator)
        assert report.ok, report.errors
        assert report.done == {
            "participant": 1 + len(fleet.devices),
            "factors": 1,
            "device": len(fleet.devices),
            "approval": len(fleet.devices),
        }
        again = register_fleet(submitter, fleet, authority, aggregator)
        assert (
            again.ok and not again.done and sum(again.already.values()) == sum(report.done.values())
        )
        state = submitter.node.app.state
        for device in fleet.devices:
            record = state.device(device.device_id)
            assert record is not None and record.status is DeviceStatus.active
            assert record.meter_public_key == device.meter_public_key
            assert record.owner == device.owner_id and record.aggregator == "mrv"
            assert record.municipality_code == device.place.code
            owner = state.participant(device.owner_id)
            assert owner is not None and Role.prosumer in owner.roles
        devices = {d.device_id: state.device(d.device_id) for d in fleet.devices}

    history = ReadingHistory()
    context = ValidationContext(devices.get, history, fleet.end_s + 3_600)
    bad = faulty_keys(sim.manifest)
    impossible = {
        (e.device_id, e.interval_start_s)
        for e in sim.manifest
        if e.kind in (FaultKind.inflated, FaultKind.night)
    }
    outcomes: dict[tuple[str, int], bool] = {}
    for signed in readings:
        result = validate(signed.raw, context)
        key = (signed.reading.device_id, signed.reading.interval_start_s)
        if result.accepted:
            history.add(signed.reading)
        outcomes.setdefault(key, result.accepted)
        if key not in bad:
            assert result.accepted, (key, result.reasons)
    assert impossible and not any(outcomes[key] for key in impossible)


# ---- the command -------------------------------------------------------------------------


def test_simulate_command_registers_and_writes_the_manifest(tmp_path: Path) -> None:
    new_chain(tmp_path / "chain")
    manifest = tmp_path / "manifest.json"
    args = ["simulate", "-n", "6", "--days", "2", "--seed", "9", "--start-day", "2025-06-01"]
    args += ["-d", str(tmp_path / "chain"), "--register", "--faults", "gaps,night:0.1"]
    args += ["--manifest", str(manifest), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["registration"]["done"]["device"] == 6
    assert summary["send"] is None
    data = json.loads(manifest.read_text())
    assert data["seed"] == 9 and data["fault_rates"] == {"gaps": 0.01, "night": 0.1}
    assert {e["kind"] for e in data["entries"]} == {"gaps", "night"}
    assert (tmp_path / "chain" / "keys" / "mrv.key").exists()
    assert (tmp_path / "chain" / "keys" / "sim9-h00001.key").exists()
    # Registering again finds everything in place.
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["registration"]["done"] == {}


def test_simulate_command_refuses_two_transports() -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--mqtt-host", "127.0.0.1", "--http", "http://127.0.0.1:1"]
    )
    assert result.exit_code != 0
