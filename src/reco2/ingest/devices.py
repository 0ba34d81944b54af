"""Device records for the intake, read from a ledger data directory without writing to it.

The intake runs beside a node (or without one) and reads the node's SQLite file read-only:
``state`` holds each device record under ``device/<id>`` (``reco2.ledger.state``), ``blocks``
the chain's height and ``txs`` each transaction's result, whose events name the entities it
touched (every change to a device record emits ``device/<id>``: registration, approval,
deactivation, issuance, sell rules).

Records are cached, unknown ids too. ``refresh`` (called before each batch, at most every
``refresh_interval_s``) looks at the chain height; when it moved it drops exactly the devices
that the new blocks' transactions touched, so a device registered, approved or deactivated
after the intake started is seen on the next batch after the refresh. Every
``full_refresh_s`` the whole cache is dropped as well, whatever the events say.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import msgspec

from reco2.ledger import block
from reco2.ledger.state import decode_value, device_key
from reco2.ledger.types import Device

DB_FILE: Final = "ledger.sqlite"
DEVICE_TAG: Final = "device/"
BUSY_TIMEOUT_S: Final = 30.0


class LedgerUnavailable(RuntimeError):
    """The data directory holds no ledger, or its file cannot be read."""


class LedgerDevices:
    """``device_of(id) -> Device | None`` over a ledger data directory (thread-safe)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        refresh_interval_s: float = 0.25,
        full_refresh_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = data_dir / DB_FILE
        if not self.path.exists():
            raise LedgerUnavailable(f"{data_dir} holds no ledger ({DB_FILE}): run `reco2 init`")
        try:
            self._conn = sqlite3.connect(
                f"file:{self.path}?mode=ro",
                uri=True,
                timeout=BUSY_TIMEOUT_S,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"cannot read {self.path}: {exc}") from exc
        self.refresh_interval_s = refresh_interval_s
        self.full_refresh_s = full_refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, Device | None] = {}
        self._height = self._last_height()
        now = clock()
        self._checked_at = now
        self._full_at = now

    def _last_height(self) -> int:
        row = self._conn.execute("SELECT MAX(height) FROM blocks").fetchone()
        return -1 if row is None or row[0] is None else int(row[0])

    def device_of(self, device_id: str) -> Device | None:
        """The device's current record on the ledger, None when it is not registered."""
        try:
            return self._cache[device_id]
        except KeyError:
            pass
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM state WHERE key = ?", (device_key(device_id),)
            ).fetchone()
            device: Device | None = None
            if row is not None:
                try:
                    record = decode_value(device_key(device_id), bytes(row[0]))
                except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                    record = None  # unreadable: treated as unknown (`reco2 audit` finds why)
                device = record if isinstance(record, Device) else None
            self._cache[device_id] = device
            return device

    __call__ = device_of

    def refresh(self, force: bool = False) -> None:
        """Drop the cached devices that blocks written since the last refresh touched."""
        now = self._clock()
        if not force and now - self._checked_at < self.refresh_interval_s:
            return
        with self._lock:
            self._checked_at = now
            if force or now - self._full_at >= self.full_refresh_s:
                self._full_at = now
                self._height = self._last_height()
                self._cache.clear()
                return
            height = self._last_height()
            if height == self._height:
                return
            results = self._conn.execute(
                "SELECT result FROM txs WHERE height > ? AND height <= ?", (self._height, height)
            ).fetchall()
            for (raw,) in results:
                try:
                    events = block.decode_result(bytes(raw)).events
                except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                    self._cache.clear()  # unreadable: forget everything rather than guess
                    break
                for tag in events:
                    if tag.startswith(DEVICE_TAG):
                        self._cache.pop(tag[len(DEVICE_TAG) :], None)
            self._height = height

    def close(self) -> None:
        with self._lock:
            self._conn.close()
