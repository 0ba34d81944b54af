"""Screening before issuance: the anomaly model as the last step before value exists.

``reco2 issue-days --model`` passes a ``Gate``. Before any day is issued, every pending
device-day not yet screened by the model's version is scored (``screen_pending``): the day is
laid out with up to ``HISTORY_DAYS`` days of history before it and with the other pending
devices (its neighbours, by the rule of ``series``), and each reading scored at or above the
model's threshold is rejected with ``flagged_by_anomaly_model``. The screening and its flags are
kept in the ``review.ReviewStore``: a day is screened once per model version, so later runs
judge the same flags, unless its count of accepted readings changed (a reading that arrived
late is screened with its day, never counted unscreened).

Then each day is decided (``decide``): the day's accepted readings count as measured, except
its flagged readings, which count only when the ledger holds the registry authority's
``ReleaseReading`` for exactly that reading's envelope hash and that model version
(``screened.screen_day``). A day with a flagged reading nobody released waits
``review_s`` after its screening for a release (it is *held*: not issued, not recorded, judged
again by the next run); after that it issues without those readings. A day whose readings
were all flagged and never released issues nothing.

Estimates are filled only where the programme's policy allows it (``estimate.EstimationPolicy``,
off by default: then each batch counts measured energy only). With a gap ``estimator`` and
``policy.allow_estimates`` (``reco2 issue-days --estimate-gaps``), ``estimate_pending`` fills,
before the days are decided, each pending day's intervals that have no accepted reading
(missing, or rejected by the intake's checks), and with ``policy.fill_flagged`` its flagged
readings too, with the estimator's lower-quantile estimates: the day is laid out as for the
screening, with its history, its neighbours and the day after it (whose first reading's
registers bound a gap at the day's end); flagged readings inform nothing, and a gap on a day
with a flagged reading, or whose run of unusable intervals takes one in, is estimated without
the registers (a drifting meter's registers over-read). Estimates below 1 Wh are not filled.
Each day's estimates, with their quantile, confidence and estimator version, replace the day's
earlier ones in the ``review.ReviewStore`` (``estimates``), so the decision reads the same
figures the store shows; ``decide`` passes the estimator version's estimates to
``screened.screen_day``, which fills only intervals with no measured reading and counts them
apart (``estimated_intervals``, ``estimated_wh``), as the ledger's ``IssueValue`` has them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from reco2.ai.check import screen
from reco2.ai.estimate import Estimate, EstimationPolicy, GapEstimator, _runs
from reco2.ai.model import AnomalyModel, ModelError
from reco2.ai.review import Flag, ReviewStore
from reco2.ai.screened import FlaggedReading, ScreenedDay, screen_day
from reco2.ai.series import INTERVALS_PER_DAY, DeviceInfo, Window, build_window
from reco2.ledger.calendar import INTERVAL_S
from reco2.ledger.types import Device, ReadingRelease
from reco2.mrv.readings import Reading, reading_id
from reco2.mrv.store import DAY_S, PendingDay, ReadingsStore, jst_day_start_s

#: Days of a device's history laid out before a screened day (the model is trained on fleets
#: of 14 days; its features look back over the days so far).
HISTORY_DAYS: Final = 13
#: Screened days per window at most: a long backlog is screened in windows of this many days
#: (plus their history), so memory stays bounded by devices x (HISTORY_DAYS + CHUNK_DAYS).
CHUNK_DAYS: Final = 14
#: How long a day with an unreleased flagged reading waits for a release by default [s].
DEFAULT_REVIEW_S: Final = 3 * DAY_S

#: ``release_of(device_id, interval_start_s, model_version)``: the ledger's release record.
ReleaseLookup = Callable[[str, int, str], ReadingRelease | None]


@dataclass(frozen=True, slots=True)
class Decision:
    """What a screened device-day issues, and until when it waits for a release [UTC s]
    (None: it issues now)."""

    day: ScreenedDay
    held_until_s: int | None


@dataclass(frozen=True, slots=True)
class Gate:
    model: AnomalyModel
    review: ReviewStore
    review_s: int = DEFAULT_REVIEW_S
    estimator: GapEstimator | None = None
    policy: EstimationPolicy = field(default_factory=EstimationPolicy)

    def __post_init__(self) -> None:
        if self.estimator is not None and self.estimator.quantile > self.policy.quantile:
            raise ModelError(
                f"the gap estimator's quantile {self.estimator.quantile} is above the "
                f"programme's {self.policy.quantile}"
            )

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def estimating(self) -> bool:
        """Whether this gate fills gaps (an estimator and a policy that allows it)."""
        return self.estimator is not None and self.policy.allow_estimates

    def screen_pending(
        self,
        store: ReadingsStore,
        devices: Mapping[str, Device],
        days: Sequence[PendingDay],
        now_s: int,
    ) -> int:
        """Screen and record every day of ``days`` (of a device in ``devices``) that this model
        version has not screened; returns how many days were screened."""
        known, infos = _known(devices, days)
        todo = [d for d in known if not self._screened(d)]
        if not todo:
            return 0
        for window, _, in_chunk in _chunk_windows(store, infos, todo, days_after=0):
            screening = screen(self.model, window)
            for day in in_chunk:
                flags = []
                for i in range(INTERVALS_PER_DAY):
                    start = day.day_start_s + i * INTERVAL_S
                    rid = reading_id(day.device_id, start)
                    if screening.flagged(rid):
                        score = screening.scores[rid]
                        flags.append(Flag(rid, day.device_id, start, score, self.version))
                self.review.record_screened(
                    day.device_id, day.day_start_s, self.version, day.readings, flags, now_s
                )
        return len(todo)

    def estimate_pending(
        self,
        store: ReadingsStore,
        devices: Mapping[str, Device],
        days: Sequence[PendingDay],
        now_s: int,
    ) -> int:
        """Fill and record the estimates of every day of ``days`` (of a device in ``devices``)
        as the module docstring says; the days must have been screened. Returns how many
        intervals were filled (0 when the gate does not estimate)."""
        estimator = self.estimator
        if estimator is None or not self.policy.allow_estimates:
            return 0
        known, infos = _known(devices, days)
        filled = 0
        # with the day after: its registers bound a gap at the end of a day
        for window, end_s, in_chunk in _chunk_windows(store, infos, known, days_after=1):
            usable, doubtful, flagged = self._usable(window, end_s)
            targets = np.zeros(window.present.shape, dtype=bool)
            for day in in_chunk:
                where = window.position(day.device_id, day.day_start_s)
                assert where is not None
                n, d, _ = where
                targets[n, d] = ~window.present[n, d]
                if self.policy.fill_flagged:
                    targets[n, d] |= flagged[n, d]
            values = estimator.estimate_wh(window, usable, targets, doubtful)
            for day in in_chunk:
                where = window.position(day.device_id, day.day_start_s)
                assert where is not None
                n, d, _ = where
                found = [
                    Estimate(
                        day.device_id,
                        day.day_start_s + i * INTERVAL_S,
                        int(values[n, d, i]),
                        estimator.quantile,
                        round(1.0 - estimator.quantile, 6),
                        estimator.version,
                    )
                    for i in range(INTERVALS_PER_DAY)
                    if targets[n, d, i] and values[n, d, i] >= 1
                ]
                self.review.replace_estimates(day.device_id, day.day_start_s, found, now_s)
                filled += len(found)
        return filled

    def _usable(
        self, window: Window, end_s: int
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Per interval of ``window``: whether its reading may inform estimates (present and not
        flagged by this model version), whether its estimate must not use the registers (its day
        has a flagged reading, or its run of unusable intervals takes one in or ends on such a
        day), and whether this model version flagged its reading."""
        flagged = np.zeros(window.present.shape, dtype=bool)
        for device in window.devices:
            for flag in self.review.flags(device.device_id, window.start_s, end_s, self.version):
                where = window.position(flag.device_id, flag.interval_start_s)
                if where is not None:
                    flagged[where] = True
        usable = window.present & ~flagged
        doubtful = np.broadcast_to(flagged.any(axis=2, keepdims=True), flagged.shape).copy()
        line = (len(window.devices), -1)
        flat_doubt, flat_flagged = doubtful.reshape(line), flagged.reshape(line)
        size = flat_doubt.shape[1]
        for n, i, j in _runs(usable.reshape(line)):
            edges = flat_doubt[n, max(i - 1, 0)] or flat_doubt[n, min(j, size - 1)]
            if edges or flat_flagged[n, i:j].any() or flat_doubt[n, i:j].any():
                flat_doubt[n, i:j] = True
        return usable, doubtful, flagged

    def _screened(self, day: PendingDay) -> bool:
        """Screened by this model version with the accepted readings it has now."""
        record = self.review.screened(day.device_id, day.day_start_s, self.version)
        return record is not None and record.readings == day.readings

    def decide(
        self,
        store: ReadingsStore,
        device_id: str,
        day_start_s: int,
        release_of: ReleaseLookup,
        now_s: int,
    ) -> Decision:
        """The day's measured readings and whether it waits (see the module docstring). The
        day must have been screened (``screen_pending``)."""
        record = self.review.screened(device_id, day_start_s, self.version)
        assert record is not None, "screen_pending screens every day before it is decided"
        flagged_ids = {
            flag.reading_id
            for flag in self.review.flags(device_id, day_start_s, day_start_s + DAY_S, self.version)
        }
        clean: list[Reading] = []
        flagged: list[FlaggedReading] = []
        releases: dict[str, ReadingRelease] = {}
        for reading in store.accepted_readings(device_id, day_start_s, day_start_s + DAY_S):
            rid = reading_id(reading.device_id, reading.interval_start_s)
            if rid not in flagged_ids:
                clean.append(reading)
                continue
            row = store.reading(rid)
            assert row is not None, "an accepted reading has its row"
            flagged.append(FlaggedReading(reading, row.hash, self.version))
            release = release_of(device_id, reading.interval_start_s, self.version)
            if release is not None:
                releases[rid] = release
        estimates: list[Estimate] = []
        if self.estimator is not None and self.policy.allow_estimates:
            version = self.estimator.version
            estimates = [
                e
                for e in self.review.estimates(device_id, day_start_s, day_start_s + DAY_S)
                if e.model_version == version
            ]
        day = screen_day(clean, flagged, releases, estimates, self.policy)
        held_until_s = record.screened_at_s + self.review_s
        if not day.withheld or now_s >= held_until_s:
            return Decision(day, None)
        return Decision(day, held_until_s)


def _chunks(day_starts: list[int]) -> Iterator[list[int]]:
    """Sorted day starts in runs spanning at most ``CHUNK_DAYS`` days."""
    chunk: list[int] = []
    for start_s in day_starts:
        if chunk and start_s - chunk[0] >= CHUNK_DAYS * DAY_S:
            yield chunk
            chunk = []
        chunk.append(start_s)
    if chunk:
        yield chunk


def _known(
    devices: Mapping[str, Device], days: Sequence[PendingDay]
) -> tuple[list[PendingDay], list[DeviceInfo]]:
    """The days of a device in ``devices``, and those devices (sorted by id)."""
    known = [d for d in days if d.device_id in devices]
    return known, [DeviceInfo.of(devices[i]) for i in sorted({d.device_id for d in known})]


def _chunk_windows(
    store: ReadingsStore, infos: Sequence[DeviceInfo], days: Sequence[PendingDay], days_after: int
) -> Iterator[tuple[Window, int, list[PendingDay]]]:
    """The ``days`` in chunks (``_chunks``): per chunk, the devices' window from their history
    to ``days_after`` days after the chunk's last day, that window's end, and the chunk's days."""
    for chunk in _chunks(sorted({d.day_start_s for d in days})):
        end_s = chunk[-1] + (1 + days_after) * DAY_S
        in_chunk = set(chunk)
        window = _load_window(store, infos, chunk[0], end_s)
        yield window, end_s, [d for d in days if d.day_start_s in in_chunk]


def _load_window(
    store: ReadingsStore, infos: Sequence[DeviceInfo], first_s: int, end_s: int
) -> Window:
    """The devices' accepted readings laid out from their history before ``first_s``
    (``_window_start_s``) to ``end_s`` (a day start, exclusive)."""
    start_s = _window_start_s(store, infos, first_s)
    readings: list[Reading] = []
    for info in infos:
        readings += store.accepted_readings(info.device_id, start_s, end_s)
    return build_window(infos, readings, start_s, (end_s - start_s) // DAY_S)


def _window_start_s(store: ReadingsStore, infos: Sequence[DeviceInfo], first_s: int) -> int:
    """Up to ``HISTORY_DAYS`` before ``first_s``, but not before the first day any of the
    devices has a reading in that span (a window of empty leading days is not what the model
    was trained on)."""
    earliest_s = first_s - HISTORY_DAYS * DAY_S
    found = first_s
    for info in infos:
        reading = store.following_accepted(info.device_id, earliest_s - 1)
        if reading is not None and reading.interval_start_s < found:
            found = reading.interval_start_s
    return max(earliest_s, jst_day_start_s(found))
