"""The anomaly model: a gradient-boosted classifier over ``features.FEATURES``.

Trained on simulated fleets whose faults are known (``reco2 mrv train``); it scores each interval
in [0, 1] and flags those at or above ``threshold``. Saved as two files side by side:
``<name>.joblib`` (the fitted scikit-learn estimator) and ``<name>.json`` (the metadata: model
version, feature names, threshold, scikit-learn version, the SHA-256 of the joblib file, and the
record of the data it was trained on: seed, fleet size, days, fault rates and a hash of the
training matrix). Loading checks the hash and the feature names before trusting the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier

from reco2.ai.features import FEATURES, INCREASING
from reco2.ai.series import FloatArray

MODEL_FORMAT: Final = "reco2-anomaly/1"
DEFAULT_THRESHOLD: Final = 0.5
#: Share of clean intervals of a calibration fleet that lowering the threshold from 0.5 may add
#: to those flagged.
CALIBRATION_EXTRA_FPR: Final = 0.002
#: Bounds of a calibrated threshold.
THRESHOLD_RANGE: Final = (0.05, 0.5)


class ModelError(RuntimeError):
    """A saved model cannot be used (missing, altered, or made for other features)."""


def data_hash(matrix: FloatArray, labels: np.ndarray[Any, Any]) -> str:
    """SHA-256 of the training matrix and labels, as float64 / int8 bytes in C order."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(matrix, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int8).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class AnomalyModel:
    estimator: HistGradientBoostingClassifier
    version: str
    threshold: float
    training: dict[str, Any]

    def scores(self, matrix: FloatArray) -> FloatArray:
        """Probability of a fault per row [0, 1]."""
        if len(matrix) == 0:
            return np.zeros(0)
        probabilities: FloatArray = self.estimator.predict_proba(matrix)[:, 1]
        return probabilities

    def save(self, path: Path) -> tuple[Path, Path]:
        """Write ``path`` with suffixes .joblib and .json; returns both paths."""
        model_path = path.with_suffix(".joblib")
        meta_path = path.with_suffix(".json")
        model_path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.estimator, model_path)
        meta = {
            "format": MODEL_FORMAT,
            "version": self.version,
            "features": list(FEATURES),
            "threshold": self.threshold,
            "sklearn": sklearn.__version__,
            "model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
            "training": self.training,
        }
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return model_path, meta_path

    @staticmethod
    def load(path: Path) -> AnomalyModel:
        model_path = path.with_suffix(".joblib")
        meta_path = path.with_suffix(".json")
        if not model_path.exists() or not meta_path.exists():
            raise ModelError(f"no model at {path} (run `reco2 mrv train`)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != MODEL_FORMAT or meta.get("features") != list(FEATURES):
            raise ModelError(f"{meta_path} is for other features: train again")
        if hashlib.sha256(model_path.read_bytes()).hexdigest() != meta.get("model_sha256"):
            raise ModelError(f"{model_path} does not match its metadata")
        estimator = joblib.load(model_path)
        if not isinstance(estimator, HistGradientBoostingClassifier):
            raise ModelError(f"{model_path} holds no anomaly classifier")
        return AnomalyModel(
            estimator, str(meta["version"]), float(meta["threshold"]), dict(meta["training"])
        )


def calibrated_threshold(
    clean_scores: FloatArray, extra_fpr: float = CALIBRATION_EXTRA_FPR
) -> float:
    """The lowest threshold within ``THRESHOLD_RANGE`` that flags at most ``extra_fpr`` more of
    the clean intervals of a calibration fleet (neither training nor test data) than the
    highest one does: a fault's probability is shrunk by how rare faults are in training, so
    0.5 leaves faults unflagged that cost next to no false positives."""
    low, high = THRESHOLD_RANGE
    if len(clean_scores) == 0:
        return high
    allowed = float(np.mean(clean_scores >= high)) + extra_fpr
    if allowed >= 1.0:
        return low
    quantile = float(np.quantile(clean_scores, 1.0 - allowed, method="higher"))
    return min(high, max(low, float(np.nextafter(quantile, 1.0))))


def fit(
    matrix: FloatArray,
    labels: np.ndarray[Any, Any],
    version: str,
    training: dict[str, Any],
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
) -> AnomalyModel:
    """Fit the classifier on feature rows and 0/1 labels (``training`` describes the data)."""
    estimator = HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=100,
        l2_regularization=1.0,
        monotonic_cst=[1 if name in INCREASING else 0 for name in FEATURES],
        random_state=seed,
    )
    estimator.fit(matrix, labels)
    record = {
        **training,
        "rows": len(labels),
        "faulty_rows": int(np.sum(labels)),
        "data_sha256": data_hash(matrix, labels),
    }
    return AnomalyModel(estimator, version, threshold, record)
