"""The readings store: every signed reading the intake received, with its verdict.

The one module of ``reco2.mrv`` that does I/O: the rest of the package stays pure, and this
module keeps the rules of what is stored (idempotency, conflicts) in one place for both backends:
SQLite (``store_sqlite``, the default: one file, WAL, ``synchronous=FULL``) and PostgreSQL
(``store_postgres``, psycopg 3). ``open_store(url)`` picks one.

Tables (the same in both backends):

``readings``      one row per interval of a device, keyed by the reading id
                  (``readings.reading_id``: ``<device_id>/<start s>``). The key is stored as the
                  pair (device_id, interval_start_s), unique, whose index orders each device's
                  rows by time for the history queries; ``reading_id`` is kept beside it as
                  text. The row holds the interval's accepted reading, or,
                  while none was accepted, the first rejected one.
``rejections``    every other rejected submission, once per envelope hash: readings that
                  conflict with the accepted one, other rejected variants of an interval,
                  payloads that do not decode (no reading id; raw bytes kept up to
                  ``MAX_STORED_RAW_BYTES``, with their full size), and rejected rows that a
                  later accepted reading of the interval replaced.
``issued_days``   which device-days the issuer submitted, the ledger's outcome code and the
                  transaction hash (``ok`` days never issue again; refused days keep their code).

Idempotency: the same bytes again for an accepted interval are a ``duplicate`` and change
nothing; different bytes for an accepted interval are rejected with
``conflicts_with_accepted_reading`` and kept in ``rejections``; a rejected envelope sent again
is judged again (a device registered meanwhile, a future interval that has now passed) and is
stored once whatever the verdict. ``record`` writes a whole batch in one transaction.

``StoreHistory`` reads the accepted readings back as a ``validation.History``, so counters and
conflicts are checked against everything stored, across restarts. ``CachedHistory`` is the same
for the intake's single writer, faster: it keeps each device's latest accepted reading in memory
and sees the readings accepted in batches not yet committed.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

from reco2.mrv.readings import (
    DecodedReading,
    DecodeFailure,
    Reading,
    decode_reading,
    reading_hash,
    reading_id,
)
from reco2.mrv.validation import Reason, Validated

#: Raw bytes kept of a payload that does not decode [bytes]: enough to see what was sent, and a
#: bound on what an oversized payload costs to keep. Its full size and hash are kept too.
MAX_STORED_RAW_BYTES: Final = 4_096

#: A JST day is [00:00, 24:00) at UTC+9: day start [UTC s] = s - (s + JST_OFFSET_S) mod 86400.
JST_OFFSET_S: Final = 9 * 3_600
DAY_S: Final = 86_400

#: Sentinel larger than any interval start [UTC s] (the ledger's last period end is 7.3e9).
END_OF_TIME_S: Final = 1 << 62

SCHEMA_VERSION: Final = "1"


class Status(StrEnum):
    """What happened to one submitted reading."""

    accepted = "accepted"
    duplicate = "duplicate"  # the same bytes were already stored as accepted
    rejected = "rejected"


class Recorded(NamedTuple):
    """The answer for one submitted reading (``reading_id`` None when it did not decode)."""

    reading_id: str | None
    hash: bytes
    status: Status
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A row of ``readings``: the interval's accepted reading, or its first rejected one."""

    reading_id: str
    device_id: str
    interval_start_s: int
    raw: bytes
    hash: bytes
    status: Status
    reasons: tuple[str, ...]
    received_at_s: int


@dataclass(frozen=True, slots=True)
class StoredRejection:
    """A row of ``rejections`` (``raw`` cut to ``MAX_STORED_RAW_BYTES``; ``size_bytes`` whole)."""

    hash: bytes
    reading_id: str | None
    device_id: str | None
    interval_start_s: int | None
    raw: bytes
    size_bytes: int
    reasons: tuple[str, ...]
    received_at_s: int


@dataclass(frozen=True, slots=True)
class IssuedDay:
    """One device-day the issuer submitted: the ledger's outcome code and transaction hash."""

    device_id: str
    day: str  # ISO date, JST
    day_start_s: int  # [UTC s], a JST midnight
    batch_id: str
    outcome: str
    tx_hash: bytes | None
    recorded_at_s: int


@dataclass(frozen=True, slots=True)
class PendingDay:
    """A device-day with accepted readings and no ``issued_days`` row yet."""

    device_id: str
    day_start_s: int  # [UTC s], a JST midnight
    readings: int


def jst_day_start_s(instant_s: int) -> int:
    """The JST midnight [UTC s] starting the day that contains ``instant_s`` [UTC s]."""
    return instant_s - (instant_s + JST_OFFSET_S) % DAY_S


def encode_reasons(reasons: Sequence[str]) -> str:
    return json.dumps(list(reasons), separators=(",", ":"))


def decode_reasons(text: str) -> tuple[str, ...]:
    return tuple(str(reason) for reason in json.loads(text))


def decode_stored(raw: bytes) -> DecodedReading:
    """Decode an envelope the store accepted before (stored raw bytes always decode)."""
    decoded = decode_reading(raw, max_bytes=len(raw))
    if isinstance(decoded, DecodeFailure):
        raise StoreError(f"a stored reading does not decode ({decoded}): the store is damaged")
    return decoded


class StoreError(RuntimeError):
    """The store cannot be opened or written (bad URL, unreachable server, damaged data)."""


# ---- the rules of what is stored ------------------------------------------------------------

_NO_REASONS: Final = encode_reasons(())
_ACCEPTED: Final = Status.accepted
_REJECTED: Final = Status.rejected
_DUPLICATE: Final = Status.duplicate
_TEXT: Final = {_ACCEPTED: "accepted", _REJECTED: "rejected"}

#: A ``readings`` row's key: (device_id, interval_start_s), which ``reading_id`` spells.
Key = tuple[str, int]


@dataclass(slots=True)
class _Plan:
    """The writes of one ``record`` call, decided before any is made."""

    inserts: dict[Key, tuple[Any, ...]]  # new readings rows
    replaces: dict[Key, tuple[Any, ...]]  # readings rows replacing stored ones
    moves: list[Key]  # stored rejected rows to copy into rejections before they are replaced
    rejections: dict[bytes, tuple[Any, ...]]  # hash -> rejections row
    results: list[Recorded]


def _rejection_row(
    verdict: Validated, rid: str | None, reasons: tuple[str, ...], received_at_s: int
) -> tuple[Any, ...]:
    reading = verdict.reading
    return (
        verdict.hash,
        rid,
        None if reading is None else reading.device_id,
        None if reading is None else reading.interval_start_s,
        verdict.raw[:MAX_STORED_RAW_BYTES],
        len(verdict.raw),
        encode_reasons(reasons),
        received_at_s,
    )


def plan_writes(
    verdicts: Sequence[Validated],
    stored: dict[Key, tuple[bytes, Status]],
    received_at_s: int,
) -> _Plan:
    """Decide, in submission order, what each verdict does to the store.

    ``stored`` maps the keys of the batch's readings to the (hash, status) of their row in
    ``readings`` as committed; it is updated as the batch goes, so a batch may carry the same
    interval twice.
    """
    plan = _Plan({}, {}, [], {}, [])
    conflict = Reason.conflicts_with_accepted_reading.value
    for verdict in verdicts:
        reading = verdict.reading
        hash_ = verdict.hash
        if reading is None:  # did not decode
            plan.rejections.setdefault(
                hash_, _rejection_row(verdict, None, verdict.reasons, received_at_s)
            )
            plan.results.append(Recorded(None, hash_, _REJECTED, verdict.reasons))
            continue
        key = (reading.device_id, reading.interval_start_s)
        rid = reading_id(*key)
        current = stored.get(key)
        if current is not None and current[1] is _ACCEPTED:
            if current[0] == hash_:
                plan.results.append(Recorded(rid, hash_, _DUPLICATE, ()))
                continue
            reasons = (
                verdict.reasons if conflict in verdict.reasons else (*verdict.reasons, conflict)
            )
            plan.rejections.setdefault(hash_, _rejection_row(verdict, rid, reasons, received_at_s))
            plan.results.append(Recorded(rid, hash_, _REJECTED, reasons))
            continue
        if verdict.rejections:
            status, reasons, text = (
                _REJECTED,
                verdict.reasons,
                encode_reasons(verdict.reasons),
            )
        else:
            status, reasons, text = _ACCEPTED, (), _NO_REASONS
        row = (rid, *key, verdict.raw, hash_, _TEXT[status], text, received_at_s)
        if current is None:
            plan.inserts[key] = row
        elif status is _ACCEPTED or current[0] == hash_:
            # An accepted reading replaces the interval's rejected row (kept in rejections); the
            # same rejected bytes again keep their row with the latest verdict's reasons.
            if status is _ACCEPTED and current[0] != hash_:
                _keep_replaced(plan, key, current[0])
            if key in plan.inserts:
                plan.inserts[key] = row
            else:
                plan.replaces[key] = row
        else:  # another rejected variant of an interval with a rejected row
            plan.rejections.setdefault(hash_, _rejection_row(verdict, rid, reasons, received_at_s))
            plan.results.append(Recorded(rid, hash_, _REJECTED, reasons))
            continue
        stored[key] = (hash_, status)
        plan.results.append(Recorded(rid, hash_, status, reasons))
    return plan


def _keep_replaced(plan: _Plan, key: Key, old_hash: bytes) -> None:
    """Keep the rejected row an accepted reading replaces: from this batch, or as stored."""
    pending = plan.inserts.get(key) or plan.replaces.get(key)
    if pending is not None and pending[4] == old_hash:
        (rid, device_id, start_s, raw, hash_, _, reasons, received) = pending
        plan.rejections.setdefault(
            hash_, (hash_, rid, device_id, start_s, raw, len(raw), reasons, received)
        )
    elif key not in plan.moves:
        plan.moves.append(key)


# ---- the interface ------------------------------------------------------------------------

READINGS_COLUMNS: Final = (
    "reading_id, device_id, interval_start_s, raw, hash, status, reasons, received_at_s"
)
REJECTIONS_COLUMNS: Final = (
    "hash, reading_id, device_id, interval_start_s, raw, size_bytes, reasons, received_at_s"
)
ISSUED_COLUMNS: Final = "device_id, day, day_start_s, batch_id, outcome, tx_hash, recorded_at_s"


#: Devices whose latest stored interval ``ReadingsStore`` keeps (about 100 bytes each).
MAX_MARKED_DEVICES: Final = 1_000_000
#: Devices per latest-interval lookup.
LATEST_CHUNK: Final = 500


class ReadingsStore(ABC):
    """Both backends: the same tables, the same rules (``plan_writes``), plain SQL.

    A backend provides connections and a few dialect pieces; the SQL here uses ``?``
    placeholders (the PostgreSQL backend rewrites them to ``%s``). Writes go through one writer
    connection, reads through another, so the intake's validation reads while a batch commits.
    Methods are safe to call from several threads.
    """

    url: str

    def __init__(self, url: str) -> None:
        self.url = url
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        # device -> the latest interval start of any of its ``readings`` rows (-1: none), as
        # committed by this store object (see ``record``)
        self._high_s: dict[str, int] = {}

    # ---- what a backend provides ------------------------------------------------------
    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A write transaction on the writer connection, yielding a cursor-like object with
        ``execute`` and ``executemany``; commits on success, rolls back on error."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read on the reader connection (callers hold ``_read_lock``)."""

    @abstractmethod
    def _stored_rows(self, cursor: Any, keys: list[Key]) -> dict[Key, tuple[bytes, Status]]:
        """(hash, status) of the ``readings`` rows of these keys, in the write transaction."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def display_url(self) -> str:
        """The URL to show (never a password)."""
        return self.url

    # ---- writes -----------------------------------------------------------------------
    def record(self, verdicts: Sequence[Validated], received_at_s: int) -> list[Recorded]:
        """Store a batch of verdicts in one transaction; the answer for each, in order.

        The rows are durable when this returns (SQLite ``synchronous=FULL``; PostgreSQL's
        default ``synchronous_commit=on``). On an error nothing of the batch is stored.
        """
        if not verdicts:
            return []
        keys = list(
            {(v.reading.device_id, v.reading.interval_start_s) for v in verdicts if v.reading}
        )
        with self._write_lock:
            try:
                with self._transaction() as cursor:
                    plan = plan_writes(verdicts, self._rows_of(cursor, keys), received_at_s)
                    self._write_plan(cursor, plan)
            except Exception:
                # Perhaps another writer stored rows above the marks: once more, asking the
                # tables about every key (an error now is the batch's own).
                self._high_s.clear()
                with self._transaction() as cursor:
                    plan = plan_writes(verdicts, self._stored_rows(cursor, keys), received_at_s)
                    self._write_plan(cursor, plan)
            high_s = self._high_s
            for device_id, start_s in keys:
                if start_s > high_s.get(device_id, start_s):
                    high_s[device_id] = start_s
        return plan.results

    def _rows_of(self, cursor: Any, keys: list[Key]) -> dict[Key, tuple[bytes, Status]]:
        """``_stored_rows`` of the keys that may have a row.

        Meters report in time order, so nearly every reading is for an interval after the
        device's latest row: such keys cannot have one and need no lookup (it was a third of
        the cost of storing a reading). The latest start per device is asked once per device
        and then kept up to date by ``record``. Should another process write the same tables,
        a key it stored above the mark fails this batch's insert on the unique key: nothing is
        stored, the marks are dropped and ``record`` writes the batch again asking the tables
        about every key."""
        high_s = self._high_s
        if len(high_s) > MAX_MARKED_DEVICES:
            high_s.clear()
        unknown = sorted({device_id for device_id, _ in keys if device_id not in high_s})
        for chunk in chunks(unknown, LATEST_CHUNK):
            found = self._latest_starts(cursor, chunk)
            for device_id in chunk:
                high_s[device_id] = found.get(device_id, -1)
        maybe = [key for key in keys if key[1] <= high_s[key[0]]]
        return self._stored_rows(cursor, maybe) if maybe else {}

    def _latest_starts(self, cursor: Any, device_ids: Sequence[str]) -> dict[str, int]:
        """For each device with ``readings`` rows, a start at or after its latest row's."""
        marks = ", ".join(["?"] * len(device_ids))
        return {
            str(device_id): int(start_s)
            for device_id, start_s in cursor.execute(
                "SELECT device_id, MAX(interval_start_s) FROM readings "
                f"WHERE device_id IN ({marks}) GROUP BY device_id",
                list(device_ids),
            ).fetchall()
        }

    def _write_plan(self, cursor: Any, plan: _Plan) -> None:
        if plan.moves:
            cursor.executemany(
                f"INSERT INTO rejections ({REJECTIONS_COLUMNS}) "
                "SELECT hash, reading_id, device_id, interval_start_s, raw, "
                "LENGTH(raw), reasons, received_at_s FROM readings "
                "WHERE device_id = ? AND interval_start_s = ? ON CONFLICT DO NOTHING",
                plan.moves,
            )
        if plan.replaces:
            cursor.executemany(
                "UPDATE readings SET raw = ?, hash = ?, status = ?, reasons = ?, "
                "received_at_s = ? WHERE device_id = ? AND interval_start_s = ?",
                [(*row[3:], row[1], row[2]) for row in plan.replaces.values()],
            )
        if plan.inserts:
            self._insert_readings(cursor, list(plan.inserts.values()))
        if plan.rejections:
            cursor.executemany(
                f"INSERT INTO rejections ({REJECTIONS_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                list(plan.rejections.values()),
            )

    def _insert_readings(self, cursor: Any, rows: list[tuple[Any, ...]]) -> None:
        """Insert new ``readings`` rows (a backend may do it in a faster form)."""
        cursor.executemany(
            f"INSERT INTO readings ({READINGS_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
        )

    def record_issued(self, day: IssuedDay) -> None:
        """Record (or overwrite) the outcome of one device-day's issuance."""
        with self._write_lock, self._transaction() as cursor:
            cursor.execute(
                "DELETE FROM issued_days WHERE device_id = ? AND day_start_s = ?",
                (day.device_id, day.day_start_s),
            )
            cursor.execute(
                f"INSERT INTO issued_days ({ISSUED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    day.device_id,
                    day.day,
                    day.day_start_s,
                    day.batch_id,
                    day.outcome,
                    day.tx_hash,
                    day.recorded_at_s,
                ),
            )

    # ---- reads ------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            return self._query(sql, params)

    def reading(self, reading_id: str) -> StoredReading | None:
        """The ``readings`` row of an interval (``<device_id>/<start s>``)."""
        device_id, _, start = reading_id.rpartition("/")
        if not device_id or not start.lstrip("-").isdigit():
            return None
        found = self._rows(
            f"SELECT {READINGS_COLUMNS} FROM readings WHERE device_id = ? AND interval_start_s = ?",
            (device_id, int(start)),
        )
        return _stored_reading(found[0]) if found else None

    def readings(self, device_id: str | None = None) -> list[StoredReading]:
        """``readings`` rows, of one device or all, by device and interval."""
        where, params = (
            ("WHERE device_id = ? ", (device_id,)) if device_id is not None else ("", ())
        )
        rows = self._rows(
            f"SELECT {READINGS_COLUMNS} FROM readings {where}ORDER BY device_id, interval_start_s",
            params,
        )
        return [_stored_reading(row) for row in rows]

    def find(self, raw: bytes) -> StoredReading | StoredRejection | None:
        """Where these envelope bytes are stored, if anywhere: the interval's row in
        ``readings`` when it holds exactly these bytes, else their row in ``rejections``."""
        decoded = decode_reading(raw)
        if not isinstance(decoded, DecodeFailure):
            row = self.reading(
                reading_id(decoded.reading.device_id, decoded.reading.interval_start_s)
            )
            if row is not None and row.raw == raw:
                return row
        rejected = self._rows(
            f"SELECT {REJECTIONS_COLUMNS} FROM rejections WHERE hash = ?", (reading_hash(raw),)
        )
        return _stored_rejection(rejected[0]) if rejected else None

    def rejections(self, reading_id: str | None = None) -> list[StoredRejection]:
        """``rejections`` rows, of one interval or all, in the order received."""
        where, params = ("WHERE reading_id = ? ", (reading_id,)) if reading_id else ("", ())
        rows = self._rows(
            f"SELECT {REJECTIONS_COLUMNS} FROM rejections {where}ORDER BY received_at_s, hash",
            params,
        )
        return [_stored_rejection(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Rows per status of ``readings``, and of ``rejections`` and ``issued_days``."""
        counts = {"accepted": 0, "rejected": 0}
        for status, count in self._rows("SELECT status, COUNT(*) FROM readings GROUP BY status"):
            counts[str(status)] = int(count)
        counts["rejections"] = int(self._rows("SELECT COUNT(*) FROM rejections")[0][0])
        counts["issued_days"] = int(self._rows("SELECT COUNT(*) FROM issued_days")[0][0])
        return counts

    def accepted_readings(self, device_id: str, start_s: int, end_s: int) -> list[Reading]:
        """The device's accepted readings with start_s <= interval start < end_s, in order."""
        rows = self._rows(
            "SELECT raw FROM readings WHERE device_id = ? AND status = 'accepted' "
            "AND interval_start_s >= ? AND interval_start_s < ? ORDER BY interval_start_s",
            (device_id, start_s, end_s),
        )
        return [decode_stored(bytes(row[0])).reading for row in rows]

    def pending_days(self, until_s: int) -> list[PendingDay]:
        """Device-days ending at or before ``until_s`` [UTC s] with accepted readings and no
        ``issued_days`` row, by device and day."""
        day = f"(interval_start_s - (interval_start_s + {JST_OFFSET_S}) % {DAY_S})"
        rows = self._rows(
            f"SELECT r.device_id, r.day_start_s, r.n FROM ("
            f"SELECT device_id, {day} AS day_start_s, COUNT(*) AS n FROM readings "
            f"WHERE status = 'accepted' AND interval_start_s < ? "
            f"GROUP BY device_id, {day}) r "
            "WHERE r.day_start_s + ? <= ? AND NOT EXISTS (SELECT 1 FROM issued_days i "
            "WHERE i.device_id = r.device_id AND i.day_start_s = r.day_start_s) "
            "ORDER BY r.device_id, r.day_start_s",
            (until_s, DAY_S, until_s),
        )
        return [PendingDay(str(d), int(s), int(n)) for d, s, n in rows]

    def issued_days(self, device_id: str | None = None) -> list[IssuedDay]:
        where, params = (
            ("WHERE device_id = ? ", (device_id,)) if device_id is not None else ("", ())
        )
        rows = self._rows(
            f"SELECT {ISSUED_COLUMNS} FROM issued_days {where}ORDER BY device_id, day_start_s",
            params,
        )
        return [
            IssuedDay(
                str(d), str(day), int(s), str(b), str(o), None if h is None else bytes(h), int(r)
            )
            for d, day, s, b, o, h, r in rows
        ]

    def forget_refused(self) -> int:
        """Drop the ``issued_days`` rows whose outcome is not ``ok`` (to try those days again);
        returns how many."""
        with self._write_lock, self._transaction() as cursor:
            return int(cursor.execute("DELETE FROM issued_days WHERE outcome <> 'ok'").rowcount)

    # ---- accepted history -------------------------------------------------------------
    def _accepted(self, sql: str, params: Sequence[Any]) -> Reading | None:
        found = self._rows(sql, params)
        return decode_stored(bytes(found[0][0])).reading if found else None

    def previous_accepted(self, device_id: str, interval_start_s: int) -> Reading | None:
        return self._accepted(
            "SELECT raw FROM readings WHERE device_id = ? AND status = 'accepted' "
            "AND interval_start_s < ? ORDER BY interval_start_s DESC LIMIT 1",
            (device_id, interval_start_s),
        )

    def following_accepted(self, device_id: str, interval_start_s: int) -> Reading | None:
        return self._accepted(
            "SELECT raw FROM readings WHERE device_id = ? AND status = 'accepted' "
            "AND interval_start_s > ? ORDER BY interval_start_s LIMIT 1",
            (device_id, interval_start_s),
        )

    def accepted_at(self, device_id: str, interval_start_s: int) -> Reading | None:
        return self._accepted(
            "SELECT raw FROM readings WHERE device_id = ? AND status = 'accepted' "
            "AND interval_start_s = ?",
            (device_id, interval_start_s),
        )

    def history(self) -> StoreHistory:
        return StoreHistory(self)

    def __enter__(self) -> ReadingsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stored_reading(row: tuple[Any, ...]) -> StoredReading:
    rid, device_id, start_s, raw, hash_, status, reasons, received = row
    return StoredReading(
        str(rid),
        str(device_id),
        int(start_s),
        bytes(raw),
        bytes(hash_),
        Status(status),
        decode_reasons(reasons),
        int(received),
    )


def _stored_rejection(row: tuple[Any, ...]) -> StoredRejection:
    hash_, rid, device_id, start_s, raw, size, reasons, received = row
    return StoredRejection(
        bytes(hash_),
        None if rid is None else str(rid),
        None if device_id is None else str(device_id),
        None if start_s is None else int(start_s),
        bytes(raw),
        int(size),
        decode_reasons(reasons),
        int(received),
    )


# ---- histories ------------------------------------------------------------------------------


class StoreHistory:
    """``validation.History`` over the accepted readings of a store (one query per question)."""

    def __init__(self, store: ReadingsStore) -> None:
        self.store = store

    def previous(self, device_id: str, interval_start_s: int) -> Reading | None:
        return self.store.previous_accepted(device_id, interval_start_s)

    def following(self, device_id: str, interval_start_s: int) -> Reading | None:
        return self.store.following_accepted(device_id, interval_start_s)

    def at(self, device_id: str, interval_start_s: int) -> Reading | None:
        return self.store.accepted_at(device_id, interval_start_s)


_UNKNOWN: Final = object()

#: Devices whose latest accepted reading ``CachedHistory`` keeps (about 300 bytes each).
CACHED_DEVICES: Final = 1_000_000


class CachedHistory:
    """``validation.History`` for the intake's single writer: the store, plus in memory each
    device's latest accepted reading and the readings accepted but not yet committed.

    Readings mostly arrive in order, each after the device's latest: then ``previous`` is the
    cached latest reading and ``following`` and ``at`` are None, with no query at all. A reading
    at or before the latest asks the store and the not-yet-committed readings.

    The validator calls ``add`` for each reading it accepts, tagged with its batch and the
    ``generation`` it read when the batch began; the writer calls ``committed(batch)`` once the
    batch is durable and ``reset()`` when a write failed (the cache may then describe readings
    that were never stored). ``reset`` starts a new generation: ``add`` ignores readings of an
    older one, and the writer must drop batches validated under one.
    """

    def __init__(self, store: ReadingsStore, max_devices: int = CACHED_DEVICES) -> None:
        self.store = store
        self.max_devices = max_devices
        self.generation = 0
        self._lock = threading.Lock()
        # device -> its latest accepted reading (committed or pending), None when it has none
        self._latest: dict[str, Reading | None] = {}
        # device -> interval start -> reading, accepted but not yet committed
        self._pending: dict[str, dict[int, Reading]] = {}
        # batch -> the (device, interval start) it added to _pending
        self._batches: dict[int, list[tuple[str, int]]] = {}

    def _latest_of(self, device_id: str) -> Reading | None:
        latest = self._latest.get(device_id, _UNKNOWN)  # a dict read is atomic: no lock
        if latest is not _UNKNOWN:
            return latest  # type: ignore[return-value]
        loaded = self.store.previous_accepted(device_id, END_OF_TIME_S)
        with self._lock:
            if device_id in self._latest:  # added meanwhile
                return self._latest[device_id]
            if len(self._latest) >= self.max_devices:
                self._evict()
            self._latest[device_id] = loaded
            return loaded

    def _evict(self) -> None:
        """Forget the latest readings of devices with nothing pending (under the lock)."""
        self._latest = {d: r for d, r in self._latest.items() if d in self._pending}

    def _pending_of(self, device_id: str) -> list[Reading]:
        with self._lock:
            return list(self._pending.get(device_id, {}).values())

    def previous(self, device_id: str, interval_start_s: int) -> Reading | None:
        latest = self._latest_of(device_id)
        if latest is None or interval_start_s > latest.interval_start_s:
            return latest
        candidates = [
            r for r in self._pending_of(device_id) if r.interval_start_s < interval_start_s
        ]
        stored = self.store.previous_accepted(device_id, interval_start_s)
        if stored is not None:
            candidates.append(stored)
        return max(candidates, key=_start, default=None)

    def following(self, device_id: str, interval_start_s: int) -> Reading | None:
        latest = self._latest_of(device_id)
        if latest is None or interval_start_s >= latest.interval_start_s:
            return None
        candidates = [
            r for r in self._pending_of(device_id) if r.interval_start_s > interval_start_s
        ]
        stored = self.store.following_accepted(device_id, interval_start_s)
        if stored is not None:
            candidates.append(stored)
        return min(candidates, key=_start, default=None)

    def at(self, device_id: str, interval_start_s: int) -> Reading | None:
        latest = self._latest_of(device_id)
        if latest is None or interval_start_s > latest.interval_start_s:
            return None
        if interval_start_s == latest.interval_start_s:
            return latest
        with self._lock:
            pending = self._pending.get(device_id, {}).get(interval_start_s)
        if pending is not None:
            return pending
        return self.store.accepted_at(device_id, interval_start_s)

    def add(self, reading: Reading, batch: int, generation: int) -> None:
        """A reading validation accepted, to be committed with ``batch``."""
        device_id = reading.device_id
        start_s = reading.interval_start_s
        latest = self._latest.get(device_id, _UNKNOWN)
        if latest is _UNKNOWN:
            latest = self._latest_of(device_id)
        with self._lock:
            if generation != self.generation:
                return
            by_start = self._pending.get(device_id)
            if by_start is None:
                by_start = self._pending[device_id] = {}
            if start_s not in by_start:
                by_start[start_s] = reading
                self._batches.setdefault(batch, []).append((device_id, start_s))
            if latest is None or start_s > latest.interval_start_s:  # type: ignore[attr-defined]
                self._latest[device_id] = reading

    def committed(self, batch: int) -> None:
        """The batch is durable: its readings are in the store now."""
        with self._lock:
            for device_id, start_s in self._batches.pop(batch, ()):
                by_start = self._pending.get(device_id)
                if by_start is not None:
                    by_start.pop(start_s, None)
                    if not by_start:
                        del self._pending[device_id]

    def reset(self) -> None:
        """Forget everything (a write failed): the next questions go to the store."""
        with self._lock:
            self.generation += 1
            self._latest.clear()
            self._pending.clear()
            self._batches.clear()


def _start(reading: Reading) -> int:
    return reading.interval_start_s


# ---- opening a store ------------------------------------------------------------------------


def sqlite_path_of(url: str) -> Path | None:
    """The file of a SQLite store URL (``sqlite:///abs/path``, ``sqlite://rel/path``) or of a
    plain path; None for another scheme."""
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if not path:
            raise StoreError(f"{url!r} names no file")
        return Path(path)
    if "://" in url:
        return None
    return Path(url)


def open_store(url: str) -> ReadingsStore:
    """Open (creating the tables if needed) the store at ``url``: ``sqlite:///path/file``,
    a plain file path, or ``postgresql://user@host:port/db`` (``postgres://`` too)."""
    if url.startswith(("postgresql://", "postgres://")):
        from reco2.mrv.store_postgres import PostgresStore

        return PostgresStore(url)
    path = sqlite_path_of(url)
    if path is None:
        raise StoreError(f"unknown store URL {url!r}: use sqlite:///path or postgresql://...")
    from reco2.mrv.store_sqlite import SqliteStore

    return SqliteStore(path)


T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
