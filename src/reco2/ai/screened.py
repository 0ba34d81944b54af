"""A device-day's quantification after screening: measured and estimated energy kept apart.

Measured intervals are the day's accepted readings, plus flagged readings (rejected by the
``anomaly_model`` step alone) that the registry authority released on the ledger
(``ReleaseReading``) for exactly those bytes and the model version that flagged them; a flagged
reading without such a release never counts. Where the programme's
``EstimationPolicy`` allows it, intervals with no measured reading are filled by their
conservative estimates, counted in ``estimated_intervals`` and ``estimated_wh`` and included in
``self_consumed_wh``, as the ledger's ``IssueValue`` has them (a buyer can refuse such batches
with ``BuyConditions.exclude_estimated``). The readings root covers the measured readings only;
estimates are not signed readings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reco2.ai.estimate import Estimate, EstimationPolicy
from reco2.ledger.tx import IssueValue
from reco2.ledger.types import Device, ReadingRelease
from reco2.mrv.quantify import DAY_S, build_issuance, readings_root
from reco2.mrv.readings import Reading, reading_id, self_consumed_wh


@dataclass(frozen=True, slots=True)
class FlaggedReading:
    """A reading the anomaly model flagged, with its envelope hash and the flagging model's
    version (what a release must name)."""

    reading: Reading
    hash: bytes
    model_version: str

    @property
    def reading_id(self) -> str:
        return reading_id(self.reading.device_id, self.reading.interval_start_s)


@dataclass(frozen=True, slots=True)
class ScreenedDay:
    """What one device-day issues: the measured readings and the estimates used."""

    measured: tuple[Reading, ...]
    estimates: tuple[Estimate, ...]
    withheld: tuple[str, ...]  # reading ids of flagged readings nobody released
    released: tuple[str, ...] = ()  # reading ids of flagged readings released on the ledger

    @property
    def measured_wh(self) -> int:
        return sum(self_consumed_wh(reading) for reading in self.measured)

    @property
    def estimated_wh(self) -> int:
        return sum(estimate.self_consumed_wh for estimate in self.estimates)


def screen_day(
    accepted: Sequence[Reading],
    flagged: Sequence[FlaggedReading],
    releases: Mapping[str, ReadingRelease],
    estimates: Sequence[Estimate],
    policy: EstimationPolicy,
) -> ScreenedDay:
    """Apply the rules of the module docstring. ``releases`` are the ledger's release records
    of the flagged readings, keyed by reading id; one that names other bytes or another model
    version releases nothing."""
    measured = {r.interval_start_s: r for r in accepted}
    withheld: list[str] = []
    released: list[str] = []
    for item in flagged:
        release = releases.get(item.reading_id)
        if (
            release is not None
            and release.reading_hash == item.hash
            and release.model_version == item.model_version
            and release.device_id == item.reading.device_id
            and release.interval_start_s == item.reading.interval_start_s
        ):
            measured.setdefault(item.reading.interval_start_s, item.reading)
            released.append(item.reading_id)
        else:
            withheld.append(item.reading_id)
    used: list[Estimate] = []
    if policy.allow_estimates:
        seen: set[int] = set()
        for estimate in sorted(estimates, key=lambda e: e.interval_start_s):
            start_s = estimate.interval_start_s
            if start_s in measured or start_s in seen or estimate.self_consumed_wh < 0:
                continue
            seen.add(start_s)
            used.append(estimate)
    return ScreenedDay(
        tuple(measured[s] for s in sorted(measured)),
        tuple(used),
        tuple(sorted(withheld)),
        tuple(sorted(released)),
    )


def build_screened_issuance(
    device: Device, batch_id: str, day_start_s: int, day: ScreenedDay, factor_version: str
) -> IssueValue | None:
    """The day's ``IssueValue`` (None when it has neither measured readings nor estimates).

    Raises ValueError as ``quantify.build_issuance`` does for readings or estimates that do not
    belong to the device-day.
    """
    for estimate in day.estimates:
        if estimate.device_id != device.device_id:
            raise ValueError(f"estimate of {estimate.device_id} in a batch of {device.device_id}")
        if not day_start_s <= estimate.interval_start_s < day_start_s + DAY_S:
            raise ValueError(f"estimate at {estimate.interval_start_s} is outside the day")
    if not day.measured and not day.estimates:
        return None
    if day.measured:
        base = build_issuance(device, batch_id, day_start_s, day.measured, factor_version)
    else:
        base = IssueValue(
            batch_id=batch_id,
            device_id=device.device_id,
            period_start_s=day_start_s,
            period_end_s=day_start_s + DAY_S,
            self_consumed_wh=0,
            measured_intervals=0,
            estimated_intervals=0,
            estimated_wh=0,
            readings_root=readings_root([]),
            factor_version=factor_version,
        )
    return IssueValue(
        batch_id=base.batch_id,
        device_id=base.device_id,
        period_start_s=base.period_start_s,
        period_end_s=base.period_end_s,
        self_consumed_wh=base.self_consumed_wh + day.estimated_wh,
        measured_intervals=base.measured_intervals,
        estimated_intervals=len(day.estimates),
        estimated_wh=day.estimated_wh,
        readings_root=base.readings_root,
        factor_version=base.factor_version,
    )
