"""`reco2 issue-days`: each stored device-day of accepted readings becomes one issuance.

For every device and every complete JST day up to ``until_day`` that has accepted readings and
no row in the store's ``issued_days``, the issuer builds one ``IssueValue``
(``mrv.quantify.build_issuance``: the day's self-consumed Wh, its interval count and the Merkle
root of its readings) with batch id ``<device_id>:<YYYY-MM-DD>`` and the shipped factor table's
version, signs it as the aggregator and submits it. Each outcome is recorded in ``issued_days``
with the transaction hash: ``ok`` days never issue again, and a day the ledger refuses keeps its
outcome code (``--retry-refused`` tries those again).

Idempotent across crashes: the batch id is fixed by device and day, so a run that died between
the ledger's receipt and the store's row meets ``batch_exists`` the next time; the issuer then
reads the batch from the ledger and records the day as ``ok`` with the batch's issuing
transaction. A refusal at the ledger's door (wrong key, unknown signer, a nonce race) says
nothing about the day: it stops the run and records nothing.

With a ``gate`` (``reco2 issue-days --model``), every pending day is first screened by the
anomaly model (``reco2.ai.gate``): a flagged reading counts only when the ledger holds the
registry authority's ``ReleaseReading`` for exactly its envelope hash and the model's version
(state key ``release/<device>/<interval start>/<model version>``). A day with a flagged reading
nobody released is held for review (not issued, not recorded: the next run judges it again)
until its review window ends; then it issues without those readings, and a day left with no
measured reading is recorded with the outcome ``flagged_by_anomaly_model`` and no transaction.
Where the programme's estimation policy allows it (``reco2 issue-days --estimate-gaps``, off by
default), the gate also fills the day's intervals without a usable reading with the gap
estimator's lower-quantile estimates, and the batch counts them apart (``estimated_intervals``,
``estimated_wh``); a day left with estimates only issues them, flagged as estimated.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

import httpx
import msgspec

from reco2.ledger.calendar import jst_date, jst_midnight_s
from reco2.ledger.outcome import ENVELOPE_OUTCOMES, Outcome
from reco2.ledger.state import batch_key, decode_value, device_key, release_key
from reco2.ledger.tx import IssueValue
from reco2.ledger.types import Device, ReadingRelease, ValueBatch
from reco2.mrv.quantify import DAY_S, build_issuance
from reco2.mrv.store import IssuedDay, PendingDay, ReadingsStore
from reco2.node.client import Submitter, submit
from reco2.node.keys import KeyFile

if TYPE_CHECKING:  # the model's packages (numpy, scikit-learn) load only with --model
    from reco2.ai.gate import Gate
    from reco2.ai.screened import ScreenedDay

#: A JST day is complete, and issued, once this long after its end [s]: the last interval's
#: reading is sent when the interval ends, and a meter that was offline catches up within it.
LATE_READINGS_GRACE_S: Final = 3_600
OK: Final = Outcome.ok.value
#: The outcome recorded for a day whose every reading the anomaly model flagged and nobody
#: released within the review window: nothing to issue, no transaction.
FLAGGED: Final = "flagged_by_anomaly_model"

R = TypeVar("R")


class IssueError(RuntimeError):
    """The run cannot go on (the ledger refused the submission itself, not the day)."""


class StateReader(Protocol):
    """Committed ledger state by key (a data directory's file, or a node over HTTP)."""

    def get(self, key: bytes) -> bytes | None: ...

    def close(self) -> None: ...


class SqliteStateReader:
    """The ``state`` table of a data directory's ledger file, read-only."""

    def __init__(self, data_dir: Path) -> None:
        import sqlite3

        path = data_dir / "ledger.sqlite"
        if not path.exists():
            raise FileNotFoundError(f"{data_dir} holds no ledger: pass --node or run `reco2 init`")
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)

    def get(self, key: bytes) -> bytes | None:
        row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def close(self) -> None:
        self._conn.close()


class HttpStateReader:
    """A running node's ``GET /v1/state`` (the committed value; its proof is not checked here)."""

    def __init__(self, url: str) -> None:
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=30.0)

    def get(self, key: bytes) -> bytes | None:
        response = self._client.get("/v1/state", params={"key": key.decode()})
        response.raise_for_status()
        value = response.json()["value"]
        return None if value is None else base64.b64decode(value)

    def close(self) -> None:
        self._client.close()


def _record(reader: StateReader, key: bytes, kind: type[R]) -> R | None:
    value = reader.get(key)
    if value is None:
        return None
    try:
        record = decode_value(key, value)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    return record if isinstance(record, kind) else None


def batch_id_for(device_id: str, day_start_s: int) -> str:
    """``<device_id>:<YYYY-MM-DD>`` (JST): one batch per device-day, the same on every run."""
    return f"{device_id}:{jst_date(day_start_s)}"


def default_until_day(now_s: int) -> dt.date:
    """The last JST day that ended at least ``LATE_READINGS_GRACE_S`` before ``now_s``."""
    last_end_s = now_s - LATE_READINGS_GRACE_S
    return dt.date.fromisoformat(jst_date(last_end_s)) - dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class HeldDay:
    """A screened day waiting for a release of its flagged readings (not recorded)."""

    device_id: str
    day: str  # ISO date, JST
    withheld: tuple[str, ...]  # reading ids flagged and not released
    held_until_s: int  # [UTC s]: from then on it issues without them


@dataclass(frozen=True, slots=True)
class IssueRun:
    """What a run did: the rows it recorded, in order; with a gate, the days it held and what
    the screening decided for each recorded day (by batch id)."""

    days: list[IssuedDay]
    held: list[HeldDay] = field(default_factory=list)
    screened: dict[str, ScreenedDay] = field(default_factory=dict)

    @property
    def issued(self) -> list[IssuedDay]:
        return [day for day in self.days if day.outcome == OK]

    @property
    def refused(self) -> list[IssuedDay]:
        return [day for day in self.days if day.outcome != OK]


def pending(store: ReadingsStore, until_day: dt.date) -> list[PendingDay]:
    """The device-days a run up to ``until_day`` (inclusive, JST) would submit."""
    return store.pending_days(jst_midnight_s(until_day) + DAY_S)


def issue_days(
    store: ReadingsStore,
    state: StateReader,
    submitter: Submitter,
    key: KeyFile,
    until_day: dt.date,
    factor_version: str,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.time,
    gate: Gate | None = None,
) -> IssueRun:
    """Submit one issuance per pending device-day (see the module docstring)."""
    days = pending(store, until_day)
    recorded: list[IssuedDay] = []
    held: list[HeldDay] = []
    screened: dict[str, ScreenedDay] = {}
    devices: dict[str, Device | None] = {}
    for day in days:
        if day.device_id not in devices:
            devices[day.device_id] = _record(state, device_key(day.device_id), Device)
    if gate is not None:
        known = {i: d for i, d in devices.items() if d is not None}
        gate.screen_pending(store, known, days, int(clock()))
        gate.estimate_pending(store, known, days, int(clock()))

    def release_of(device_id: str, start_s: int, version: str) -> ReadingRelease | None:
        return _record(state, release_key(device_id, start_s, version), ReadingRelease)

    for done, day in enumerate(days):
        device = devices[day.device_id]
        batch_id = batch_id_for(day.device_id, day.day_start_s)
        action: IssueValue | None = None
        if device is None:  # accepted readings of a device the ledger does not know: a bug
            outcome, tx_hash = Outcome.unknown_device.value, None
        elif gate is None:
            readings = store.accepted_readings(
                day.device_id, day.day_start_s, day.day_start_s + DAY_S
            )
            action = build_issuance(device, batch_id, day.day_start_s, readings, factor_version)
        else:
            from reco2.ai.screened import build_screened_issuance

            decision = gate.decide(store, day.device_id, day.day_start_s, release_of, int(clock()))
            if decision.held_until_s is not None:
                held.append(
                    HeldDay(
                        day.device_id,
                        jst_date(day.day_start_s),
                        decision.day.withheld,
                        decision.held_until_s,
                    )
                )
                if progress is not None:
                    progress(done + 1, len(days))
                continue
            screened[batch_id] = decision.day
            action = build_screened_issuance(
                device, batch_id, day.day_start_s, decision.day, factor_version
            )
            if action is None:
                outcome, tx_hash = FLAGGED, None
        if action is not None:
            receipt = submit(submitter, key, action)
            outcome, tx_hash = receipt.code, receipt.tx_hash
            if outcome in ENVELOPE_OUTCOMES:
                raise IssueError(
                    f"the ledger refused the submission of {batch_id} at its door ({outcome}): "
                    f"check the key of {key.participant_id}"
                )
            if outcome == Outcome.batch_exists.value:
                batch = _record(state, batch_key(batch_id), ValueBatch)
                if (
                    batch is not None
                    and batch.device_id == day.device_id
                    and batch.period_start_s == day.day_start_s
                ):
                    outcome, tx_hash = OK, batch.issue_tx  # issued by a run that died after
        row = IssuedDay(
            day.device_id,
            jst_date(day.day_start_s),
            day.day_start_s,
            batch_id,
            outcome,
            tx_hash,
            int(clock()),
        )
        store.record_issued(row)
        recorded.append(row)
        if progress is not None:
            progress(done + 1, len(days))
    return IssueRun(recorded, held, screened)
