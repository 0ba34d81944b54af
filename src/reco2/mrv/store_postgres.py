"""The readings store in PostgreSQL (psycopg 3), for an aggregator running several services.

Each session sets ``synchronous_commit = on``, so ``COMMIT`` returns once the batch's WAL is
flushed on the server: a committed batch survives a crash of the intake or of the server.
``executemany`` runs in libpq's pipeline mode (psycopg >= 3.1 with libpq >= 14: see psycopg's
"Pipeline mode support"), so a batch of inserts costs one round trip, not one per row. Two
connections, the writer and a reader, as in the SQLite backend; a broken connection is opened
again on the next call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Final

import psycopg

from reco2.mrv.store import SCHEMA_VERSION, Key, ReadingsStore, Status, StoreError

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS readings (
    reading_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    interval_start_s BIGINT NOT NULL,
    raw BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reasons TEXT NOT NULL,
    received_at_s BIGINT NOT NULL,
    PRIMARY KEY (device_id, interval_start_s)
);
CREATE TABLE IF NOT EXISTS rejections (
    hash BYTEA PRIMARY KEY,
    reading_id TEXT,
    device_id TEXT,
    interval_start_s BIGINT,
    raw BYTEA NOT NULL,
    size_bytes BIGINT NOT NULL,
    reasons TEXT NOT NULL,
    received_at_s BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_by_reading ON rejections (reading_id);
CREATE TABLE IF NOT EXISTS issued_days (
    device_id TEXT NOT NULL,
    day TEXT NOT NULL,
    day_start_s BIGINT NOT NULL,
    batch_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    tx_hash BYTEA,
    recorded_at_s BIGINT NOT NULL,
    PRIMARY KEY (device_id, day_start_s)
);
"""

#: Key of the advisory lock that serialises schema creation between processes.
SCHEMA_LOCK: Final = 0x7265636F32  # "reco2"
CONNECT_TIMEOUT_S: Final = 10

_converted: dict[str, str] = {}


def _sql(query: str) -> str:
    """The store's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    converted = _converted.get(query)
    if converted is None:
        converted = _converted[query] = query.replace("%", "%%").replace("?", "%s")
    return converted


class _Cursor:
    """A psycopg cursor that takes the store's SQL dialect."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, query: str, params: Sequence[Any] = ()) -> _Cursor:
        self._cursor.execute(_sql(query), params)
        return self

    def executemany(self, query: str, params: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(_sql(query), params)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class PostgresStore(ReadingsStore):
    """Readings in a PostgreSQL database (tables created when missing)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._writer = self._connect()
        with self._writer.transaction():
            self._writer.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            self._writer.execute(SCHEMA)
            self._writer.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', %s) ON CONFLICT DO NOTHING",
                (SCHEMA_VERSION,),
            )
        self._reader = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the readings store {self.display_url}: {exc}"
            ) from exc
        conn.execute("SET synchronous_commit = on")
        return conn

    @property
    def display_url(self) -> str:
        """The URL without its password."""
        scheme, _, rest = self.url.partition("://")
        credentials, at, host = rest.rpartition("@")
        if not at:
            return self.url
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"

    def _fresh(self, conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
        if conn.closed or conn.broken:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            return self._connect()
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Cursor]:
        self._writer = self._fresh(self._writer)
        with self._writer.transaction(), self._writer.cursor() as cursor:
            yield _Cursor(cursor)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._reader = self._fresh(self._reader)
        with self._reader.cursor() as cursor:
            cursor.execute(_sql(sql), params)
            return cursor.fetchall()

    def _stored_rows(self, cursor: Any, keys: list[Key]) -> dict[Key, tuple[bytes, Status]]:
        rows = cursor.execute(
            "SELECT r.device_id, r.interval_start_s, r.hash, r.status "
            "FROM unnest(?::text[], ?::bigint[]) AS k (device_id, interval_start_s) "
            "JOIN readings r USING (device_id, interval_start_s)",
            ([key[0] for key in keys], [key[1] for key in keys]),
        ).fetchall()
        return {(str(d), int(s)): (bytes(h), Status(status)) for d, s, h, status in rows}

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()
