"""Validation pipeline: every named check, each failure with its reason, honest days accepted.

Devices are real ledger records: ``tests.support.world()`` runs the ledger application with
pv-1, a 4.5 kW solar device in Nerima (35.74 N, 139.65 E) commissioned 2019-04-01 whose meter
key is ``public_key("meter-pv-1")``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
from pvlib import irradiance, location
from tests.support import Ledger, add_device, device_action, seed_of, world

from reco2.ledger import tx
from reco2.ledger.calendar import INTERVAL_S, jst_midnight_s
from reco2.ledger.types import Device, Source
from reco2.mrv.readings import DecodeFailure, Reading, encode_reading, sign_reading
from reco2.mrv.validation import (
    DEFAULT_PIPELINE,
    MAX_CLOCK_SKEW_S,
    Candidate,
    ReadingHistory,
    Reason,
    Rejection,
    RuleCheck,
    Validated,
    ValidationContext,
    validate,
)

DAY = dt.date(2025, 6, 1)
DAY_START_S = jst_midnight_s(DAY)
NOW_S = DAY_START_S + 2 * 86_400  # two days later: the whole day is in the past
NOON_S = DAY_START_S + 24 * INTERVAL_S  # 12:00 JST
ONE_AM_S = DAY_START_S + 2 * INTERVAL_S  # 01:00 JST


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    """World plus: pv-tokyo at (35.68, 139.77), a pending device, a deactivated device, a 3 kW
    wind turbine and a device commissioned on 2025-06-01 (JST)."""
    ledger = world()
    ledger.ok("maekawa", device_action("pv-tokyo", latitude_e2=3568, longitude_e2=13977))
    ledger.ok("authority", tx.ApproveDevice("pv-tokyo"))
    ledger.ok("maekawa", device_action("pv-pending"))
    ledger.ok("maekawa", device_action("pv-old"))
    ledger.ok("authority", tx.ApproveDevice("pv-old"))
    ledger.ok("maekawa", tx.DeactivateDevice("pv-old", "removed"))
    add_device(ledger, "wt-1", "maekawa", source=Source.wind, capacity_w=3_000)
    add_device(ledger, "pv-new", "maekawa", commissioned_on="2025-06-01", capacity_w=4_500)
    return ledger


def context_of(
    ledger: Ledger, history: ReadingHistory | None = None, now_s: int = NOW_S
) -> ValidationContext:
    return ValidationContext(ledger.app.state.device, history or ReadingHistory(), now_s)


def reading(
    device_id: str = "pv-1",
    start_s: int = NOON_S,
    generation_wh: int = 1_500,
    export_wh: int = 900,
    **fields: int | None,
) -> Reading:
    values: dict[str, int | None] = dict(
        import_wh=0, generation_counter_wh=None, export_counter_wh=None
    )
    values.update(fields)
    return Reading(device_id, start_s, generation_wh, export_wh, **values)


def signed(r: Reading, key_of: str | None = None) -> bytes:
    return sign_reading(r, seed_of(key_of or f"meter-{r.device_id}"))


def run(
    ledger: Ledger,
    r: Reading,
    history: ReadingHistory | None = None,
    now_s: int = NOW_S,
    key_of: str | None = None,
) -> Validated:
    return validate(signed(r, key_of), context_of(ledger, history, now_s))


def reasons(result: Validated) -> list[str]:
    return [rejection.reason for rejection in result.rejections]


def honest_day(device: Device, day: dt.date) -> list[Reading]:
    """A clear June day of a 4.5 kW array (30 degrees, facing south) and a household.

    Generation: pvlib clear sky (Ineichen, Linke turbidity 3.5, near the SoDa June mean for
    Tokyo), isotropic transposition, performance ratio 0.8, integrated every minute.
    Household: 350 W around the clock, 800 W from 07:00, 1.2 kW from 18:00 to 21:00 (JST);
    whatever the house does not use is exported. Counters accumulate from realistic values.
    """
    start_s = jst_midnight_s(day)
    times = pd.date_range(pd.Timestamp(start_s, unit="s", tz="UTC"), periods=48 * 30, freq="1min")
    site = location.Location(device.latitude_e2 / 100, device.longitude_e2 / 100)
    sun = site.get_solarposition(times)
    sky = site.get_clearsky(times, model="ineichen", solar_position=sun, linke_turbidity=3.5)
    poa = irradiance.get_total_irradiance(
        30,
        180,
        sun["apparent_zenith"],
        sun["azimuth"],
        sky["dni"],
        sky["ghi"],
        sky["dhi"],
        model="isotropic",
        albedo=0.2,
    )["poa_global"]
    watts = device.capacity_w * np.clip(np.nan_to_num(poa.to_numpy(dtype=float)), 0, None) / 1_000
    generation = (watts * 0.8 / 60).reshape(48, 30).sum(axis=1)
    readings = []
    generated_total, exported_total = 8_123_456, 5_432_100
    for i in range(48):
        hour = i // 2
        house_w = 1_200 if 18 <= hour < 21 else 800 if 7 <= hour < 18 else 350
        generation_wh = round(float(generation[i]))
        house_wh = house_w // 2
        export_wh = max(0, generation_wh - house_wh)
        generated_total += generation_wh
        exported_total += export_wh
        readings.append(
            Reading(
                device.device_id,
                start_s + i * INTERVAL_S,
                generation_wh,
                export_wh,
                max(0, house_wh - generation_wh),
                generated_total,
                exported_total,
            )
        )
    return readings


# ---- honest input ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofyear is deprecated")  # inside pvlib
def test_a_realistic_day_of_a_4_5_kw_system_passes_every_check(ledger: Ledger) -> None:
    device = ledger.app.state.device("pv-1")
    assert device is not None
    day = honest_day(device, DAY)
    assert 20_000 <= sum(r.generation_wh for r in day) <= 30_000
    history = ReadingHistory()
    for r in day:
        result = run(ledger, r, history)
        assert result.accepted, (r.interval_start_s, result.rejections)
        assert result.reading == r
        assert result.reading_id == f"pv-1/{r.interval_start_s}"
        assert result.hash == hashlib.sha256(result.raw).digest()
        history.add(r)
    assert history.previous("pv-1", DAY_START_S + 86_400) == day[-1]


@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofyear is deprecated")  # inside pvlib
def test_the_same_honest_day_passes_in_any_arrival_order(ledger: Ledger) -> None:
    device = ledger.app.state.device("pv-1")
    assert device is not None
    day = honest_day(device, DAY)
    history = ReadingHistory()
    for r in day[::-1]:
        result = run(ledger, r, history)
        assert result.accepted, result.rejections
        history.add(r)


def test_a_reading_sent_again_is_accepted_again_and_identical(ledger: Ledger) -> None:
    r = reading(generation_counter_wh=100, export_counter_wh=50)
    history = ReadingHistory([r])
    first, again = run(ledger, r, history), run(ledger, r, history)
    assert first.accepted
    assert again.accepted
    assert first.raw == again.raw  # the store keeps it once (same reading_id and hash)


def test_the_default_pipeline_lists_its_checks_in_order() -> None:
    assert DEFAULT_PIPELINE.names == (
        "device_registered",
        "signature",
        "device_active",
        "interval_on_grid",
        "not_in_future",
        "commissioned",
        "energy_not_negative",
        "within_capacity",
        "counters_monotonic",
        "no_conflict",
        "within_clear_sky",
    )


# ---- gates: nothing else runs when they fail -----------------------------------------------


def test_unknown_device_stops_at_the_gate(ledger: Ledger) -> None:
    bad = reading("pv-nobody", start_s=NOON_S + 7, generation_wh=-1)
    result = run(ledger, bad, key_of="meter-pv-1")
    assert result.rejections == (Rejection("device_registered", Reason.unknown_device),)
    assert not result.accepted
    assert result.reading == bad


def test_forged_signature_stops_at_the_gate(ledger: Ledger) -> None:
    inflated = reading(start_s=NOON_S + 7, generation_wh=10**9)  # also off-grid and impossible
    result = run(ledger, inflated, key_of="attacker")
    assert result.rejections == (Rejection("signature", Reason.bad_signature),)


def test_another_devices_meter_key_is_the_wrong_key(ledger: Ledger) -> None:
    result = run(ledger, reading("pv-1"), key_of="meter-pv-tokyo")
    assert reasons(result) == [Reason.bad_signature]


def test_a_tampered_body_fails_the_signature(ledger: Ledger) -> None:
    raw = bytearray(signed(reading(generation_wh=1_500)))
    index = raw.index(encode_reading(reading(generation_wh=1_500)))
    body = encode_reading(reading(generation_wh=1_600))
    assert len(body) == len(encode_reading(reading(generation_wh=1_500)))
    raw[index : index + len(body)] = body
    result = validate(bytes(raw), context_of(ledger))
    assert reasons(result) == [Reason.bad_signature]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xc1", DecodeFailure.malformed_reading),
        (b"\x00" * 300, DecodeFailure.reading_too_large),
        (msgspec.msgpack.encode([b"body", bytes(10)]), DecodeFailure.invalid_signature_length),
    ],
    ids=["malformed", "oversized", "short-signature"],
)
def test_undecodable_input_is_one_recorded_rejection(
    ledger: Ledger, raw: bytes, expected: DecodeFailure
) -> None:
    result = validate(raw, context_of(ledger))
    assert result.reading is None
    assert result.reading_id is None
    assert result.hash == hashlib.sha256(raw).digest()
    assert not result.accepted
    assert result.rejections == (Rejection("decode", expected),)


# ---- steps: each failure named, all recorded -----------------------------------------------


@pytest.mark.parametrize("device_id", ["pv-pending", "pv-old"], ids=["pending", "deactivated"])
def test_a_device_that_is_not_active_is_refused(ledger: Ledger, device_id: str) -> None:
    assert reasons(run(ledger, reading(device_id))) == [Reason.device_not_active]


@pytest.mark.parametrize("start_s", [NOON_S + 1, NOON_S + 900, NOON_S - 60, -INTERVAL_S])
def test_an_interval_off_the_30_minute_grid_is_refused(ledger: Ledger, start_s: int) -> None:
    assert Reason.interval_not_on_grid in reasons(run(ledger, reading(start_s=start_s)))


def test_an_interval_that_has_not_ended_is_in_the_future(ledger: Ledger) -> None:
    r = reading(start_s=NOON_S)
    end_s = NOON_S + INTERVAL_S
    assert run(ledger, r, now_s=end_s).accepted
    assert run(ledger, r, now_s=end_s - MAX_CLOCK_SKEW_S).accepted
    assert reasons(run(ledger, r, now_s=end_s - MAX_CLOCK_SKEW_S - 1)) == [
        Reason.interval_in_future
    ]
    assert reasons(run(ledger, r, now_s=NOON_S)) == [Reason.interval_in_future]
    next_year = reading(start_s=NOON_S + 365 * 86_400)
    assert Reason.interval_in_future in reasons(run(ledger, next_year))


def test_a_reading_before_the_commissioning_day_is_refused(ledger: Ledger) -> None:
    assert run(ledger, reading("pv-new", start_s=NOON_S)).accepted  # 2025-06-01, the day itself
    day_before = reading("pv-new", start_s=NOON_S - 86_400)
    assert reasons(run(ledger, day_before)) == [Reason.interval_before_commissioning]


@pytest.mark.parametrize(
    "fields",
    [
        dict(generation_wh=-1, export_wh=0),
        dict(export_wh=-5),
        dict(import_wh=-1),
        dict(generation_counter_wh=-10),
        dict(export_counter_wh=-10),
    ],
    ids=["generation", "export", "import", "generation-counter", "export-counter"],
)
def test_negative_energy_is_refused(ledger: Ledger, fields: dict[str, Any]) -> None:
    assert Reason.energy_must_not_be_negative in reasons(run(ledger, reading(**fields)))


def test_generation_above_capacity_times_interval_is_refused(ledger: Ledger) -> None:
    """4.5 kW for half an hour is 2,250 Wh; at noon the clear-sky bound is higher still, so
    only the capacity check speaks."""
    assert run(ledger, reading(generation_wh=2_250, export_wh=0)).accepted
    over = run(ledger, reading(generation_wh=2_251, export_wh=0))
    assert over.rejections == (Rejection("within_capacity", Reason.generation_exceeds_capacity),)


def test_self_consumed_above_generation_is_refused(ledger: Ledger) -> None:
    """Only reachable with negative export; both reasons are recorded."""
    result = run(ledger, reading(generation_wh=100, export_wh=-400))
    assert reasons(result) == [
        Reason.energy_must_not_be_negative,
        Reason.self_consumed_exceeds_generation,
    ]


def test_night_generation_at_tokyo_is_refused_by_physics(ledger: Ledger) -> None:
    """01:00-01:30 JST at (35.68, 139.77): the sun is 30 degrees below the horizon."""
    for wh in (1, 100, 2_000):
        result = run(ledger, reading("pv-tokyo", start_s=ONE_AM_S, generation_wh=wh, export_wh=0))
        assert result.rejections == (
            Rejection("within_clear_sky", Reason.generation_exceeds_clear_sky_bound),
        )
    zero = reading("pv-tokyo", start_s=ONE_AM_S, generation_wh=0, export_wh=0, import_wh=175)
    assert run(ledger, zero).accepted


def test_dawn_generation_above_the_clear_sky_bound_is_refused(ledger: Ledger) -> None:
    """04:30-05:00 JST on 2025-06-01 in Tokyo: the sun rose at about 04:27 and is at most 6
    degrees up, so even a panel facing it gets under half its rating (bound 1,072 Wh)."""
    dawn_s = DAY_START_S + 9 * INTERVAL_S
    assert run(ledger, reading("pv-tokyo", dawn_s, generation_wh=300, export_wh=0)).accepted
    result = run(ledger, reading("pv-tokyo", dawn_s, generation_wh=1_500, export_wh=0))
    assert reasons(result) == [Reason.generation_exceeds_clear_sky_bound]
    before_sunrise_s = DAY_START_S + 8 * INTERVAL_S  # 04:00-04:30, bound 51 Wh
    result = run(ledger, reading("pv-tokyo", before_sunrise_s, generation_wh=200, export_wh=0))
    assert reasons(result) == [Reason.generation_exceeds_clear_sky_bound]


def test_wind_is_not_held_to_the_sun_but_to_its_rating(ledger: Ledger) -> None:
    assert run(ledger, reading("wt-1", start_s=ONE_AM_S, generation_wh=1_500, export_wh=0)).accepted
    over = run(ledger, reading("wt-1", start_s=ONE_AM_S, generation_wh=1_501, export_wh=0))
    assert reasons(over) == [Reason.generation_exceeds_capacity]


def test_counters_running_backwards_against_the_previous_reading_are_refused(
    ledger: Ledger,
) -> None:
    before = reading(
        start_s=NOON_S - INTERVAL_S, generation_counter_wh=5_000, export_counter_wh=900
    )
    history = ReadingHistory([before])
    ok = reading(generation_counter_wh=6_500, export_counter_wh=1_800)
    assert run(ledger, ok, history).accepted
    stuck = reading(generation_counter_wh=5_000, export_counter_wh=900)  # equal is not backwards
    assert run(ledger, stuck, history).accepted
    reset = reading(generation_counter_wh=12, export_counter_wh=1_800)
    assert run(ledger, reset, history).rejections == (
        Rejection("counters_monotonic", Reason.counter_ran_backwards),
    )
    export_back = reading(generation_counter_wh=6_500, export_counter_wh=899)
    assert reasons(run(ledger, export_back, history)) == [Reason.counter_ran_backwards]
    no_counters = reading()  # a meter without registers is not held to them
    assert run(ledger, no_counters, history).accepted


def test_a_late_reading_must_fit_below_the_following_counter(ledger: Ledger) -> None:
    after = reading(start_s=NOON_S + 2 * INTERVAL_S, generation_counter_wh=9_000)
    history = ReadingHistory([after])
    assert run(ledger, reading(generation_counter_wh=8_000), history).accepted
    assert reasons(run(ledger, reading(generation_counter_wh=9_001), history)) == [
        Reason.counter_ran_backwards
    ]


def test_different_numbers_for_an_accepted_interval_conflict(ledger: Ledger) -> None:
    accepted = reading(generation_wh=1_500)
    history = ReadingHistory([accepted])
    result = run(ledger, reading(generation_wh=1_400), history)
    assert result.rejections == (Rejection("no_conflict", Reason.conflicts_with_accepted_reading),)


def test_every_failed_check_is_recorded_with_its_reason(ledger: Ledger) -> None:
    history = ReadingHistory([reading("pv-old", NOON_S - 86_400, generation_counter_wh=10**6)])
    r = reading(
        "pv-old",
        start_s=NOW_S + 7,  # off the grid and in the future
        generation_wh=10**6,  # far above the rating
        export_wh=-1,
        generation_counter_wh=10,  # below the previous register
    )
    result = run(ledger, r, history)
    assert [rejection.check for rejection in result.rejections] == [
        "device_active",
        "interval_on_grid",
        "not_in_future",
        "energy_not_negative",
        "within_capacity",
        "counters_monotonic",
        "within_clear_sky",
    ]
    assert reasons(result) == [
        Reason.device_not_active,
        Reason.interval_not_on_grid,
        Reason.interval_in_future,
        Reason.energy_must_not_be_negative,
        Reason.self_consumed_exceeds_generation,
        Reason.counter_ran_backwards,
        Reason.generation_exceeds_clear_sky_bound,
    ]
    assert not result.accepted


# ---- extending the pipeline ----------------------------------------------------------------


def test_with_step_appends_a_check_and_leaves_the_original_alone(ledger: Ledger) -> None:
    seen: list[str] = []

    def rule(candidate: Candidate, context: ValidationContext) -> str | None:
        seen.append(candidate.reading.device_id)
        return "anomalous_for_this_device" if candidate.reading.generation_wh > 1_000 else None

    extended = DEFAULT_PIPELINE.with_step(RuleCheck("anomaly_model", rule))
    assert extended.names == (*DEFAULT_PIPELINE.names, "anomaly_model")
    assert "anomaly_model" not in DEFAULT_PIPELINE.names
    context = context_of(ledger)
    flagged = validate(signed(reading(generation_wh=1_500)), context, extended)
    assert flagged.rejections == (Rejection("anomaly_model", "anomalous_for_this_device"),)
    assert validate(signed(reading(generation_wh=500)), context, extended).accepted
    assert validate(signed(reading(generation_wh=1_500)), context).accepted
    # a reading stopped at a gate never reaches the added step
    validate(signed(reading(generation_wh=1_500), key_of="attacker"), context, extended)
    assert seen == ["pv-1", "pv-1"]


def test_any_object_with_a_name_and_a_call_is_a_step(ledger: Ledger) -> None:
    class Neighbours:
        name = "neighbours"

        def __call__(self, candidate: Candidate, context: ValidationContext) -> Rejection | None:
            return Rejection(self.name, "differs_from_neighbours")

    result = validate(
        signed(reading()), context_of(ledger), DEFAULT_PIPELINE.with_step(Neighbours())
    )
    assert reasons(result) == ["differs_from_neighbours"]


# ---- the in-memory history -----------------------------------------------------------------


def test_reading_history_finds_neighbours_in_interval_order() -> None:
    readings: Sequence[Reading] = [reading(start_s=NOON_S + k * INTERVAL_S) for k in (4, 0, 2)]
    history = ReadingHistory(readings)
    assert history.previous("pv-1", NOON_S + 2 * INTERVAL_S) == readings[1]
    assert history.following("pv-1", NOON_S + 2 * INTERVAL_S) == readings[0]
    assert history.previous("pv-1", NOON_S + 3 * INTERVAL_S) == readings[2]
    assert history.previous("pv-1", NOON_S) is None
    assert history.following("pv-1", NOON_S + 4 * INTERVAL_S) is None
    assert history.at("pv-1", NOON_S + 2 * INTERVAL_S) == readings[2]
    assert history.at("pv-1", NOON_S + INTERVAL_S) is None
    assert history.previous("pv-other", NOON_S) is None
    replacement = reading(start_s=NOON_S, generation_wh=7)
    history.add(replacement)
    assert history.at("pv-1", NOON_S) == replacement
    assert history.previous("pv-1", NOON_S + INTERVAL_S) == replacement
