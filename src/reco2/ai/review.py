"""Flags, estimates and reviewer releases, kept beside the readings store (SQLite).

The readings store (``reco2.mrv.store``) keeps every reading with its verdict; a reading the
``anomaly_model`` step rejected is stored there as rejected with ``flagged_by_anomaly_model``.
This module keeps what the model and the reviewers add, keyed by the reading id, in tables of
their own (the same SQLite file as the readings store works, or another):

``anomaly_flags``      the model's score and version for each flagged reading.
``estimates``          each filled interval: its lower-quantile self-consumed estimate [Wh], the
                       quantile, the confidence and the estimator's version.
``reviewer_releases``  a reviewer's signed release of a flagged reading: from then on it counts
                       as measured. The reviewer signs (Ed25519, domain ``RELEASE_DOMAIN``) the
                       reading id, the reading's envelope hash and the model version that
                       flagged it, so a release cannot be moved to other bytes or another flag.

A release is valid only when its signer is a participant of the ledger with the authority or
aggregator role whose registered public key made the signature (``verify_release``).

Why not on the ledger: releasing a flagged reading is, by the design, a ledger event. The ledger
has no such transaction kind yet; adding one (``ReleaseReading``: reading id, reading hash, model
version, signed by an authority or the device's aggregator, recorded in state under the reading
id so that the issuer can prove it) is a ledger change left to its owners. Until then the
release is kept and verified here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import nacl.bindings
import nacl.exceptions

from reco2.ai.estimate import Estimate
from reco2.ledger.types import Participant, Role

RELEASE_DOMAIN: Final = b"reco2/reading-release/v1\n"
SIGNATURE_BYTES: Final = 64
REVIEWER_ROLES: Final = frozenset({Role.authority, Role.aggregator})

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS anomaly_flags (reading_id TEXT PRIMARY KEY, device_id TEXT NOT "
    "NULL, interval_start_s INTEGER NOT NULL, score REAL NOT NULL, model_version TEXT NOT NULL, "
    "flagged_at_s INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS estimates (reading_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, "
    "interval_start_s INTEGER NOT NULL, self_consumed_wh INTEGER NOT NULL, quantile REAL NOT "
    "NULL, confidence REAL NOT NULL, model_version TEXT NOT NULL, estimated_at_s INTEGER NOT "
    "NULL)",
    "CREATE TABLE IF NOT EXISTS reviewer_releases (reading_id TEXT PRIMARY KEY, reviewer_id TEXT "
    "NOT NULL, reading_hash BLOB NOT NULL, model_version TEXT NOT NULL, signature BLOB NOT NULL, "
    "released_at_s INTEGER NOT NULL)",
)


class ReleaseBody(msgspec.Struct, array_like=True, frozen=True):
    """What a reviewer signs."""

    reading_id: str
    reading_hash: bytes
    model_version: str


@dataclass(frozen=True, slots=True)
class Flag:
    reading_id: str
    device_id: str
    interval_start_s: int
    score: float
    model_version: str


@dataclass(frozen=True, slots=True)
class Release:
    reading_id: str
    reviewer_id: str
    reading_hash: bytes
    model_version: str
    signature: bytes

    @property
    def body(self) -> bytes:
        return msgspec.msgpack.encode(
            ReleaseBody(self.reading_id, self.reading_hash, self.model_version)
        )


def sign_release(
    reading_id: str, reading_hash: bytes, model_version: str, reviewer_id: str, seed: bytes
) -> Release:
    """A reviewer's release of a flagged reading, signed with the reviewer's 32-byte key seed."""
    _, secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
    unsigned = Release(reading_id, reviewer_id, reading_hash, model_version, b"")
    signed = nacl.bindings.crypto_sign(RELEASE_DOMAIN + unsigned.body, secret_key)
    return Release(reading_id, reviewer_id, reading_hash, model_version, signed[:SIGNATURE_BYTES])


def verify_release(release: Release, participant_of: Callable[[str], Participant | None]) -> str:
    """``"ok"`` or why the release does not count: ``unknown_reviewer``,
    ``reviewer_not_allowed`` (neither authority nor aggregator), ``bad_signature``."""
    reviewer = participant_of(release.reviewer_id)
    if reviewer is None:
        return "unknown_reviewer"
    if not REVIEWER_ROLES & set(reviewer.roles):
        return "reviewer_not_allowed"
    if len(release.signature) != SIGNATURE_BYTES:
        return "bad_signature"
    try:
        nacl.bindings.crypto_sign_open(
            release.signature + RELEASE_DOMAIN + release.body, reviewer.public_key
        )
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return "bad_signature"
    return "ok"


class ReviewStore:
    """The three tables in a SQLite file (created when missing)."""

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

    def record_flags(self, flags: list[Flag], at_s: int) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO anomaly_flags VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (f.reading_id, f.device_id, f.interval_start_s, f.score, f.model_version, at_s)
                    for f in flags
                ],
            )

    def flags(self, device_id: str, start_s: int, end_s: int) -> list[Flag]:
        rows = self._conn.execute(
            "SELECT reading_id, device_id, interval_start_s, score, model_version "
            "FROM anomaly_flags WHERE device_id = ? AND interval_start_s >= ? "
            "AND interval_start_s < ? ORDER BY interval_start_s",
            (device_id, start_s, end_s),
        ).fetchall()
        return [Flag(str(r), str(d), int(s), float(x), str(v)) for r, d, s, x, v in rows]

    def record_estimates(self, estimates: list[Estimate], at_s: int) -> None:
        with self._conn:
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

    def record_release(
        self,
        release: Release,
        participant_of: Callable[[str], Participant | None],
        at_s: int,
    ) -> str:
        """Keep a release when ``verify_release`` accepts it; returns its outcome code."""
        outcome = verify_release(release, participant_of)
        if outcome != "ok":
            return outcome
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO reviewer_releases VALUES (?, ?, ?, ?, ?, ?)",
                (
                    release.reading_id,
                    release.reviewer_id,
                    release.reading_hash,
                    release.model_version,
                    release.signature,
                    at_s,
                ),
            )
        return outcome

    def releases(self) -> list[Release]:
        rows = self._conn.execute(
            "SELECT reading_id, reviewer_id, reading_hash, model_version, signature "
            "FROM reviewer_releases ORDER BY reading_id"
        ).fetchall()
        return [Release(str(r), str(p), bytes(h), str(v), bytes(s)) for r, p, h, v, s in rows]
