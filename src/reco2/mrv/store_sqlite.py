"""The readings store in one SQLite file (the default): WAL, ``synchronous=FULL``.

Rows of ``readings`` are stored in arrival order (a rowid table) and found by the unique index
on (device_id, interval_start_s). Readings arrive roughly in time order across the whole fleet,
so each batch appends to the end of the table instead of touching one page per device, as a
table clustered by device would: with 2,000 devices that is 9 instead of 24 us of CPU per row.

With WAL and full sync a committed batch survives a kill or a power cut: ``COMMIT`` returns once
the WAL is on disk. Two connections: the writer (``BEGIN IMMEDIATE`` ... ``COMMIT``, one
transaction per batch) and a reader, so validation can read the history while a batch commits.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from reco2.mrv.store import (
    SCHEMA_VERSION,
    Key,
    ReadingsStore,
    Status,
    StoreError,
    chunks,
)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readings (
    reading_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    interval_start_s INTEGER NOT NULL,
    raw BLOB NOT NULL,
    hash BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reasons TEXT NOT NULL,
    received_at_s INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS readings_key ON readings (device_id, interval_start_s);
CREATE TABLE IF NOT EXISTS rejections (
    hash BLOB PRIMARY KEY,
    reading_id TEXT,
    device_id TEXT,
    interval_start_s INTEGER,
    raw BLOB NOT NULL,
    size_bytes INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    received_at_s INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rejections_by_reading ON rejections (reading_id);
CREATE TABLE IF NOT EXISTS issued_days (
    device_id TEXT NOT NULL,
    day TEXT NOT NULL,
    day_start_s INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    tx_hash BLOB,
    recorded_at_s INTEGER NOT NULL,
    PRIMARY KEY (device_id, day_start_s)
) WITHOUT ROWID;
"""

#: Keys per lookup statement (two variables each; SQLite allows 32,766 since 3.32).
LOOKUP_CHUNK: Final = 500
BUSY_TIMEOUT_S: Final = 30.0


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class SqliteStore(ReadingsStore):
    """Readings in one SQLite file (created with its tables when missing)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"sqlite://{path}")
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = _connect(path)
            self._writer.executescript(SCHEMA)
            self._writer.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT DO NOTHING",
                (SCHEMA_VERSION,),
            )
            self._reader = _connect(path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the readings store {path}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._reader.execute(sql, params).fetchall()]

    def _stored_rows(self, cursor: Any, keys: list[Key]) -> dict[Key, tuple[bytes, Status]]:
        # A join against a VALUES list probes the primary key once per key (a row-value IN
        # list would scan the table).
        stored: dict[Key, tuple[bytes, Status]] = {}
        for chunk in chunks(keys, LOOKUP_CHUNK):
            values = ", ".join(["(?, ?)"] * len(chunk))
            rows = cursor.execute(
                "SELECT r.device_id, r.interval_start_s, r.hash, r.status "
                f"FROM (VALUES {values}) AS k JOIN readings r "
                "ON r.device_id = k.column1 AND r.interval_start_s = k.column2",
                [part for key in chunk for part in key],
            )
            for device_id, start_s, hash_, status in rows:
                stored[(str(device_id), int(start_s))] = (bytes(hash_), Status(status))
        return stored

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()
