"""The anomaly model: features, the pipeline step, saving, and a small held-out evaluation."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from reco2.ai import features
from reco2.ai.check import FLAGGED, NAME, AnomalyCheck, Screening
from reco2.ai.evaluation import (
    Detection,
    Evaluation,
    FleetSpec,
    GapResult,
    KindResult,
    evaluate_held_out,
    pooled,
    run_pipeline,
    simulate,
    train,
    train_estimator,
)
from reco2.ai.model import AnomalyModel, ModelError, calibrated_threshold
from reco2.ai.series import Window
from reco2.mrv.readings import reading_id
from reco2.mrv.validation import DEFAULT_PIPELINE

TRAIN = (
    FleetSpec(seed=21, devices=30, days=12, fault_rate=0.04, drifts=4),
    FleetSpec(seed=23, devices=30, days=12, fault_rate=0.04, drifts=4),
)
HELD_OUT = FleetSpec(seed=22, devices=30, days=12, fault_rate=0.04, drifts=4)
CALIBRATION = FleetSpec(seed=27, devices=30, days=12, fault_rate=0.04, drifts=4)


@cache
def model() -> AnomalyModel:
    return train(TRAIN, "test", CALIBRATION)


@cache
def evaluation() -> Evaluation:
    return evaluate_held_out(model(), train_estimator(TRAIN, calibration=CALIBRATION), HELD_OUT)


def detection() -> Detection:
    return evaluation().detection


def test_flat_runs_count_equal_non_zero_values_across_days() -> None:
    generation = np.array([[[0.0, 5.0, 5.0, 5.0], [5.0, 0.0, 0.0, 7.0]]])
    assert features.flat_runs(generation).tolist() == [[[0, 4, 4, 4], [4, 0, 0, 1]]]


def test_equal_share_needs_enough_generating_intervals() -> None:
    a = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert features.equal_share(a, a, a, a) == 1.0
    short = np.array([0.0, 1.0, 2.0, 0.0, 0.0])
    assert features.equal_share(short, short, short, short) == 0.0


def test_cusum_adds_up_a_slow_rise_and_forgets_noise() -> None:
    rising = np.array([[0.0, 0.06, 0.11, 0.16, 0.21]])
    noisy = np.array([[0.1, -0.1, 0.1, -0.1, 0.1]])
    assert features.cusum(rising)[0].tolist() == pytest.approx([0, 0.01, 0.07, 0.18, 0.34])
    assert features.cusum(noisy)[0].max() == pytest.approx(0.05)
    assert features.persistent(rising)[0, 4] == 0.16 and features.persistent(noisy)[0, 4] == -0.1


@pytest.mark.parametrize("copier", [0, 3, 7, 12])
def test_copy_evidence_points_at_the_copier_not_its_source(copier: int) -> None:
    window = simulate(FleetSpec(seed=7, devices=30, days=12, fault_rate=0.0, drifts=0)).window()
    source, day = window.neighbours[copier][0], 9
    for name in ("generation", "export", "imports", "generation_counter"):
        getattr(window, name)[copier, day] = getattr(window, name)[source, day]
    cf = features.capacity_factor(window)
    found = features.copy_features(window, cf, features.neighbour_median(window, cf))
    assert found["copy_share"][copier, day] == 1.0 and found["copy_share"][source, day] == 1.0
    assert found["copy_evidence"][copier, day] > 0 > found["copy_evidence"][source, day]
    assert found["copy_share_as_copier"][copier, day] == 1.0
    assert found["copy_share_as_copier"][source, day] == 0.0
    assert found["copy_share"][:, :day].max() < 0.5  # a few equal dawn values at most


def test_pair_evidence_asks_which_usual_curve_the_numbers_sit_nearer() -> None:
    """A steady device (0) and a scattering one (1) share day 4, which is really 1's: every day
    departs from a steady history, so each device's misfit over its own typical day would blame
    1; the two usual curves say the numbers are 1's."""
    rng = np.random.default_rng(3)
    values = np.stack([0.0 + rng.normal(0, 0.01, (5, 6)), 0.3 + rng.normal(0, 0.15, (5, 6))])
    values[0, 4] = values[1, 4]
    departure, typical = features.usual_departure(values)
    assert features.pair_evidence(departure, typical, 0, 1, 4) > 0
    assert features.pair_evidence(departure, typical, 1, 0, 4) < 0


def test_every_copied_day_of_a_faulty_fleet_is_pinned_on_its_copier() -> None:
    """A fleet with every fault kind (4 of its 22 copied days, 3 of them overcast, were pinned on
    the source when each device's misfit was judged against its own typical day)."""
    simulated = simulate(FleetSpec(seed=101, devices=40, days=14, fault_rate=0.04, drifts=6))
    window = simulated.window()
    cf = features.capacity_factor(window)
    found = features.copy_features(window, cf, features.neighbour_median(window, cf))
    copied = {
        window.position(*key)[:2]  # type: ignore[index]
        for key, kind in simulated.faulty.items()
        if kind == "copy"
    }
    assert len(copied) == 22
    for copier, day in sorted(copied):
        assert found["copy_share_as_copier"][copier, day] == 1.0, (copier, day)
        assert found["copy_evidence"][copier, day] > 0, (copier, day)


def test_baseline_uses_earlier_days_and_a_lag() -> None:
    row = np.array([[1.0, 1.0, 1.0, 2.0, 3.0, 4.0]])
    assert features.baseline(row)[0, 5] == 1.0  # median of 1, 1, 1, 2, 3
    assert features.baseline(row, lag_days=3)[0, 5] == 1.0  # days 0..1
    assert features.trend(row)[0, 5] == pytest.approx(0.8)


def test_a_stopped_counter_is_a_shortfall_and_a_catch_up_is_not() -> None:
    simulated = simulate(FleetSpec(seed=5, devices=6, days=2, fault_rate=0.0, drifts=0))
    window = simulated.window()
    generation = window.generation.copy()
    counters = window.generation_counter.copy()
    n, d, i = 0, 1, 24
    assert generation[n, d, i] > 0
    counters[n, d, i] = counters[n, d, i - 1]  # the register did not move
    stopped = Window(
        window.devices,
        window.start_s,
        window.days,
        generation,
        window.export,
        window.imports,
        counters,
        window.present,
        window.bound,
        window.neighbours,
    )
    short = features.counter_shortfall(stopped)
    assert short[n, d, i] == 1.0
    assert short[n, d, i + 1] == 0.0  # the next advance catches up: more, not less
    assert features.counter_shortfall(window).max() == 0.0


def test_a_flagged_interval_is_rejected_by_the_anomaly_step_and_never_accepted() -> None:
    simulated = simulate(FleetSpec(seed=5, devices=6, days=2, fault_rate=0.0, drifts=0))
    target = simulated.readings[100]
    rid = reading_id(target.device_id, target.interval_start_s)
    screening = Screening("test", 0.5, {rid: 0.9})
    pipeline = DEFAULT_PIPELINE.with_step(AnomalyCheck(screening))
    assert pipeline.names[-1] == NAME
    verdicts = run_pipeline(simulated, pipeline)
    assert verdicts[(target.device_id, target.interval_start_s)] == (True, (NAME,))
    assert sum(rejected for rejected, _ in verdicts.values()) == 1
    assert Screening("test", 0.5, {rid: 0.2}).flagged(rid) is False
    assert FLAGGED == "flagged_by_anomaly_model"


def test_a_saved_model_loads_with_its_training_record_and_refuses_tampering(
    tmp_path: Path,
) -> None:
    trained = model()
    model_path, meta_path = trained.save(tmp_path / "anomaly")
    loaded = AnomalyModel.load(tmp_path / "anomaly")
    assert loaded.version == "test" and [f["seed"] for f in loaded.training["fleets"]] == [21, 23]
    assert len(loaded.training["data_sha256"]) == 64
    x = np.zeros((3, len(features.FEATURES)))
    assert np.allclose(loaded.scores(x), trained.scores(x))
    model_path.write_bytes(model_path.read_bytes() + b"\0")
    with pytest.raises(ModelError):
        AnomalyModel.load(tmp_path / "anomaly")
    assert meta_path.exists()


# ---- the small evaluation: the thresholds --------------------------------------------


@pytest.mark.parametrize("kind", ["inflated", "night", "copy", "replay", "stuck"])
def test_held_out_recall_is_at_least_0_95(kind: str) -> None:
    result = next(k for k in detection().kinds if k.kind == kind)
    assert result.faulty > 0
    assert result.recall >= 0.95, result


def test_held_out_recall_of_drift_is_at_least_0_95() -> None:
    # Measured with this size (30 x 12, trained on 21 and 23, calibrated on 27): 1.000 on seed
    # 22 and on 41-50 (none material on 48); 0.937 on seed 24 (a drifting roof under the
    # darkest sky of the window reads its usual share that day). README.md, "The anomaly model".
    result = next(k for k in detection().kinds if k.kind == "drift")
    assert result.faulty > 0
    assert result.recall >= 0.95, result


def test_held_out_gap_estimates_are_conservative_and_recover_60_percent() -> None:
    # Gaps filled with the anomaly model's verdicts (a flagged day's generation register divided
    # by its day rise). Figures of other fleets: README.md, "The anomaly model".
    gaps = evaluation().gaps
    assert gaps.filled >= 50
    assert gaps.conservative_share >= 0.95, gaps
    assert gaps.recovered_share >= 0.60, gaps


def test_held_out_false_positive_rate_is_at_most_0_01_per_interval() -> None:
    result = detection()
    assert result.clean > 5_000
    assert result.false_positive_rate <= 0.01, result


def test_meets_names_each_threshold_a_fleet_misses() -> None:
    kinds = [
        KindResult("copy", 20, 19, 19),
        KindResult("stuck", 10, 9, 9),
        KindResult("drift", 0, 0, 0),
    ]
    ok = Evaluation(Detection(kinds, 10_000, 100), GapResult(100, 95, 600, 1_000))
    assert ok.meets == {"copy": True, "stuck": False, "false positives": True, "gaps": True}
    bad = Evaluation(Detection(kinds, 10_000, 101), GapResult(100, 99, 599, 1_000))
    assert bad.meets == {"copy": True, "stuck": False, "false positives": False, "gaps": False}
    added = pooled([ok, bad])
    assert added.detection.kinds[0] == KindResult("copy", 40, 38, 38)
    assert added.detection.false_positives == 201 and added.gaps.estimated_wh == 1_199


def test_the_threshold_is_calibrated_on_a_fleet_of_its_own() -> None:
    trained = model()
    assert trained.training["calibration"]["seed"] == CALIBRATION.seed
    assert CALIBRATION.seed not in {spec.seed for spec in TRAIN} | {HELD_OUT.seed}
    assert 0.05 <= trained.threshold <= 0.5
    with pytest.raises(ValueError):
        train(TRAIN[:1], "test", TRAIN[0])


def test_a_calibrated_threshold_flags_at_most_the_target_share_of_clean_scores() -> None:
    scores = np.linspace(0.0, 0.2, 1_001)
    threshold = calibrated_threshold(scores, extra_fpr=0.01)
    assert np.mean(scores >= threshold) <= 0.01 < np.mean(scores >= threshold - 0.001)
    with_faulty_looking = np.concatenate([scores, np.full(10, 0.9)])  # 1 % above 0.5 already
    threshold = calibrated_threshold(with_faulty_looking, extra_fpr=0.01)
    assert np.mean(with_faulty_looking >= threshold) <= 0.02
    assert calibrated_threshold(np.zeros(100)) == 0.05  # never below the floor
    spread = np.linspace(0.3, 0.6, 1_001)  # a third of them flagged at 0.5 already
    assert 0.49 < calibrated_threshold(spread) <= 0.5  # never above 0.5


def test_onset_rise_sees_a_steady_rise_and_not_a_bright_day_gone_by() -> None:
    flat_then_rising = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.10, 0.15]])
    bright_day_gone_by = np.array([[0.0, 0.0, 0.0, 0.0, 0.15, 0.0, 0.0, 0.0]])
    assert features.onset_rise(flat_then_rising)[0, 7] == pytest.approx(0.15)
    assert features.onset_rise(flat_then_rising)[0, 3] == 0.0  # fewer than 5 known days
    assert features.onset_rise(-flat_then_rising)[0, 7] == 0.0  # a fall is no drift
    assert features.onset_rise(bright_day_gone_by)[0, 7] < 0.03


def test_shaped_weather_follows_a_roofs_time_of_day_and_not_its_level() -> None:
    days, hours = 6, np.arange(48)
    sky = np.clip(np.sin((hours - 12) / 24 * np.pi), 0.0, None)  # the place's day
    clouds = np.array([1.0, 0.5, 0.8, 0.3, 0.9, 0.6])[:, None]
    weather = np.broadcast_to((clouds * sky)[None], (1, days, 48)).copy()
    east = np.exp(-0.3 * (hours - 24) / 12)  # reads high in the morning, low in the afternoon
    gain = np.array([1.0, 1.0, 1.0, 1.0, 1.3, 1.4])[None, :, None]  # a drift on the last two
    cf = weather * east * gain
    fit = np.broadcast_to(sky > 0.05, cf.shape)
    shaped = features.shaped_weather(cf, weather, fit)
    ratio = features.day_log_ratio(cf, shaped, fit)[0]
    assert ratio[4] - ratio[0] == pytest.approx(np.log(1.3), abs=0.01)
    assert ratio[5] - ratio[0] == pytest.approx(np.log(1.4), abs=0.01)
    assert np.ptp(ratio[:4]) < 0.01  # clean days read alike, whatever their clouds
    afternoon = weather.copy()
    afternoon[0, 2, 30:] *= 0.2  # clouds come in the afternoon of day 2
    cf = afternoon * east * gain
    moved = features.day_log_ratio(cf, afternoon, fit)[0]
    shaped_again = features.day_log_ratio(cf, features.shaped_weather(cf, afternoon, fit), fit)[0]
    assert moved[2] - moved[0] > 0.02  # an east roof looks high on such a day without its shape
    assert abs(shaped_again[2] - shaped_again[0]) < 0.005  # and does not with it


def test_a_day_far_below_the_reference_does_not_hide_a_rise() -> None:
    rise = np.array([[0.0, 0.05, 0.1, 0.15, -1.4, 0.25]])  # a dull day replayed on day 4
    assert features.persistent(rise)[0, 5] == -1.4
    assert features.persistent(features.skip_falls(rise))[0, 5] == 0.25
    assert features.rolling_mean(features.skip_falls(rise))[0, 5] == pytest.approx(0.2)
    assert np.isnan(features.skip_falls(rise)[0, 4])
    assert features.skip_falls(np.array([[-0.3, 0.2]])).tolist() == [[-0.3, 0.2]]  # weather
