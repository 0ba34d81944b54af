"""Screening before issuance (reco2.ai.gate) over a real SQLite readings store: held days, the
review window, releases that count only for their bytes and model version, and a late reading
that is screened with its day instead of counting unscreened.

The classifier is a stand-in that flags every interval (its quality is not this test's
business: tests/unit/test_ai_anomaly.py evaluates the real one); everything else is real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.support import stored_fleet

from reco2.ai.evaluation import FleetSpec, simulate
from reco2.ai.gate import DEFAULT_REVIEW_S, HISTORY_DAYS, Gate, _chunks
from reco2.ai.model import AnomalyModel
from reco2.ai.review import ReviewStore
from reco2.ledger.types import ReadingRelease
from reco2.mrv.readings import reading_hash, reading_id, self_consumed_wh
from reco2.mrv.store import DAY_S
from reco2.mrv.validation import ValidationContext, validate

NOW_S = 2_000_000_000
FLEET = FleetSpec(seed=5, devices=4, days=3, fault_rate=0.0, drifts=0)


class FlagsEverything:
    """A classifier whose fault probability is 0.9 for every interval."""

    def predict_proba(self, matrix: Any) -> Any:
        return np.tile([0.1, 0.9], (len(matrix), 1))


def model(version: str = "7") -> AnomalyModel:
    return AnomalyModel(FlagsEverything(), version, 0.5, {})


def release(device_id: str, start_s: int, hash_: bytes, version: str) -> ReadingRelease:
    return ReadingRelease(device_id, start_s, hash_, version, "authority", "", 1, 0, bytes(32))


def test_a_flagged_day_is_held_then_issues_only_what_was_released(tmp_path: Path) -> None:
    store, simulated = stored_fleet(tmp_path, FLEET, NOW_S, set())
    pending = store.pending_days(simulated.fleet.end_s)
    assert len(pending) == FLEET.devices * FLEET.days
    with ReviewStore(tmp_path / "review.sqlite") as review:
        gate = Gate(model(), review)
        assert gate.screen_pending(store, simulated.devices, pending, NOW_S) == len(pending)
        assert gate.screen_pending(store, simulated.devices, pending, NOW_S + 5) == 0
        day = pending[0]
        readings = store.accepted_readings(day.device_id, day.day_start_s, day.day_start_s + DAY_S)
        noon = max(readings, key=self_consumed_wh)
        rid = reading_id(noon.device_id, noon.interval_start_s)
        row = store.reading(rid)
        assert row is not None
        released: dict[tuple[str, int, str], ReadingRelease] = {}

        def release_of(device_id: str, start_s: int, version: str) -> ReadingRelease | None:
            return released.get((device_id, start_s, version))

        held = gate.decide(store, day.device_id, day.day_start_s, release_of, NOW_S)
        assert held.held_until_s == NOW_S + DEFAULT_REVIEW_S
        assert held.day.measured == () and len(held.day.withheld) == day.readings
        # releases of other bytes or of another model's flag release nothing
        released[(noon.device_id, noon.interval_start_s, "7")] = release(
            noon.device_id, noon.interval_start_s, b"\1" * 32, "7"
        )
        released[(noon.device_id, noon.interval_start_s, "8")] = release(
            noon.device_id, noon.interval_start_s, row.hash, "8"
        )
        later = NOW_S + DEFAULT_REVIEW_S
        nothing = gate.decide(store, day.device_id, day.day_start_s, release_of, later)
        assert nothing.held_until_s is None and nothing.day.measured == ()
        # the release of exactly these bytes and this model's flag
        released[(noon.device_id, noon.interval_start_s, "7")] = release(
            noon.device_id, noon.interval_start_s, row.hash, "7"
        )
        still = gate.decide(store, day.device_id, day.day_start_s, release_of, NOW_S)
        assert still.held_until_s is not None and still.day.released == (rid,)
        after = gate.decide(store, day.device_id, day.day_start_s, release_of, later)
        assert after.held_until_s is None
        assert after.day.measured == (noon,) and after.day.measured_wh == self_consumed_wh(noon)
        assert rid not in after.day.withheld and len(after.day.withheld) == day.readings - 1
    store.close()


def test_a_late_reading_is_screened_with_its_day(tmp_path: Path) -> None:
    simulated = simulate(FLEET)
    late = simulated.readings[-1]
    key = (late.device_id, late.interval_start_s)
    store, _ = stored_fleet(tmp_path, FLEET, NOW_S, {key})
    with ReviewStore(tmp_path / "review.sqlite") as review:
        gate = Gate(model(), review)
        pending = store.pending_days(simulated.fleet.end_s)
        gate.screen_pending(store, simulated.devices, pending, NOW_S)
        day_start_s = max(d.day_start_s for d in pending)
        first = review.screened(late.device_id, day_start_s, "7")
        assert first is not None and first.readings == first.flagged
        # the late reading arrives: its day is screened again, its first time kept
        index = simulated.readings.index(late)
        context = ValidationContext(simulated.devices.get, store.history(), NOW_S)
        store.record([validate(simulated.raws[index], context)], received_at_s=NOW_S + 60)
        pending = store.pending_days(simulated.fleet.end_s)
        assert gate.screen_pending(store, simulated.devices, pending, NOW_S + 60) == 1
        again = review.screened(late.device_id, day_start_s, "7")
        assert again is not None
        assert (again.readings, again.flagged) == (first.readings + 1, first.flagged + 1)
        assert again.screened_at_s == NOW_S
        decision = gate.decide(
            store, late.device_id, day_start_s, lambda *_: None, NOW_S + DEFAULT_REVIEW_S
        )
        assert reading_id(*key) in decision.day.withheld, "the late reading counted unscreened"
        stored = store.reading(reading_id(*key))
        assert stored is not None and stored.hash == reading_hash(simulated.raws[index])
    store.close()


@pytest.mark.parametrize(
    ("days", "runs"),
    [
        ([0, 1, 2], [[0, 1, 2]]),
        ([0, 13, 14, 30], [[0, 13], [14], [30]]),
        ([], []),
    ],
)
def test_a_backlog_is_screened_in_windows_of_at_most_14_days(
    days: list[int], runs: list[list[int]]
) -> None:
    assert list(_chunks([d * DAY_S for d in days])) == [[d * DAY_S for d in r] for r in runs]
    assert HISTORY_DAYS == 13
