"""The anomaly model as a named step of the validation pipeline (``anomaly_model``).

The model judges an interval in the light of the whole device-day, the device's history and its
neighbours, so it scores a window of days at once (``screen``): the result, a ``Screening``, maps
each scored reading id to the model's score. ``AnomalyCheck`` is the pipeline step that reads it:
a reading whose score is at or above the model's threshold is rejected with
``flagged_by_anomaly_model`` and so is kept, with its reason, and never issues value (the score
itself is kept in ``review.ReviewStore``). Only the registry authority's release on the ledger
(``ReleaseReading``) lets such an interval count again. A reading the screening did not score
(a day not yet screened) passes this step; ``reco2 issue-days --model`` screens every day
before it issues it (``gate``).

Usage::

    screening = screen(model, window)
    pipeline = DEFAULT_PIPELINE.with_step(AnomalyCheck(screening))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from reco2.ai.features import interval_features
from reco2.ai.model import AnomalyModel
from reco2.ai.series import INTERVALS_PER_DAY, Window
from reco2.mrv.readings import reading_id
from reco2.mrv.validation import Candidate, Rejection, ValidationContext

NAME: Final = "anomaly_model"
FLAGGED: Final = "flagged_by_anomaly_model"


@dataclass(frozen=True, slots=True)
class Screening:
    """Scores of the present readings of a window, by reading id, and the flagging threshold."""

    model_version: str
    threshold: float
    scores: Mapping[str, float]

    def flagged(self, rid: str) -> bool:
        score = self.scores.get(rid)
        return score is not None and score >= self.threshold

    @property
    def flagged_ids(self) -> list[str]:
        return sorted(rid for rid, score in self.scores.items() if score >= self.threshold)


def screen(model: AnomalyModel, window: Window) -> Screening:
    """Score every present reading of the window."""
    scores = model.scores(interval_features(window)).reshape(window.present.shape)
    out: dict[str, float] = {}
    for n, d, i in zip(*np.nonzero(window.present), strict=True):
        device_id = window.devices[int(n)].device_id
        start_s = window.start_s + (int(d) * INTERVALS_PER_DAY + int(i)) * 1_800
        out[reading_id(device_id, start_s)] = float(scores[n, d, i])
    return Screening(model.version, model.threshold, out)


@dataclass(frozen=True, slots=True)
class AnomalyCheck:
    """``validation.Check``: rejects readings the screening flagged."""

    screening: Screening
    name: str = NAME

    def __call__(self, candidate: Candidate, context: ValidationContext) -> Rejection | None:
        reading = candidate.reading
        if self.screening.flagged(reading_id(reading.device_id, reading.interval_start_s)):
            return Rejection(self.name, FLAGGED)
        return None
