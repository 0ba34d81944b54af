"""Evaluation on held-out fleets: train on one simulated fleet, test on another (another seed)
with every fault kind injected, and measure detection per fault kind and the gap estimates.

Detection counts the whole pipeline: a reading rejected by any step (the physical and
bookkeeping checks, or the ``anomaly_model`` step) is detected, and a replayed envelope resent
byte for byte is a duplicate that issues nothing and counts as detected too. Per fault kind:
recall = detected faulty readings / faulty readings. The false-positive rate is per interval,
over every clean reading of the held-out fleet. Drift readings still under the materiality
threshold (``sim_drift``) count as neither.

Gaps are judged by the estimates that fill them (when the policy allows filling): the share of
filled intervals whose estimate is at most the true self-consumed energy, and the share of the
gaps' true self-consumed energy that the estimates recover. The truth is the same fleet
simulated without faults (the simulator's weather and demand do not depend on the faults).

The fleets use a few neighbouring Kanto municipalities so that each home has neighbours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np

from reco2.ai.check import NAME as ANOMALY_STEP
from reco2.ai.check import AnomalyCheck, screen
from reco2.ai.estimate import DEFAULT_QUANTILE, GapEstimator, calibrated_scale, fit_estimator
from reco2.ai.features import day_rise, interval_features
from reco2.ai.model import AnomalyModel, calibrated_threshold, fit
from reco2.ai.series import DeviceInfo, Window, build_window
from reco2.ingest.sim_drift import DRIFT, apply_drifts, plan_drifts
from reco2.ingest.simulator import FaultKind, Fleet, SimDevice, Simulation, make_fleet
from reco2.ledger.types import Device, DeviceStatus
from reco2.mrv.readings import Reading, self_consumed_wh
from reco2.mrv.validation import DEFAULT_PIPELINE, Pipeline, ReadingHistory, ValidationContext
from reco2.mrv.validation import validate as validate_reading

#: Nerima, Yokohama, Saitama: three places, so that every home has neighbours at its own place
#: (the simulator gives each place its own cloud field; a home alone at its place has none).
PLACES: Final = ("131202", "141003", "111007")
START_DAY: Final = dt.date(2025, 5, 12)
KINDS: Final = (*(k.value for k in FaultKind), DRIFT)
Key = tuple[str, int]


@dataclass(frozen=True, slots=True)
class FleetSpec:
    seed: int
    devices: int
    days: int
    fault_rate: float  # share of device-days per fault kind
    drifts: int
    start_day: dt.date = START_DAY

    def as_record(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "devices": self.devices,
            "days": self.days,
            "fault_rate": self.fault_rate,
            "drifts": self.drifts,
            "start_day": self.start_day.isoformat(),
            "places": list(PLACES),
        }


@dataclass(slots=True)
class Simulated:
    """A simulated fleet's readings in sending order, and its ground truth."""

    fleet: Fleet
    readings: list[Reading]
    raws: list[bytes]
    faulty: dict[Key, str]  # reading key -> fault kind (gaps excluded)
    grace: frozenset[Key]
    resent: frozenset[Key]  # replayed envelopes resent byte for byte (at these keys)
    gaps: frozenset[Key]
    truth_wh: dict[Key, int]  # self-consumed [Wh] of the fault-free run
    devices: dict[str, Device] = field(default_factory=dict)

    @property
    def infos(self) -> list[DeviceInfo]:
        return [DeviceInfo.of(self.devices[d.device_id]) for d in self.fleet.devices]

    def window(self) -> Window:
        return build_window(self.infos, self.readings, self.fleet.start_s, self.fleet.days)


def device_record(device: SimDevice) -> Device:
    """The ledger record a registered and approved simulated device would have."""
    action = device.register_action("sim-aggregator")
    return Device(
        device_id=action.device_id,
        owner=action.owner,
        aggregator=action.aggregator,
        source=action.source,
        capacity_w=action.capacity_w,
        prefecture_code=action.prefecture_code,
        municipality_code=action.municipality_code,
        latitude_e2=action.latitude_e2,
        longitude_e2=action.longitude_e2,
        commissioned_on=action.commissioned_on,
        grid_contract=action.grid_contract,
        utility=action.utility,
        other_schemes=[],
        meter_public_key=action.meter_public_key,
        status=DeviceStatus.active,
        carry_mg=0,
        registered_height=0,
    )


def simulate(spec: FleetSpec) -> Simulated:
    fleet = make_fleet(spec.seed, spec.devices, spec.start_day, spec.days, places=PLACES)
    rates = dict.fromkeys(FaultKind, spec.fault_rate) if spec.fault_rate > 0 else {}
    sim = Simulation(fleet, rates)
    signed = sim.run()
    drifted = apply_drifts(sim, signed, plan_drifts(sim, spec.drifts, spec.seed))
    faulty: dict[Key, str] = {}
    resent: set[Key] = set()
    gaps: set[Key] = set()
    for entry in sim.manifest:
        key = (entry.device_id, entry.interval_start_s)
        if entry.kind is FaultKind.gaps:
            gaps.add(key)
        elif entry.kind is FaultKind.replay and entry.source_interval_s == entry.interval_start_s:
            resent.add(key)
        else:
            faulty[key] = entry.kind.value
    for key in drifted.faulty:
        faulty[key] = DRIFT
    clean = Simulation(fleet, {}).run()
    truth = {
        (s.reading.device_id, s.reading.interval_start_s): self_consumed_wh(s.reading)
        for s in clean
    }
    return Simulated(
        fleet,
        [s.reading for s in drifted.readings],
        [s.raw for s in drifted.readings],
        faulty,
        drifted.grace,
        frozenset(resent),
        frozenset(gaps),
        truth,
        {d.device_id: device_record(d) for d in fleet.devices},
    )


def labels(
    simulated: Simulated, window: Window
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Per feature row: 1 for a faulty reading, 0 for a clean one; and whether the row counts
    (present and not in grace)."""
    y = np.zeros(window.present.shape, dtype=np.int8)
    use = window.present.copy()
    for key, _kind in simulated.faulty.items():
        where = window.position(*key)
        if where is not None:
            y[where] = 1
    for key in simulated.grace:
        where = window.position(*key)
        if where is not None:
            use[where] = False
    return y.reshape(-1), use.reshape(-1)


def training_rows(spec: FleetSpec) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Feature rows and labels of one simulated fleet (present readings out of grace)."""
    simulated = simulate(spec)
    window = simulated.window()
    matrix = interval_features(window)
    y, use = labels(simulated, window)
    return matrix[use], y[use]


def train(
    specs: FleetSpec | Sequence[FleetSpec], version: str, calibration: FleetSpec | None = None
) -> AnomalyModel:
    """Fit the model on the rows of one or more simulated fleets; with a ``calibration`` fleet
    (another seed), set its threshold from the scores of that fleet's clean intervals
    (``model.calibrated_threshold``)."""
    fleets = [specs] if isinstance(specs, FleetSpec) else list(specs)
    if calibration is not None and calibration.seed in {spec.seed for spec in fleets}:
        raise ValueError("the calibration fleet needs a seed of its own")
    parts = [training_rows(spec) for spec in fleets]
    matrix = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    record: dict[str, Any] = {"fleets": [spec.as_record() for spec in fleets]}
    model = fit(matrix, y, version, record, seed=fleets[0].seed)
    if calibration is None:
        return model
    rows, labels_ = training_rows(calibration)
    threshold = calibrated_threshold(model.scores(rows[labels_ == 0]))
    record = {**model.training, "calibration": calibration.as_record()}
    return replace(model, threshold=threshold, training=record)


#: The issue's thresholds: recall per fault kind, false positives per clean interval, and for
#: the gaps the share of filled intervals at most the truth and the share of energy recovered.
RECALL_TARGET: Final = 0.95
FPR_TARGET: Final = 0.01
CONSERVATIVE_SHARE_TARGET: Final = 0.95
RECOVERY_TARGET: Final = 0.60


@dataclass(frozen=True, slots=True)
class KindResult:
    kind: str
    faulty: int
    detected: int
    by_model_only: int

    @property
    def recall(self) -> float:
        return self.detected / self.faulty if self.faulty else float("nan")


@dataclass(frozen=True, slots=True)
class Detection:
    kinds: list[KindResult]
    clean: int
    false_positives: int

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.clean if self.clean else float("nan")


def run_pipeline(
    simulated: Simulated, pipeline: Pipeline
) -> dict[Key, tuple[bool, tuple[str, ...]]]:
    """Validate every reading in sending order; per key, the first verdict (rejected?, checks)."""
    history = ReadingHistory()
    devices = simulated.devices
    context = ValidationContext(devices.get, history, simulated.fleet.end_s + 3_600)
    verdicts: dict[Key, tuple[bool, tuple[str, ...]]] = {}
    for raw, reading in zip(simulated.raws, simulated.readings, strict=True):
        key = (reading.device_id, reading.interval_start_s)
        result = validate_reading(raw, context, pipeline)
        if result.accepted:
            history.add(reading)
        if key not in verdicts:
            verdicts[key] = (not result.accepted, tuple(r.check for r in result.rejections))
    return verdicts


def detect(model: AnomalyModel, simulated: Simulated) -> Detection:
    screening = screen(model, simulated.window())
    verdicts = run_pipeline(simulated, DEFAULT_PIPELINE.with_step(AnomalyCheck(screening)))
    return detection_of(simulated, verdicts)


def detection_of(
    simulated: Simulated, verdicts: dict[Key, tuple[bool, tuple[str, ...]]]
) -> Detection:
    """Recall per fault kind and the false-positive rate per interval of the verdicts."""
    results: list[KindResult] = []
    for kind in KINDS:
        if kind == FaultKind.gaps.value:
            continue
        keys = [k for k, v in simulated.faulty.items() if v == kind]
        detected = [k for k in keys if verdicts[k][0]]
        only_model = [k for k in detected if verdicts[k][1] == ("anomaly_model",)]
        extra = len(simulated.resent) if kind == FaultKind.replay.value else 0
        results.append(KindResult(kind, len(keys) + extra, len(detected) + extra, len(only_model)))
    clean = [k for k in verdicts if k not in simulated.faulty and k not in simulated.grace]
    false_positives = sum(1 for k in clean if verdicts[k][0])
    return Detection(results, len(clean), false_positives)


def evaluate(train_spec: FleetSpec, test_spec: FleetSpec, version: str = "eval") -> Detection:
    model = train(train_spec, version)
    return detect(model, simulate(test_spec))


def describe(detection: Detection) -> Sequence[str]:
    lines = [
        f"{k.kind}: {k.detected}/{k.faulty} recall {k.recall:.3f} model-only {k.by_model_only}"
        for k in detection.kinds
    ]
    lines.append(
        f"FPR {detection.false_positives}/{detection.clean} = {detection.false_positive_rate:.4f}"
    )
    return lines


# ---- gaps: the conservative estimates --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GapResult:
    filled: int
    conservative: int  # estimate <= truth
    estimated_wh: int
    truth_wh: int

    @property
    def conservative_share(self) -> float:
        return self.conservative / self.filled if self.filled else float("nan")

    @property
    def recovered_share(self) -> float:
        return self.estimated_wh / self.truth_wh if self.truth_wh else float("nan")


def clean_readings(simulated: Simulated, window: Window) -> np.ndarray[Any, Any]:
    """Present readings that are not faulty in the ground truth (training the estimator)."""
    y, use = labels(simulated, window)
    usable: np.ndarray[Any, Any] = (window.present.reshape(-1) & use & (y == 0)).reshape(
        window.present.shape
    )
    return usable


def train_estimator(
    specs: FleetSpec | Sequence[FleetSpec],
    quantile: float = DEFAULT_QUANTILE,
    calibration: FleetSpec | None = None,
) -> GapEstimator:
    """Fit the gap estimator on the clean readings of one or more fleets; with a
    ``calibration`` fleet (another seed), scale its quantiles on runs hidden in that fleet's
    clean readings (``estimate.calibrated_scale``)."""
    fleets = [specs] if isinstance(specs, FleetSpec) else list(specs)
    if calibration is not None and calibration.seed in {spec.seed for spec in fleets}:
        raise ValueError("the calibration fleet needs a seed of its own")
    windows = [_clean_window(spec) for spec in fleets]
    estimator = fit_estimator(windows, quantile, seed=fleets[0].seed)
    if calibration is None:
        return estimator
    return calibrated_scale(estimator, [_clean_window(calibration)], seed=calibration.seed)


def _clean_window(spec: FleetSpec) -> tuple[Window, np.ndarray[Any, Any]]:
    simulated = simulate(spec)
    window = simulated.window()
    return window, clean_readings(simulated, window)


def estimate_gaps(
    estimator: GapEstimator,
    simulated: Simulated,
    verdicts: dict[Key, tuple[bool, tuple[str, ...]]],
) -> GapResult:
    """Fill the held-out fleet's gaps from the readings the pipeline accepted; score them. On a
    day the anomaly model flagged (``flagged_days``), the generation register's advance over a
    gap is divided by how far the roof read above its usual share of its place's weather that
    day (``features.day_rise``): a drifting meter's generation register over-reads by its gain,
    its export register (the grid meter's) does not. The estimator's lower quantile covers the
    error of that day rise (with a margin of 0.1 in log on top, flagged days recovered 0.49 of
    their energy on six 30 x 12 fleets, without it 0.62 with 1 of 57 intervals above the
    truth)."""
    window = simulated.window()
    usable = window.present.copy()
    for key, (rejected, _) in verdicts.items():
        where = window.position(*key)
        if rejected and where is not None:
            usable[where] = False
    targets = np.zeros(window.present.shape, dtype=bool)
    for key in simulated.gaps:
        where = window.position(*key)
        if where is not None:
            targets[where] = True
    rise = np.maximum(np.nan_to_num(day_rise(window)), 0.0)
    over_read = np.broadcast_to(np.exp(rise)[:, :, None], window.present.shape)
    values = estimator.estimate_wh(
        window, usable, targets, flagged_days(window, verdicts), over_read
    )
    filled = conservative = estimated = truth = 0
    for key in simulated.gaps:
        where = window.position(*key)
        if where is None:
            continue
        value = float(values[where])
        true_wh = simulated.truth_wh[key]
        filled += 1
        conservative += int(value <= true_wh)
        estimated += int(value)
        truth += true_wh
    return GapResult(filled, conservative, estimated, truth)


def flagged_days(
    window: Window, verdicts: dict[Key, tuple[bool, tuple[str, ...]]]
) -> np.ndarray[Any, Any]:
    """Per interval: whether the anomaly model flagged a reading of its device-day."""
    days = np.zeros(window.present.shape[:2], dtype=bool)
    for key, (rejected, checks) in verdicts.items():
        where = window.position(*key)
        if rejected and where is not None and ANOMALY_STEP in checks:
            days[where[:2]] = True
    out: np.ndarray[Any, Any] = np.broadcast_to(days[:, :, None], window.present.shape)
    return out


@dataclass(frozen=True, slots=True)
class Evaluation:
    detection: Detection
    gaps: GapResult

    @property
    def meets(self) -> dict[str, bool]:
        """Whether this evaluation meets the issue's thresholds: per fault kind with faults,
        recall ``RECALL_TARGET``; the false-positive rate; and the gaps, at most the truth in
        ``CONSERVATIVE_SHARE_TARGET`` of filled intervals while recovering ``RECOVERY_TARGET``
        of their energy."""
        out = {
            kind.kind: kind.recall >= RECALL_TARGET for kind in self.detection.kinds if kind.faulty
        }
        out["false positives"] = self.detection.false_positive_rate <= FPR_TARGET
        if self.gaps.filled:
            out["gaps"] = (
                self.gaps.conservative_share >= CONSERVATIVE_SHARE_TARGET
                and self.gaps.recovered_share >= RECOVERY_TARGET
            )
        return out


def pooled(evaluations: Sequence[Evaluation]) -> Evaluation:
    """The counts of several held-out fleets' evaluations added up (one table over all)."""
    if not evaluations:
        raise ValueError("no evaluations to pool")
    kinds = [
        KindResult(
            results[0].kind,
            sum(r.faulty for r in results),
            sum(r.detected for r in results),
            sum(r.by_model_only for r in results),
        )
        for results in zip(*(e.detection.kinds for e in evaluations), strict=True)
    ]
    detection = Detection(
        kinds,
        sum(e.detection.clean for e in evaluations),
        sum(e.detection.false_positives for e in evaluations),
    )
    gaps = GapResult(
        sum(e.gaps.filled for e in evaluations),
        sum(e.gaps.conservative for e in evaluations),
        sum(e.gaps.estimated_wh for e in evaluations),
        sum(e.gaps.truth_wh for e in evaluations),
    )
    return Evaluation(detection, gaps)


def evaluate_held_out(
    model: AnomalyModel, estimator: GapEstimator, held_out: FleetSpec
) -> Evaluation:
    """Detection per fault kind and the gap estimates on a held-out fleet."""
    simulated = simulate(held_out)
    screening = screen(model, simulated.window())
    verdicts = run_pipeline(simulated, DEFAULT_PIPELINE.with_step(AnomalyCheck(screening)))
    return Evaluation(
        detection_of(simulated, verdicts), estimate_gaps(estimator, simulated, verdicts)
    )
