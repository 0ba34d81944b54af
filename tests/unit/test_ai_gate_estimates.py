"""Gap estimates in issuance (``Gate.estimate_pending``, ``reco2 issue-days --estimate-gaps``)
over a real SQLite readings store: a device-day with a gap issues its measured energy and,
apart, the estimate of its gap, never above what the meter's registers prove; with the policy
off nothing is estimated.

The estimator is a stand-in whose quantile regressions predict constants (an over-claiming
share of 1.5 of the registers' proof, a plain capacity factor of 0.1): the real one's quality is
tests/unit/test_ai_estimate.py's business; everything else is real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.support import stored_fleet

from reco2.ai.estimate import EstimationPolicy, GapEstimator
from reco2.ai.evaluation import FleetSpec, simulate
from reco2.ai.gate import Gate
from reco2.ai.model import AnomalyModel, ModelError
from reco2.ai.review import Flag, ReviewStore
from reco2.ai.screened import build_screened_issuance
from reco2.mrv.readings import Reading, reading_id, self_consumed_wh
from reco2.mrv.store import DAY_S, PendingDay, ReadingsStore

NOW_S = 2_000_000_000
FLEET = FleetSpec(seed=5, devices=4, days=3, fault_rate=0.0, drifts=0)

SHARE = 1.5  # of the registers' proof: more than they prove, which must never be issued
PLAIN = 0.1  # capacity factor where the registers prove nothing


class Constant:
    def __init__(self, value: float, probability: bool = False) -> None:
        self.value, self.probability = value, probability

    def predict(self, matrix: Any) -> Any:
        return np.full(len(matrix), self.value)

    def predict_proba(self, matrix: Any) -> Any:
        return np.tile([1.0 - self.value, self.value], (len(matrix), 1))


def model(fault: float) -> AnomalyModel:
    return AnomalyModel(Constant(fault), "7", 0.5, {})


def estimator(quantile: float = 0.05) -> GapEstimator:
    return GapEstimator(Constant(SHARE), Constant(PLAIN), quantile, "g1")


def gap_of(simulated: Any) -> tuple[Reading, Reading, Reading]:
    """A noon reading of the middle day's first device with register readings either side:
    (the reading before, the one left out, the one after)."""
    device_id = sorted(simulated.devices)[0]
    mine = sorted(
        (r for r in simulated.readings if r.device_id == device_id),
        key=lambda r: r.interval_start_s,
    )
    day_start_s = simulated.fleet.start_s + DAY_S
    middle = [
        i for i, r in enumerate(mine) if day_start_s <= r.interval_start_s < day_start_s + DAY_S
    ]
    i = max(middle, key=lambda k: self_consumed_wh(mine[k]))
    before, gap, after = mine[i - 1], mine[i], mine[i + 1]
    assert after.interval_start_s - before.interval_start_s == 3_600
    return before, gap, after


def middle_day(
    tmp_path: Path, leave_out_gap: bool
) -> tuple[Any, tuple[Reading, Reading, Reading], ReadingsStore, int, list[PendingDay]]:
    """The fleet stored (without the ``gap_of`` reading when ``leave_out_gap``): the simulation,
    that gap with its readings either side, the store, the middle day's start and the pending
    days."""
    simulated = simulate(FLEET)
    around = gap_of(simulated)
    gap = around[1]
    leave_out = {(gap.device_id, gap.interval_start_s)} if leave_out_gap else set()
    store, _ = stored_fleet(tmp_path, FLEET, NOW_S, leave_out)
    day_start_s = simulated.fleet.start_s + DAY_S
    return simulated, around, store, day_start_s, store.pending_days(simulated.fleet.end_s)


def proven_wh(before: Reading, after: Reading) -> int:
    """What the registers prove was self-consumed in the interval between (G - X)."""
    assert before.generation_counter_wh is not None and after.generation_counter_wh is not None
    assert before.export_counter_wh is not None and after.export_counter_wh is not None
    generated = after.generation_counter_wh - after.generation_wh - before.generation_counter_wh
    sold = after.export_counter_wh - after.export_wh - before.export_counter_wh
    return generated - sold


def test_a_gap_issues_apart_and_never_above_what_the_registers_prove(tmp_path: Path) -> None:
    simulated, (before, gap, after), store, day_start_s, pending = middle_day(tmp_path, True)
    with ReviewStore(tmp_path / "review.sqlite") as review:
        gate = Gate(model(0.1), review, estimator=estimator(), policy=EstimationPolicy(True))
        gate.screen_pending(store, simulated.devices, pending, NOW_S)
        assert gate.estimate_pending(store, simulated.devices, pending, NOW_S) >= 1
        decision = gate.decide(store, gap.device_id, day_start_s, lambda *_: None, NOW_S)
        assert decision.held_until_s is None
        day = decision.day
        filled = [e for e in day.estimates if e.interval_start_s == gap.interval_start_s]
        assert len(filled) == 1
        estimate = filled[0]
        assert (estimate.quantile, estimate.confidence, estimate.model_version) == (
            0.05,
            0.95,
            "g1",
        )
        proven = proven_wh(before, after)
        assert 0 < estimate.self_consumed_wh <= proven
        assert estimate.self_consumed_wh <= self_consumed_wh(gap)
        # kept in the review store as issued
        assert estimate in review.estimates(gap.device_id, day_start_s, day_start_s + DAY_S)
        # no estimate where a reading was measured
        measured_at = {r.interval_start_s for r in day.measured}
        assert not measured_at & {e.interval_start_s for e in day.estimates}
        assert gap.interval_start_s not in measured_at
        readings = store.accepted_readings(gap.device_id, day_start_s, day_start_s + DAY_S)
        assert len(day.measured) == len(readings)
        value = build_screened_issuance(
            simulated.devices[gap.device_id], "b", day_start_s, day, "f1"
        )
        assert value is not None
        assert value.measured_intervals == len(readings)
        assert value.estimated_intervals == len(day.estimates)
        assert value.estimated_wh == day.estimated_wh >= estimate.self_consumed_wh
        assert value.self_consumed_wh == sum(map(self_consumed_wh, readings)) + value.estimated_wh
        assert all(isinstance(x, int) for x in (value.estimated_wh, value.self_consumed_wh))
        # the same store, estimated again: the same figures (deterministic, replaced)
        again = gate.estimate_pending(store, simulated.devices, pending, NOW_S + 60)
        assert review.estimates(gap.device_id, day_start_s, day_start_s + DAY_S) == list(
            day.estimates
        )
        assert again >= len(day.estimates)
    store.close()


@pytest.mark.parametrize("policy", [EstimationPolicy(), None])
def test_with_the_policy_off_nothing_is_estimated(tmp_path: Path, policy: Any) -> None:
    simulated, (_, gap, _), store, day_start_s, pending = middle_day(tmp_path, True)
    with ReviewStore(tmp_path / "review.sqlite") as review:
        if policy is None:  # no estimator at all
            gate = Gate(model(0.1), review)
        else:  # an estimator, but the programme does not allow estimates
            gate = Gate(model(0.1), review, estimator=estimator(), policy=policy)
        gate.screen_pending(store, simulated.devices, pending, NOW_S)
        assert gate.estimate_pending(store, simulated.devices, pending, NOW_S) == 0
        day = gate.decide(store, gap.device_id, day_start_s, lambda *_: None, NOW_S).day
        assert day.estimates == () and day.estimated_wh == 0
        assert review.estimates(gap.device_id, 0, 2**40) == []
        value = build_screened_issuance(
            simulated.devices[gap.device_id], "b", day_start_s, day, "f1"
        )
        assert value is not None and value.estimated_intervals == value.estimated_wh == 0
    store.close()


def test_flagged_readings_are_filled_only_when_the_policy_says_and_without_registers(
    tmp_path: Path,
) -> None:
    simulated, (before, noon, after), store, day_start_s, pending = middle_day(tmp_path, False)
    half_hour_wh = simulated.devices[noon.device_id].capacity_w / 2
    assert proven_wh(before, after) > PLAIN * half_hour_wh  # the registers would claim more
    rid = reading_id(noon.device_id, noon.interval_start_s)
    day = next(d for d in pending if (d.device_id, d.day_start_s) == (noon.device_id, day_start_s))
    later = NOW_S + 10 * DAY_S  # after the review window: the unreleased reading drops
    for fill_flagged in (False, True):
        with ReviewStore(tmp_path / f"review-{fill_flagged}.sqlite") as review:
            policy = EstimationPolicy(True, fill_flagged=fill_flagged)
            gate = Gate(model(0.1), review, estimator=estimator(), policy=policy)
            gate.screen_pending(store, simulated.devices, pending, NOW_S)
            flag = Flag(rid, noon.device_id, noon.interval_start_s, 0.9, "7")
            review.record_screened(noon.device_id, day_start_s, "7", day.readings, [flag], NOW_S)
            gate.estimate_pending(store, simulated.devices, pending, NOW_S)
            screened = gate.decide(store, noon.device_id, day_start_s, lambda *_: None, later).day
            assert screened.withheld == (rid,) and len(screened.measured) == day.readings - 1
            if not fill_flagged:
                assert screened.estimates == ()
                continue
            (estimate,) = screened.estimates
            assert estimate.interval_start_s == noon.interval_start_s
            # estimated from the plain quantile, not the registers (a flagged meter's may lie)
            assert 0 < estimate.self_consumed_wh <= int(PLAIN * half_hour_wh)
    store.close()


def test_an_estimator_above_the_programme_quantile_is_refused(tmp_path: Path) -> None:
    with ReviewStore(tmp_path / "review.sqlite") as review, pytest.raises(ModelError):
        Gate(model(0.1), review, estimator=estimator(0.2), policy=EstimationPolicy(True))
