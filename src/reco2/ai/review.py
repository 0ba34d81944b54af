"""What the anomaly model and the gap estimator add to the readings store, in SQLite.

The readings store (``reco2.mrv.store``) keeps every reading with the verdict of the intake's
physical checks. Issuance (``reco2 issue-days --model``, ``reco2.ai.gate``) screens each
device-day with the anomaly model before it issues it, and keeps here, keyed by reading id and
model version, what the ``anomaly_model`` step decided:

``screened_days``  each device-day screened by a model version: when it was first screened
                   (the review window of its flags starts then), how many accepted readings
                   it had and how many the model flagged. A day is screened again only when
                   its count of accepted readings changed (a late reading is never left
                   unscreened).
``anomaly_flags``  each reading the model rejected with ``flagged_by_anomaly_model``: its score
                   and the model version.
``estimates``      each filled interval: its lower-quantile self-consumed estimate [Wh], the
                   quantile, the confidence and the estimator's version.

A flagged reading counts again only when the registry authority releases it on the ledger
(``ReleaseReading``, kept in state under ``release/<device>/<interval start>/<model version>``
with the reading's envelope hash): the issuer reads that key, so the release is part of the
chain anyone can audit, and nothing kept here can make a flagged reading count.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reco2.ai.estimate import Estimate

DAY_S: Final = 86_400  # a JST day [s]

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS anomaly_flags (reading_id TEXT NOT NULL, device_id TEXT NOT "
    "NULL, interval_start_s INTEGER NOT NULL, score REAL NOT NULL, model_version TEXT NOT NULL, "
    "flagged_at_s INTEGER NOT NULL, PRIMARY KEY (reading_id, model_version))",
    "CREATE TABLE IF NOT EXISTS estimates (reading_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, "
    "interval_start_s INTEGER NOT NULL, self_consumed_wh INTEGER NOT NULL, quantile REAL NOT "
    "NULL, confidence REAL NOT NULL, model_version TEXT NOT NULL, estimated_at_s INTEGER NOT "
    "NULL)",
    "CREATE TABLE IF NOT EXISTS screened_days (device_id TEXT NOT NULL, day_start_s INTEGER "
    "NOT NULL, model_version TEXT NOT NULL, screened_at_s INTEGER NOT NULL, readings INTEGER "
    "NOT NULL, flagged INTEGER NOT NULL, PRIMARY KEY (device_id, day_start_s, model_version))",
)


@dataclass(frozen=True, slots=True)
class Flag:
    """A reading the model flagged (rejected with ``flagged_by_anomaly_model``)."""

    reading_id: str
    device_id: str
    interval_start_s: int  # [UTC s]
    score: float  # the model's probability of a fault [0, 1]
    model_version: str


@dataclass(frozen=True, slots=True)
class ScreeningRecord:
    """A device-day a model version screened: first when [UTC s], how many accepted readings it
    had then and how many the model flagged."""

    device_id: str
    day_start_s: int  # [UTC s], a JST midnight
    model_version: str
    screened_at_s: int
    readings: int
    flagged: int


class ReviewStore:
    """The tables of the module docstring in a SQLite file (created when missing)."""

    def __init__(self, path: Path | str) -> None:
        self._conn = sqlite3.connect(str(path), timeout=30.0)
        with self._conn:
            for statement in _SCHEMA:
                self._conn.execute(statement)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flags(
        self, device_id: str, start_s: int, end_s: int, model_version: str | None = None
    ) -> list[Flag]:
        """The device's flags with start_s <= interval start < end_s [UTC s], of one model
        version or all, by interval and version."""
        version = "" if model_version is None else "AND model_version = ? "
        params = (device_id, start_s, end_s) + (() if model_version is None else (model_version,))
        rows = self._conn.execute(
            "SELECT reading_id, device_id, interval_start_s, score, model_version "
            "FROM anomaly_flags WHERE device_id = ? AND interval_start_s >= ? "
            f"AND interval_start_s < ? {version}ORDER BY interval_start_s, model_version",
            params,
        ).fetchall()
        return [Flag(str(r), str(d), int(s), float(x), str(v)) for r, d, s, x, v in rows]

    def flags_of(self, reading_id: str) -> list[Flag]:
        """Every model version's flag of one reading, by version."""
        rows = self._conn.execute(
            "SELECT reading_id, device_id, interval_start_s, score, model_version "
            "FROM anomaly_flags WHERE reading_id = ? ORDER BY model_version",
            (reading_id,),
        ).fetchall()
        return [Flag(str(r), str(d), int(s), float(x), str(v)) for r, d, s, x, v in rows]

    def all_flags(self, device_id: str | None = None) -> list[Flag]:
        """Every flag, of one device or all, by device, interval and model version."""
        where, params = ("WHERE device_id = ? ", (device_id,)) if device_id else ("", ())
        rows = self._conn.execute(
            "SELECT reading_id, device_id, interval_start_s, score, model_version FROM "
            f"anomaly_flags {where}ORDER BY device_id, interval_start_s, model_version",
            params,
        ).fetchall()
        return [Flag(str(r), str(d), int(s), float(x), str(v)) for r, d, s, x, v in rows]

    def record_screened(
        self,
        device_id: str,
        day_start_s: int,
        model_version: str,
        readings: int,
        flags: list[Flag],
        at_s: int,
    ) -> None:
        """A device-day's screening and its flags, replacing an earlier screening's flags by the
        same model version (the first screening's time is kept), in one transaction."""
        with self._conn:
            self._conn.execute(
                "DELETE FROM anomaly_flags WHERE device_id = ? AND interval_start_s >= ? AND "
                "interval_start_s < ? AND model_version = ?",
                (device_id, day_start_s, day_start_s + DAY_S, model_version),
            )
            self._conn.executemany(
                "INSERT INTO anomaly_flags VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (f.reading_id, f.device_id, f.interval_start_s, f.score, f.model_version, at_s)
                    for f in flags
                ],
            )
            self._conn.execute(
                "INSERT INTO screened_days VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, "
                "day_start_s, model_version) DO UPDATE SET readings = excluded.readings, "
                "flagged = excluded.flagged",
                (device_id, day_start_s, model_version, at_s, readings, len(flags)),
            )

    def screened(
        self, device_id: str, day_start_s: int, model_version: str
    ) -> ScreeningRecord | None:
        row = self._conn.execute(
            "SELECT screened_at_s, readings, flagged FROM screened_days WHERE device_id = ? AND "
            "day_start_s = ? AND model_version = ?",
            (device_id, day_start_s, model_version),
        ).fetchone()
        if row is None:
            return None
        screened_at_s, readings, flagged = (int(value) for value in row)
        return ScreeningRecord(
            device_id, day_start_s, model_version, screened_at_s, readings, flagged
        )

    def record_estimates(self, estimates: list[Estimate], at_s: int) -> None:
        with self._conn:
            self._insert_estimates(estimates, at_s)

    def _insert_estimates(self, estimates: list[Estimate], at_s: int) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO estimates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f"{e.device_id}/{e.interval_start_s}",
                    e.device_id,
                    e.interval_start_s,
                    e.self_consumed_wh,
                    e.quantile,
                    e.confidence,
                    e.model_version,
                    at_s,
                )
                for e in estimates
            ],
        )

    def replace_estimates(
        self, device_id: str, day_start_s: int, estimates: list[Estimate], at_s: int
    ) -> None:
        """A device-day's estimates, replacing those kept for the day before, in one
        transaction (an interval filled before and measured or not filled now loses its row)."""
        for e in estimates:
            inside = day_start_s <= e.interval_start_s < day_start_s + DAY_S
            if e.device_id != device_id or not inside:
                raise ValueError(f"estimate {e.device_id}/{e.interval_start_s} is not of the day")
        with self._conn:
            self._conn.execute(
                "DELETE FROM estimates WHERE device_id = ? AND interval_start_s >= ? AND "
                "interval_start_s < ?",
                (device_id, day_start_s, day_start_s + DAY_S),
            )
            self._insert_estimates(estimates, at_s)

    def estimates(self, device_id: str, start_s: int, end_s: int) -> list[Estimate]:
        rows = self._conn.execute(
            "SELECT device_id, interval_start_s, self_consumed_wh, quantile, confidence, "
            "model_version FROM estimates WHERE device_id = ? AND interval_start_s >= ? "
            "AND interval_start_s < ? ORDER BY interval_start_s",
            (device_id, start_s, end_s),
        ).fetchall()
        return [
            Estimate(str(d), int(s), int(wh), float(q), float(c), str(v))
            for d, s, wh, q, c, v in rows
        ]
