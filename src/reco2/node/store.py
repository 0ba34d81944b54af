"""SQLite storage of the embedded chain (one file, WAL, full sync).

Tables:
    meta(key, value)                      genesis JSON and the chain id
    blocks(height, hash, header)          canonical header bytes and their SHA-256
    txs(height, idx, hash, tx, result)    transactions and their canonical results
    state(key, value)                     the committed state (what the state root commits to)
    events(tag, height, idx)              which transactions touched which entity (history index)

A block is written in one SQLite transaction (group commit), so after a crash either the whole
block, its results and its state changes are on disk, or none of them are.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reco2.ledger.genesis import Genesis, from_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    tx BLOB NOT NULL, result BLOB NOT NULL, PRIMARY KEY (height, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS txs_by_hash ON txs (hash);
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    tag TEXT NOT NULL, height INTEGER NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (tag, height, idx)) WITHOUT ROWID;
"""

DB_FILE = "ledger.sqlite"


@dataclass(frozen=True, slots=True)
class StoredTx:
    height: int
    index: int
    hash: bytes
    raw: bytes
    result: bytes


@dataclass(frozen=True, slots=True)
class StoredBlock:
    height: int
    hash: bytes
    header: bytes
    txs: list[StoredTx]


@dataclass(frozen=True, slots=True)
class BlockWrite:
    height: int
    hash: bytes
    header: bytes
    txs: Sequence[tuple[bytes, bytes, bytes]]  # (hash, raw, encoded result)
    changes: Mapping[bytes, bytes | None]
    events: Sequence[tuple[str, int]]  # (tag, tx index)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class Store:
    """One writer (the node's block thread); reads from any thread under a lock."""

    def __init__(self, data_dir: Path, *, readonly: bool = False) -> None:
        self.path = data_dir / DB_FILE
        if readonly and not self.path.exists():
            raise FileNotFoundError(self.path)
        self._conn = connect(self.path, readonly=readonly)
        self._lock = threading.Lock()
        if not readonly:
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- writes -----------------------------------------------------------------------
    def write_genesis(self, genesis_json: bytes, block: BlockWrite) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('genesis', ?)", (genesis_json,)
                )
                self._write(block)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def write_block(self, block: BlockWrite) -> None:
        """Write a block, its transactions, results, events and state changes atomically."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._write(block)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _write(self, block: BlockWrite) -> None:
        conn = self._conn
        conn.execute(
            "INSERT INTO blocks (height, hash, header) VALUES (?, ?, ?)",
            (block.height, block.hash, block.header),
        )
        conn.executemany(
            "INSERT INTO txs (height, idx, hash, tx, result) VALUES (?, ?, ?, ?, ?)",
            [(block.height, i, h, raw, res) for i, (h, raw, res) in enumerate(block.txs)],
        )
        upserts = [(k, v) for k, v in block.changes.items() if v is not None]
        deletes = [(k,) for k, v in block.changes.items() if v is None]
        if upserts:
            conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", upserts)
        if deletes:
            conn.executemany("DELETE FROM state WHERE key = ?", deletes)
        if block.events:
            conn.executemany(
                "INSERT OR IGNORE INTO events (tag, height, idx) VALUES (?, ?, ?)",
                [(tag, block.height, i) for tag, i in block.events],
            )

    # ---- reads ------------------------------------------------------------------------
    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Hold one read transaction so several reads see the same committed block."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def genesis_json(self) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'genesis'").fetchone()
        return None if row is None else bytes(row[0])

    def genesis(self) -> Genesis:
        raw = self.genesis_json()
        if raw is None:
            raise LookupError(f"{self.path} has no genesis: run `reco2 init` first")
        return from_json(raw)

    def last_height(self) -> int | None:
        with self._lock:
            row = self._conn.execute("SELECT MAX(height) FROM blocks").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def header(self, height: int) -> tuple[bytes, bytes] | None:
        """(stored hash, header bytes) of a block."""
        with self._lock:
            row = self._conn.execute(
                "SELECT hash, header FROM blocks WHERE height = ?", (height,)
            ).fetchone()
        return None if row is None else (bytes(row[0]), bytes(row[1]))

    def headers(self, first: int, last: int) -> list[tuple[int, bytes, bytes]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT height, hash, header FROM blocks WHERE height BETWEEN ? AND ? "
                "ORDER BY height",
                (first, last),
            ).fetchall()
        return [(int(h), bytes(a), bytes(b)) for h, a, b in rows]

    def block_txs(self, height: int) -> list[StoredTx]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT idx, hash, tx, result FROM txs WHERE height = ? ORDER BY idx", (height,)
            ).fetchall()
        return [StoredTx(height, int(i), bytes(h), bytes(t), bytes(r)) for i, h, t, r in rows]

    def iter_blocks(self, first: int = 0) -> Iterator[StoredBlock]:
        """All blocks from ``first`` in height order, with their transactions (streamed)."""
        conn = connect(self.path, readonly=True)
        try:
            tx_rows = conn.execute(
                "SELECT height, idx, hash, tx, result FROM txs WHERE height >= ? "
                "ORDER BY height, idx",
                (first,),
            )
            pending = tx_rows.fetchone()
            for height, block_hash, header in conn.execute(
                "SELECT height, hash, header FROM blocks WHERE height >= ? ORDER BY height",
                (first,),
            ):
                txs: list[StoredTx] = []
                while pending is not None and pending[0] == height:
                    h, i, th, raw, res = pending
                    txs.append(StoredTx(int(h), int(i), bytes(th), bytes(raw), bytes(res)))
                    pending = tx_rows.fetchone()
                yield StoredBlock(int(height), bytes(block_hash), bytes(header), txs)
        finally:
            conn.close()

    def state_items(self) -> list[tuple[bytes, bytes]]:
        with self._lock:
            rows = self._conn.execute("SELECT key, value FROM state ORDER BY key").fetchall()
        return [(bytes(k), bytes(v)) for k, v in rows]

    def find_tx(self, tx_hash: bytes) -> StoredTx | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT height, idx, hash, tx, result FROM txs WHERE hash = ? "
                "ORDER BY height, idx LIMIT 1",
                (tx_hash,),
            ).fetchone()
        if row is None:
            return None
        return StoredTx(int(row[0]), int(row[1]), bytes(row[2]), bytes(row[3]), bytes(row[4]))

    def events(self, tag: str) -> list[tuple[int, int]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT height, idx FROM events WHERE tag = ? ORDER BY height, idx", (tag,)
            ).fetchall()
        return [(int(h), int(i)) for h, i in rows]

    def tx_count(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM txs").fetchone()
        return int(row[0])
