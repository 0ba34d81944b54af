"""Quantification: readings root and proofs, and an issuance the ledger accepts with the value
an independent computation expects.

The ledger is the real application (``tests.support.world()``): pv-1 is a 4.5 kW solar device
in Nerima, aggregated by mrv; the shipped factor table gives FY2025 national 423 mg/Wh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math

import msgspec
import pytest
from tests.support import FACTOR_MG_PER_WH, Ledger, seed_of, world

from reco2.ledger.calendar import INTERVAL_S, jst_midnight_s
from reco2.ledger.merkle import EMPTY_HASH, simple_root
from reco2.mrv.quantify import (
    build_issuance,
    expected_co2_g,
    reading_proof,
    readings_root,
    sorted_readings,
    total_self_consumed_wh,
    verify_reading_proof,
)
from reco2.mrv.readings import Reading, sign_reading
from reco2.mrv.validation import ReadingHistory, ValidationContext, validate

FACTOR_VERSION = "moe-meti-r6-results"
DAY_START_S = jst_midnight_s(dt.date(2025, 6, 1))
NEXT_DAY_START_S = DAY_START_S + 86_400


def day_of_readings(
    day_start_s: int, device_id: str = "pv-1", peak_wh: int = 1_500
) -> list[Reading]:
    """A plain clear day: generation a half sine from 05:00 to 19:00 JST peaking at ``peak_wh``
    per half hour (about 27 kWh), a house using 250 Wh per half hour, the rest exported."""
    readings = []
    generated, exported = 4_000_000, 3_000_000
    for i in range(48):
        generation_wh = round(peak_wh * math.sin(math.pi * (i - 10) / 28)) if 10 < i < 38 else 0
        export_wh = max(0, generation_wh - 250)
        generated += generation_wh
        exported += export_wh
        start_s = day_start_s + i * INTERVAL_S
        readings.append(
            Reading(device_id, start_s, generation_wh, export_wh, None, generated, exported)
        )
    return readings


def independent_self_consumed_wh(readings: list[Reading]) -> int:
    total = 0
    for r in readings:
        used = r.generation_wh - r.export_wh
        if used > 0:
            total += used
    return total


@pytest.fixture
def ledger() -> Ledger:
    return world()


# ---- readings root and proofs --------------------------------------------------------------


def test_root_is_the_simple_tree_over_canonical_bodies_in_interval_order() -> None:
    readings = day_of_readings(DAY_START_S)
    bodies = [msgspec.msgpack.encode(r) for r in readings]  # already in interval order
    assert readings_root(readings) == simple_root(bodies)
    assert readings_root(readings[::-1]) == readings_root(readings)
    assert len(readings_root(readings)) == 32
    assert readings_root([]) == EMPTY_HASH == hashlib.sha256(b"").digest()


def test_root_changes_when_any_reading_changes() -> None:
    readings = day_of_readings(DAY_START_S)
    changed = list(readings)
    changed[20] = msgspec.structs.replace(changed[20], export_wh=changed[20].export_wh + 1)
    assert readings_root(changed) != readings_root(readings)
    assert readings_root(readings[:-1]) != readings_root(readings)


def test_every_reading_has_a_proof_that_verifies_against_the_root() -> None:
    readings = day_of_readings(DAY_START_S)[::-1]  # given out of order on purpose
    root = readings_root(readings)
    for index, r in enumerate(readings):
        proof = reading_proof(readings, index)
        assert proof.total == 48
        assert proof.index == (r.interval_start_s - DAY_START_S) // INTERVAL_S  # leaf order
        assert proof.compute_root() == root
        assert verify_reading_proof(r, proof, root)


def test_a_proof_does_not_verify_another_reading_or_another_root() -> None:
    readings = day_of_readings(DAY_START_S)
    root = readings_root(readings)
    proof = reading_proof(readings, 24)
    inflated = msgspec.structs.replace(readings[24], generation_wh=readings[24].generation_wh + 1)
    assert not verify_reading_proof(inflated, proof, root)
    assert not verify_reading_proof(readings[25], proof, root)
    assert not verify_reading_proof(readings[24], proof, readings_root(readings[:47]))
    truncated = type(proof)(proof.total, proof.index, proof.leaf_hash, proof.aunts[:-1])
    assert not verify_reading_proof(readings[24], truncated, root)


def test_two_readings_for_one_interval_are_a_caller_error() -> None:
    readings = day_of_readings(DAY_START_S)
    with pytest.raises(ValueError, match="two readings"):
        readings_root([*readings, msgspec.structs.replace(readings[3], generation_wh=1)])
    assert len(sorted_readings(readings)) == 48


# ---- issuance ------------------------------------------------------------------------------


def test_build_issuance_sums_self_consumed_energy_and_commits_to_the_readings(
    ledger: Ledger,
) -> None:
    device = ledger.app.state.device("pv-1")
    assert device is not None
    readings = day_of_readings(DAY_START_S)
    action = build_issuance(device, "pv-1:2025-06-01", DAY_START_S, readings, FACTOR_VERSION)
    assert action.device_id == "pv-1"
    assert (action.period_start_s, action.period_end_s) == (DAY_START_S, NEXT_DAY_START_S)
    assert action.self_consumed_wh == independent_self_consumed_wh(readings)
    assert action.self_consumed_wh == total_self_consumed_wh(readings)
    assert (action.measured_intervals, action.estimated_intervals, action.estimated_wh) == (
        48,
        0,
        0,
    )
    assert action.readings_root == readings_root(readings)
    assert action.factor_version == FACTOR_VERSION


def test_a_validated_day_issues_on_the_ledger_the_independently_computed_value(
    ledger: Ledger,
) -> None:
    """Sign every reading with pv-1's meter key, validate, add one forged night reading that
    physics refuses, issue the accepted ones, and compare the ledger's batch with a by-hand
    computation: floor(sum of max(0, generation - export) x 423 / 1000) g."""
    device = ledger.app.state.device("pv-1")
    assert device is not None
    honest = day_of_readings(DAY_START_S)
    night = msgspec.structs.replace(honest[2], generation_wh=900, export_wh=0)  # 01:00 JST
    context = ValidationContext(ledger.app.state.device, ReadingHistory(), NEXT_DAY_START_S + 3_600)
    accepted = []
    for r in [*honest[:2], night, *honest[3:]]:
        result = validate(sign_reading(r, seed_of("meter-pv-1")), context)
        if result.accepted:
            assert result.reading is not None
            accepted.append(result.reading)
    assert len(accepted) == 47
    assert night not in accepted

    action = build_issuance(device, "pv-1:2025-06-01", DAY_START_S, accepted, FACTOR_VERSION)
    ledger.ok("mrv", action)
    batch = ledger.app.state.batch("pv-1:2025-06-01")
    assert batch is not None

    wh = independent_self_consumed_wh(
        [r for r in honest if r.interval_start_s != night.interval_start_s]
    )
    assert batch.self_consumed_wh == wh
    assert batch.factor_mg_per_wh == FACTOR_MG_PER_WH
    assert batch.co2_g == wh * 423 // 1_000
    assert batch.carried_out_mg == wh * 423 % 1_000
    assert expected_co2_g(accepted, batch.factor_mg_per_wh) == (batch.co2_g, batch.carried_out_mg)
    assert batch.measured_intervals == 47
    assert batch.readings_root == readings_root(accepted)
    for index, r in enumerate(accepted):
        assert verify_reading_proof(r, reading_proof(accepted, index), batch.readings_root)


def test_the_carry_links_consecutive_batches(ledger: Ledger) -> None:
    device = ledger.app.state.device("pv-1")
    assert device is not None
    first = day_of_readings(DAY_START_S, peak_wh=1_501)
    second = day_of_readings(NEXT_DAY_START_S, peak_wh=1_403)
    ledger.ok("mrv", build_issuance(device, "d1", DAY_START_S, first, FACTOR_VERSION))
    ledger.ok("mrv", build_issuance(device, "d2", NEXT_DAY_START_S, second, FACTOR_VERSION))
    batch_1, batch_2 = ledger.app.state.batch("d1"), ledger.app.state.batch("d2")
    assert batch_1 is not None
    assert batch_2 is not None
    g1, carry = expected_co2_g(first, 423)
    g2, carry_out = expected_co2_g(second, 423, carried_in_mg=carry)
    assert (batch_1.co2_g, batch_2.co2_g, batch_2.carried_out_mg) == (g1, g2, carry_out)
    total_wh = independent_self_consumed_wh(first) + independent_self_consumed_wh(second)
    assert g1 + g2 == total_wh * 423 // 1_000  # nothing lost to rounding across the two days


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rs: [*rs[:-1], msgspec.structs.replace(rs[-1], device_id="pv-2")], "in a batch"),
        (
            lambda rs: [*rs, msgspec.structs.replace(rs[0], interval_start_s=NEXT_DAY_START_S)],
            "outside the day",
        ),
        (
            lambda rs: [*rs, msgspec.structs.replace(rs[0], interval_start_s=DAY_START_S - 1_800)],
            "outside the day",
        ),
        (
            lambda rs: [msgspec.structs.replace(rs[0], interval_start_s=DAY_START_S + 60)],
            "off the grid",
        ),
        (lambda rs: [*rs, rs[5]], "two readings"),
        (lambda rs: [], "no accepted readings"),
    ],
    ids=["other-device", "next-day", "previous-day", "off-grid", "duplicate", "empty"],
)
def test_readings_that_do_not_fit_the_batch_are_caller_errors(
    ledger: Ledger, change: object, message: str
) -> None:
    device = ledger.app.state.device("pv-1")
    assert device is not None
    readings = change(day_of_readings(DAY_START_S))  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        build_issuance(device, "b", DAY_START_S, readings, FACTOR_VERSION)


def test_a_day_off_the_grid_is_a_caller_error(ledger: Ledger) -> None:
    device = ledger.app.state.device("pv-1")
    assert device is not None
    with pytest.raises(ValueError, match="grid"):
        build_issuance(device, "b", DAY_START_S + 1, day_of_readings(DAY_START_S), FACTOR_VERSION)
