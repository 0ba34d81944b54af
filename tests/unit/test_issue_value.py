"""IssueValue: a device's aggregator turns a period of self-consumed energy into a value batch.

World: pv-1 is a 4.5 kW solar device in Nerima (131202), owned by maekawa, aggregated by mrv,
commissioned 2019-04-01, no utility named; the shipped table has FY2025 national 423 mg/Wh.
Block time is about 2025-06-15T15:08Z, so JST days up to 2025-06-15 are in the past.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import (
    DAY_S,
    Case,
    Ledger,
    add_participant,
    day_start,
    device_action,
    holding_of,
    issue_action,
    public_key,
    run_case,
    world,
)

from reco2.ledger import tx
from reco2.ledger.calendar import INTERVAL_S, NS_PER_S
from reco2.ledger.kinds.issue_value import LAST_PERIOD_END_S
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import (
    DeviceStatus,
    Holding,
    IssuedPeriod,
    Role,
    SchemeEnrollment,
    Source,
    ValueBatch,
)

SHIPPED = "moe-meti-r6-results"
JUNE_1 = day_start("2025-06-01")
FY2025 = day_start("2025-04-01")  # 2025-03-31T15:00Z
H = 3_600


def issue(
    batch_id: str,
    start_s: int,
    end_s: int,
    wh: int = 1_000,
    device_id: str = "pv-1",
    **overrides: object,
) -> tx.IssueValue:
    """An issuance of an arbitrary period, every interval measured."""
    fields: dict[str, object] = dict(
        period_start_s=start_s,
        period_end_s=end_s,
        wh=wh,
        device_id=device_id,
        measured_intervals=max(0, (end_s - start_s) // INTERVAL_S),
    )
    fields.update(overrides)
    return issue_action(batch_id, **fields)  # type: ignore[arg-type]


def b1_issued(ledger: Ledger) -> None:
    ledger.ok("mrv", issue_action("b1", day="2025-06-01", wh=9_876))


def pv2(ledger: Ledger, approve: bool = True, **fields: object) -> None:
    ledger.ok("maekawa", device_action("pv-2", **fields))
    if approve:
        ledger.ok("authority", tx.ApproveDevice("pv-2"))


def pv2_pending(ledger: Ledger) -> None:
    pv2(ledger, approve=False)


def pv1_deactivated(ledger: Ledger) -> None:
    ledger.ok("maekawa", tx.DeactivateDevice("pv-1", "sold"))


def pv2_enrolled(ledger: Ledger) -> None:
    """pv-2 is enrolled in J-Credit for 2025-06-03 and 2025-06-04 (JST)."""
    enrollment = SchemeEnrollment("j-credit", day_start("2025-06-03"), day_start("2025-06-05"))
    pv2(ledger, other_schemes=[enrollment])


def b1_issued_and_pv2(ledger: Ledger) -> None:
    b1_issued(ledger)
    pv2(ledger)


def mrv2(ledger: Ledger) -> None:
    add_participant(ledger, "mrv2", Role.aggregator)


def b1_is_the_first_issuance(ledger: Ledger) -> None:
    batch = ledger.app.state.batch("b1")
    assert batch is not None
    assert batch == ValueBatch(
        batch_id="b1",
        device_id="pv-1",
        owner="maekawa",
        aggregator="mrv",
        source=Source.solar,
        prefecture_code="13",
        municipality_code="131202",
        period_start_s=JUNE_1,
        period_end_s=JUNE_1 + DAY_S,
        self_consumed_wh=9_876,
        measured_intervals=48,
        estimated_intervals=0,
        estimated_wh=0,
        factor_version=SHIPPED,
        factor_fiscal_year=2025,
        factor_utility="national",
        factor_mg_per_wh=423,
        carried_in_mg=0,
        carried_out_mg=548,
        co2_g=4_177,  # floor(9,876 Wh x 423 mg/Wh / 1,000) = floor(4,177.548)
        readings_root=bytes(32),
        issued_height=ledger.app.height,
        issued_time_ns=ledger.time_ns,
        issue_tx=batch.issue_tx,
    )
    assert len(batch.issue_tx) == 32
    assert ledger.app.state.holding("b1", "maekawa") == Holding(4_177, 0, 0)
    assert ledger.app.state.get(b"issued/pv-1/%012d" % JUNE_1, IssuedPeriod) == IssuedPeriod(
        "b1", JUNE_1 + DAY_S
    )
    device = ledger.app.state.device("pv-1")
    assert device is not None
    assert device.carry_mg == 548


def co2_is(
    batch_id: str, co2_g: int, factor: int | None = None, utility: str | None = None
) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        batch = ledger.app.state.batch(batch_id)
        assert batch is not None
        assert batch.co2_g == co2_g
        if factor is not None:
            assert batch.factor_mg_per_wh == factor
        if utility is not None:
            assert batch.factor_utility == utility

    return then


def nothing_issued_for_pv1(ledger: Ledger) -> None:
    device = ledger.app.state.device("pv-1")
    assert device is not None
    assert device.carry_mg == 0
    assert ledger.app.state.issued_periods("pv-1") == []


B1 = issue_action("b1", day="2025-06-01", wh=9_876)
D = DAY_S

CASES = [
    Case("ok", "mrv", B1, Outcome.ok, then=b1_is_the_first_issuance),
    Case("ok zero energy", "mrv", issue_action("b1", wh=0), Outcome.ok, then=co2_is("b1", 0)),
    Case(
        "ok with estimates",
        "mrv",
        issue_action("b1", measured_intervals=46, estimated_intervals=2, estimated_wh=500),
        Outcome.ok,
    ),
    Case(
        "ok 31 days",
        "mrv",
        issue("b1", day_start("2025-05-01"), day_start("2025-06-01")),
        Outcome.ok,
    ),
    Case("ok one interval", "mrv", issue("b1", JUNE_1, JUNE_1 + INTERVAL_S, wh=2_250), Outcome.ok),
    Case(
        "ok full capacity for a day",
        "mrv",
        issue_action("b1", wh=108_000),
        Outcome.ok,
        then=co2_is("b1", 45_684),
    ),
    Case(
        "ok first day of the fiscal year",
        "mrv",
        issue("b1", FY2025, FY2025 + D),
        Outcome.ok,
        then=co2_is("b1", 423, factor=423),
    ),
    # who may sign: an aggregator, and only the device's own
    Case(
        "signed by the owner", "maekawa", B1, Outcome.role_not_allowed, then=nothing_issued_for_pv1
    ),
    Case("signed by the authority", "authority", B1, Outcome.role_not_allowed),
    Case("signed by a buyer", "buyer", B1, Outcome.role_not_allowed),
    Case("signed by the bank", "bank", B1, Outcome.role_not_allowed),
    Case(
        "another aggregator",
        "mrv2",
        B1,
        Outcome.not_device_aggregator,
        setup=mrv2,
        then=nothing_issued_for_pv1,
    ),
    # the device
    Case("unknown device", "mrv", issue_action("b1", device_id="pv-404"), Outcome.unknown_device),
    Case(
        "pending device",
        "mrv",
        issue_action("b1", device_id="pv-2"),
        Outcome.device_not_active,
        setup=pv2_pending,
    ),
    Case("deactivated device", "mrv", B1, Outcome.device_not_active, setup=pv1_deactivated),
    Case(
        "batch id taken",
        "mrv",
        issue_action("b1", day="2025-06-02"),
        Outcome.batch_exists,
        setup=b1_issued,
    ),
    Case(
        "before commissioning",
        "mrv",
        issue_action("b1", day="2019-03-31"),
        Outcome.issuance_before_commissioning,
        then=nothing_issued_for_pv1,
    ),
    Case(
        "from the commissioning day",
        "mrv",
        issue_action("b1", day="2019-04-01"),
        Outcome.no_factor_for_period,
    ),
    # the future: the period must have ended by the block's time
    Case("tomorrow", "mrv", issue_action("b1", day="2025-06-16"), Outcome.issuance_in_future),
    Case("next year", "mrv", issue_action("b1", day="2026-01-10"), Outcome.issuance_in_future),
    # capacity: 4,500 W x 24 h = 108,000 Wh a day; 2,250 Wh an interval
    Case(
        "above capacity for a day",
        "mrv",
        issue_action("b1", wh=108_001),
        Outcome.energy_exceeds_capacity,
        then=nothing_issued_for_pv1,
    ),
    Case(
        "above capacity for an interval",
        "mrv",
        issue("b1", JUNE_1, JUNE_1 + INTERVAL_S, wh=2_251),
        Outcome.energy_exceeds_capacity,
    ),
    # factors
    Case(
        "unknown factor version",
        "mrv",
        issue_action("b1", factor_version="moe-2099"),
        Outcome.unknown_factor_version,
    ),
    Case(
        "no factor for FY2024", "mrv", issue("b1", FY2025 - D, FY2025), Outcome.no_factor_for_period
    ),
    # overlapping periods of one device: b1 holds 2025-06-01 (JST)
    *(
        Case(
            f"overlap {name}",
            "mrv",
            issue("b2", JUNE_1 + a, JUNE_1 + b),
            Outcome.issuance_period_overlaps,
            setup=b1_issued,
        )
        for name, a, b in (
            ("same period", 0, D),
            ("starting before", -12 * H, 12 * H),
            ("ending after", 12 * H, D + 12 * H),
            ("inside", H, 2 * H),
            ("around", -D, 2 * D),
            ("by its last interval", D - INTERVAL_S, D + INTERVAL_S),
            ("by its first interval", -INTERVAL_S, INTERVAL_S),
        )
    ),
    Case(
        "adjacent after",
        "mrv",
        issue("b2", JUNE_1 + D, JUNE_1 + 2 * D),
        Outcome.ok,
        setup=b1_issued,
    ),
    Case("adjacent before", "mrv", issue("b2", JUNE_1 - D, JUNE_1), Outcome.ok, setup=b1_issued),
    Case(
        "same period of another device",
        "mrv",
        issue("b2", JUNE_1, JUNE_1 + D, device_id="pv-2"),
        Outcome.ok,
        setup=b1_issued_and_pv2,
    ),
    # another scheme: pv-2 is in J-Credit for 2025-06-03 and 2025-06-04
    *(
        Case(
            f"enrolled elsewhere: {day}",
            "mrv",
            issue_action("b2", day=day, device_id="pv-2"),
            Outcome.device_enrolled_elsewhere,
            setup=pv2_enrolled,
        )
        for day in ("2025-06-03", "2025-06-04")
    ),
    Case(
        "enrolled elsewhere: half a day",
        "mrv",
        issue(
            "b2",
            day_start("2025-06-02") + 12 * H,
            day_start("2025-06-03") + 12 * H,
            device_id="pv-2",
        ),
        Outcome.device_enrolled_elsewhere,
        setup=pv2_enrolled,
    ),
    Case(
        "enrolled elsewhere: the last interval",
        "mrv",
        issue(
            "b2", day_start("2025-06-05") - INTERVAL_S, day_start("2025-06-05"), device_id="pv-2"
        ),
        Outcome.device_enrolled_elsewhere,
        setup=pv2_enrolled,
    ),
    Case(
        "enrollment ends as the period starts",
        "mrv",
        issue_action("b2", day="2025-06-05", device_id="pv-2"),
        Outcome.ok,
        setup=pv2_enrolled,
    ),
    Case(
        "enrollment starts as the period ends",
        "mrv",
        issue_action("b2", day="2025-06-02", device_id="pv-2"),
        Outcome.ok,
        setup=pv2_enrolled,
    ),
    # the action's own fields
    Case("bad batch id", "mrv", issue_action("b 1"), Outcome.invalid_id),
    Case("bad device id", "mrv", issue_action("b1", device_id=""), Outcome.invalid_id),
    Case("bad factor version", "mrv", issue_action("b1", factor_version="v/1"), Outcome.invalid_id),
    Case("empty period", "mrv", issue("b1", JUNE_1, JUNE_1), Outcome.invalid_period),
    Case(
        "period backwards",
        "mrv",
        issue("b1", JUNE_1, JUNE_1 - D, measured_intervals=0),
        Outcome.invalid_period,
    ),
    Case("negative start", "mrv", issue("b1", -INTERVAL_S, 0), Outcome.invalid_period),
    Case(
        "32 days",
        "mrv",
        issue("b1", day_start("2025-05-01"), day_start("2025-06-02")),
        Outcome.invalid_period,
    ),
    Case(
        "ends after 2200",
        "mrv",
        issue("b1", LAST_PERIOD_END_S, LAST_PERIOD_END_S + INTERVAL_S),
        Outcome.invalid_period,
    ),
    # past year 9999 the calendar cannot name the fiscal year: refused, not a crash
    Case(
        "far future",
        "mrv",
        issue("b1", INTERVAL_S * 10**12, INTERVAL_S * (10**12 + 1)),
        Outcome.invalid_period,
    ),
    Case(
        "start off the grid",
        "mrv",
        issue("b1", JUNE_1 + 60, JUNE_1 + D),
        Outcome.period_not_on_grid,
    ),
    Case(
        "end off the grid",
        "mrv",
        issue("b1", JUNE_1, JUNE_1 + D - 1, measured_intervals=0),
        Outcome.period_not_on_grid,
    ),
    Case(
        "across the FY2025 start",
        "mrv",
        issue("b1", FY2025 - 12 * H, FY2025 + 12 * H),
        Outcome.period_spans_fiscal_years,
    ),
    Case(
        "across the FY2026 start",
        "mrv",
        issue("b1", day_start("2026-03-31"), day_start("2026-04-02")),
        Outcome.period_spans_fiscal_years,
    ),
    Case(
        "negative measured",
        "mrv",
        issue_action("b1", measured_intervals=-1),
        Outcome.invalid_interval_counts,
    ),
    Case(
        "negative estimated",
        "mrv",
        issue_action("b1", estimated_intervals=-1),
        Outcome.invalid_interval_counts,
    ),
    Case(
        "49 intervals in a day",
        "mrv",
        issue_action("b1", measured_intervals=48, estimated_intervals=1, estimated_wh=1),
        Outcome.invalid_interval_counts,
    ),
    Case(
        "estimate above the total",
        "mrv",
        issue_action("b1", wh=100, measured_intervals=47, estimated_intervals=1, estimated_wh=101),
        Outcome.invalid_interval_counts,
    ),
    Case(
        "estimated energy without estimated intervals",
        "mrv",
        issue_action("b1", estimated_wh=5),
        Outcome.invalid_interval_counts,
    ),
    Case("negative energy", "mrv", issue_action("b1", wh=-1), Outcome.energy_must_not_be_negative),
    Case(
        "negative estimate",
        "mrv",
        issue_action("b1", measured_intervals=47, estimated_intervals=1, estimated_wh=-1),
        Outcome.energy_must_not_be_negative,
    ),
    Case("absurd energy", "mrv", issue_action("b1", wh=10**15 + 1), Outcome.amount_too_large),
    Case(
        "short readings root",
        "mrv",
        issue_action("b1", readings_root=bytes(31)),
        Outcome.invalid_merkle_root,
    ),
    Case(
        "long readings root",
        "mrv",
        issue_action("b1", readings_root=bytes(33)),
        Outcome.invalid_merkle_root,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_issue_value(case: Case) -> None:
    run_case(case)


# ---- the sub-gram remainder, carried forward per device ------------------------------


def carry_of(ledger: Ledger, device_id: str) -> int:
    device = ledger.app.state.device(device_id)
    assert device is not None
    return device.carry_mg


def test_carry_forward() -> None:
    ledger = world()
    ledger.attempt("mrv", issue_action("b1", day="2025-06-01", wh=9_876), Outcome.ok)
    # 9,876 Wh x 423 mg/Wh = 4,177,548 mg -> 4,177 g, 548 mg carried
    first = ledger.app.state.batch("b1")
    assert first is not None
    assert (first.co2_g, first.carried_in_mg, first.carried_out_mg) == (4_177, 0, 548)
    assert carry_of(ledger, "pv-1") == 548
    ledger.attempt("mrv", issue_action("b2", day="2025-06-02", wh=8_765), Outcome.ok)
    # 8,765 Wh x 423 mg/Wh + 548 mg = 3,708,143 mg -> 3,708 g, 143 mg carried
    second = ledger.app.state.batch("b2")
    assert second is not None
    assert (second.co2_g, second.carried_in_mg, second.carried_out_mg) == (3_708, 548, 143)
    assert carry_of(ledger, "pv-1") == 143
    assert holding_of(ledger, "b2", "maekawa") == (3_708, 0, 0)


def test_carry_does_not_leak_to_another_device() -> None:
    ledger = world()
    pv2(ledger)
    ledger.attempt("mrv", issue_action("b1", day="2025-06-01", wh=9_876), Outcome.ok)
    assert carry_of(ledger, "pv-1") == 548
    ledger.attempt(
        "mrv", issue_action("b2", day="2025-06-02", wh=8_765, device_id="pv-2"), Outcome.ok
    )
    second = ledger.app.state.batch("b2")
    assert second is not None
    # pv-2 starts from its own carry of 0: 3,707,595 mg -> 3,707 g, 595 mg carried
    assert (second.co2_g, second.carried_in_mg, second.carried_out_mg) == (3_707, 0, 595)
    assert carry_of(ledger, "pv-2") == 595
    assert carry_of(ledger, "pv-1") == 548


def test_a_rejected_issuance_keeps_the_carry() -> None:
    ledger = world()
    ledger.attempt("mrv", issue_action("b1", day="2025-06-01", wh=9_876), Outcome.ok)
    ledger.attempt(
        "mrv", issue_action("b2", day="2025-06-01", wh=1), Outcome.issuance_period_overlaps
    )
    assert carry_of(ledger, "pv-1") == 548
    ledger.attempt("mrv", issue_action("b3", day="2025-06-02", wh=1), Outcome.ok)
    third = ledger.app.state.batch("b3")
    assert third is not None
    assert (third.co2_g, third.carried_out_mg) == (0, 971)  # 423 + 548 mg


def test_carry_is_never_lost_over_many_days() -> None:
    ledger = world()
    energies = [9_876, 8_765, 1, 333, 12_345, 7, 0, 54_321]
    for i, wh in enumerate(energies):
        ledger.attempt("mrv", issue_action(f"b{i}", day=f"2025-06-{i + 1:02d}", wh=wh), Outcome.ok)
    issued = 0
    for i in range(len(energies)):
        batch = ledger.app.state.batch(f"b{i}")
        assert batch is not None
        issued += batch.co2_g
    total_mg = sum(energies) * 423
    assert issued == total_mg // 1_000
    assert carry_of(ledger, "pv-1") == total_mg % 1_000


# ---- the future, at the block's own time ----------------------------------------------


def test_a_period_ending_at_the_block_time_is_not_in_the_future() -> None:
    ledger = world()
    end = day_start("2025-06-16") + INTERVAL_S  # 2025-06-15T15:30Z
    action = issue("b1", end - INTERVAL_S, end, wh=100)
    ledger.time_ns = end * NS_PER_S - 10 * NS_PER_S  # the next block is at ``end`` exactly
    ledger.attempt("mrv", action, Outcome.ok)


def test_a_period_ending_a_nanosecond_after_the_block_time_is_in_the_future() -> None:
    ledger = world()
    end = day_start("2025-06-16") + INTERVAL_S
    action = issue("b1", end - INTERVAL_S, end, wh=100)
    ledger.time_ns = end * NS_PER_S - 10 * NS_PER_S - 1
    ledger.attempt("mrv", action, Outcome.issuance_in_future)


# ---- per-utility factors ---------------------------------------------------------------


def utility_table(ledger: Ledger) -> None:
    """Table "t-util": FY2025 national 423 and utility A0002 300; FY2024 A0002 310."""
    rows = [
        tx.FactorRowIn(2025, "national", 423, "national", "2026-01-09"),
        tx.FactorRowIn(2025, "A0002", 300, "A0002 adjusted", "2026-01-09"),
        tx.FactorRowIn(2024, "A0002", 310, "A0002 adjusted", "2025-01-10"),
    ]
    ledger.ok("authority", tx.PublishEmissionFactors("t-util", rows))
    ledger.ok(
        "authority",
        tx.PublishEmissionFactors(
            "t-no-national", [tx.FactorRowIn(2025, "A0002", 300, "A0002 adjusted", "2026-01-09")]
        ),
    )


def device_with_utility(utility: str) -> Callable[[Ledger], None]:
    def setup(ledger: Ledger) -> None:
        utility_table(ledger)
        ledger.ok(
            "maekawa",
            device_action("pv-u", utility=utility, meter_public_key=public_key("meter-u")),
        )
        ledger.ok("authority", tx.ApproveDevice("pv-u"))

    return setup


UTILITY_CASES = [
    # 10,000 Wh x 300 mg/Wh = 3,000 g with the utility's factor; 4,230 g with the national one
    Case(
        "utility factor preferred",
        "mrv",
        issue_action("b1", wh=10_000, device_id="pv-u", factor_version="t-util"),
        Outcome.ok,
        setup=device_with_utility("A0002"),
        then=co2_is("b1", 3_000, 300, "A0002"),
    ),
    Case(
        "utility absent from the table",
        "mrv",
        issue_action("b1", wh=10_000, device_id="pv-u", factor_version="t-util"),
        Outcome.ok,
        setup=device_with_utility("A9999"),
        then=co2_is("b1", 4_230, 423, "national"),
    ),
    Case(
        "no utility named",
        "mrv",
        issue_action("b1", wh=10_000, device_id="pv-u", factor_version="t-util"),
        Outcome.ok,
        setup=device_with_utility(""),
        then=co2_is("b1", 4_230, 423, "national"),
    ),
    Case(
        "utility absent from the shipped table",
        "mrv",
        issue_action("b1", wh=10_000, device_id="pv-u", factor_version=SHIPPED),
        Outcome.ok,
        setup=device_with_utility("A0002"),
        then=co2_is("b1", 4_230, 423, "national"),
    ),
    Case(
        "utility row of another year only",
        "mrv",
        issue("b1", FY2025 - D, FY2025, wh=10_000, device_id="pv-u", factor_version="t-util"),
        Outcome.ok,
        setup=device_with_utility("A0002"),
        then=co2_is("b1", 3_100, 310, "A0002"),
    ),
    Case(
        "utility only, device without utility",
        "mrv",
        issue_action("b1", wh=10_000, device_id="pv-u", factor_version="t-no-national"),
        Outcome.no_factor_for_period,
        setup=device_with_utility(""),
    ),
    Case(
        "utility only, device of that utility",
        "mrv",
        issue_action("b1", wh=10_000, device_id="pv-u", factor_version="t-no-national"),
        Outcome.ok,
        setup=device_with_utility("A0002"),
        then=co2_is("b1", 3_000, 300, "A0002"),
    ),
]


@pytest.mark.parametrize("case", UTILITY_CASES, ids=str)
def test_factor_choice(case: Case) -> None:
    run_case(case)


def test_the_fiscal_year_boundary_in_jst() -> None:
    """The last day of FY2024 and the first of FY2025 are judged by their own year's factor."""
    ledger = world()
    ledger.attempt("mrv", issue("b1", FY2025 - D, FY2025), Outcome.no_factor_for_period)
    ledger.attempt("mrv", issue("b2", FY2025, FY2025 + D), Outcome.ok)
    batch = ledger.app.state.batch("b2")
    assert batch is not None
    assert batch.factor_fiscal_year == 2025


def test_issuance_by_the_aggregator_of_a_device_it_registered() -> None:
    ledger = world()
    ledger.attempt("mrv", device_action("pv-2"), Outcome.ok)
    ledger.attempt("authority", tx.ApproveDevice("pv-2"), Outcome.ok)
    ledger.attempt("mrv", issue_action("b2", device_id="pv-2"), Outcome.ok)
    device = ledger.app.state.device("pv-2")
    assert device is not None
    assert device.status is DeviceStatus.active
    assert holding_of(ledger, "b2", "maekawa") == (4_177, 0, 0)
