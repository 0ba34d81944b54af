"""The readings store: one suite, run against both backends (a SQLite file and a real
PostgreSQL server started for the session, ``tests/services.py``).

Verdicts come from the real validation pipeline over real ledger devices (``world()``: pv-1,
4.5 kW solar in Nerima, meter key ``seed_of("meter-pv-1")``), with the store's own history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.services import postgres_server_fixture, postgres_url_fixture  # noqa: F401 (fixtures)
from tests.support import Ledger, seed_of, world

from reco2.ledger.calendar import INTERVAL_S, jst_midnight_s
from reco2.mrv.readings import Reading, reading_hash, sign_reading
from reco2.mrv.store import (
    MAX_STORED_RAW_BYTES,
    CachedHistory,
    IssuedDay,
    PendingDay,
    ReadingsStore,
    Status,
    StoredReading,
    StoredRejection,
    StoreError,
    open_store,
)
from reco2.mrv.validation import Reason, Rejection, Validated, ValidationContext, validate

DAY_START_S = jst_midnight_s(dt.date(2025, 6, 1))
NOON_S = DAY_START_S + 24 * INTERVAL_S
NOW_S = DAY_START_S + 10 * 86_400
RECEIVED_S = 1_750_000_000


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return world()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'readings.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[ReadingsStore]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


def reading(
    start_s: int = NOON_S,
    generation_wh: int = 1_000,
    export_wh: int = 400,
    counter_wh: int | None = 5_000_000,
    device_id: str = "pv-1",
) -> Reading:
    export_counter = None if counter_wh is None else counter_wh // 2
    return Reading(device_id, start_s, generation_wh, export_wh, None, counter_wh, export_counter)


def signed(r: Reading, meter: str = "meter-pv-1") -> bytes:
    return sign_reading(r, seed_of(meter))


def judge(
    ledger: Ledger, store: ReadingsStore, raws: list[bytes], now_s: int = NOW_S
) -> list[Validated]:
    context = ValidationContext(ledger.app.state.device, store.history(), now_s)
    return [validate(raw, context) for raw in raws]


def put(
    ledger: Ledger, store: ReadingsStore, *raws: bytes, now_s: int = NOW_S
) -> list[tuple[Any, ...]]:
    """Validate and record, returning (status, reasons) per reading."""
    answers = store.record(judge(ledger, store, list(raws), now_s), RECEIVED_S)
    return [(a.status, a.reasons) for a in answers]


ACCEPTED = (Status.accepted, ())
DUPLICATE = (Status.duplicate, ())


# ---- idempotency and conflicts ---------------------------------------------------------------


def test_a_reading_sent_twice_is_stored_once(ledger: Ledger, store: ReadingsStore) -> None:
    raw = signed(reading())
    assert put(ledger, store, raw) == [ACCEPTED]
    assert put(ledger, store, raw) == [DUPLICATE]
    assert put(ledger, store, raw, raw) == [DUPLICATE, DUPLICATE]
    rows = store.readings()
    assert len(rows) == 1
    row = rows[0]
    assert (row.reading_id, row.device_id, row.interval_start_s) == (
        f"pv-1/{NOON_S}",
        "pv-1",
        NOON_S,
    )
    assert (row.raw, row.status, row.reasons, row.received_at_s) == (
        raw,
        Status.accepted,
        (),
        RECEIVED_S,
    )
    assert store.rejections() == []
    assert store.counts() == {"accepted": 1, "rejected": 0, "rejections": 0, "issued_days": 0}


def test_the_same_reading_twice_in_one_batch_is_stored_once(
    ledger: Ledger, store: ReadingsStore
) -> None:
    raw = signed(reading())
    assert put(ledger, store, raw, raw) == [ACCEPTED, DUPLICATE]
    assert len(store.readings()) == 1


def test_a_second_writer_on_the_same_tables_is_seen(
    ledger: Ledger, store: ReadingsStore, store_url: str
) -> None:
    """The store skips lookups for intervals after a device's latest row as it knows it; rows
    another store object (another process) wrote since are still found, nothing is lost."""
    earlier, later = signed(reading()), signed(reading(start_s=NOON_S + INTERVAL_S))
    assert put(ledger, store, earlier) == [ACCEPTED]  # this store now knows pv-1 up to noon
    other = open_store(store_url)
    try:
        assert put(ledger, other, later) == [ACCEPTED]
    finally:
        other.close()
    assert put(ledger, store, later) == [DUPLICATE]
    conflicting = signed(reading(start_s=NOON_S + INTERVAL_S, generation_wh=900))
    assert put(ledger, store, conflicting)[0][0] is Status.rejected
    assert [r.interval_start_s for r in store.readings()] == [NOON_S, NOON_S + INTERVAL_S]
    assert [r.raw for r in store.readings()] == [earlier, later]


def test_other_bytes_for_an_accepted_interval_are_a_conflict_kept_with_their_bytes(
    ledger: Ledger, store: ReadingsStore
) -> None:
    first = signed(reading(generation_wh=1_000))
    other = signed(reading(generation_wh=1_001))
    assert put(ledger, store, first) == [ACCEPTED]
    conflict = (Status.rejected, (Reason.conflicts_with_accepted_reading.value,))
    assert put(ledger, store, other) == [conflict]
    assert put(ledger, store, other) == [conflict], "judged again, stored once"
    stored = store.reading(f"pv-1/{NOON_S}")
    assert stored is not None and stored.raw == first and stored.status is Status.accepted
    (kept,) = store.rejections()
    assert (kept.reading_id, kept.device_id, kept.interval_start_s) == (
        f"pv-1/{NOON_S}",
        "pv-1",
        NOON_S,
    )
    assert kept.raw == other and kept.size_bytes == len(other)
    assert kept.reasons == (Reason.conflicts_with_accepted_reading.value,)
    found = store.find(other)
    assert isinstance(found, StoredRejection) and found.raw == other


def test_a_conflict_within_one_batch_keeps_the_first(ledger: Ledger, store: ReadingsStore) -> None:
    first = signed(reading(generation_wh=1_000))
    other = signed(reading(generation_wh=999))
    # Both were judged against an empty history: the store itself sees the conflict.
    verdicts = judge(ledger, store, [first, other])
    assert [v.accepted for v in verdicts] == [True, True]
    answers = store.record(verdicts, RECEIVED_S)
    assert [(a.status, a.reasons) for a in answers] == [
        ACCEPTED,
        (Status.rejected, (Reason.conflicts_with_accepted_reading.value,)),
    ]
    assert [r.raw for r in store.readings()] == [first]
    assert [r.raw for r in store.rejections()] == [other]


def test_a_rejected_reading_is_judged_again_and_stored_once(
    ledger: Ledger, store: ReadingsStore
) -> None:
    raw = signed(reading())
    early = NOON_S  # the interval has not ended yet
    assert put(ledger, store, raw, now_s=early) == [
        (Status.rejected, (Reason.interval_in_future.value,))
    ]
    assert put(ledger, store, raw, now_s=early) == [
        (Status.rejected, (Reason.interval_in_future.value,))
    ]
    (row,) = store.readings()
    assert row.status is Status.rejected and row.reasons == (Reason.interval_in_future.value,)
    assert store.rejections() == []
    # Once the interval is over the same bytes are accepted: the row becomes the accepted one.
    assert put(ledger, store, raw) == [ACCEPTED]
    (row,) = store.readings()
    assert row.status is Status.accepted and row.raw == raw and row.reasons == ()
    assert store.rejections() == [], "the same bytes: nothing to keep twice"


def test_an_accepted_reading_replaces_a_rejected_one_which_is_kept(
    ledger: Ledger, store: ReadingsStore
) -> None:
    impossible = signed(reading(generation_wh=4_000))  # 4 kWh in 30 min from 4.5 kW
    honest = signed(reading(generation_wh=1_000))
    assert put(ledger, store, impossible) == [
        (
            Status.rejected,
            (
                Reason.generation_exceeds_capacity.value,
                Reason.generation_exceeds_clear_sky_bound.value,
            ),
        )
    ]
    other_rejected = signed(reading(generation_wh=5_000))
    assert put(ledger, store, other_rejected)[0][0] is Status.rejected
    assert put(ledger, store, honest) == [ACCEPTED]
    (row,) = store.readings()
    assert row.raw == honest and row.status is Status.accepted
    kept = {r.raw: r for r in store.rejections()}
    assert set(kept) == {impossible, other_rejected}
    assert kept[impossible].reasons == (
        Reason.generation_exceeds_capacity.value,
        Reason.generation_exceeds_clear_sky_bound.value,
    )


def test_a_rejected_then_accepted_interval_within_one_batch(
    ledger: Ledger, store: ReadingsStore
) -> None:
    impossible = signed(reading(generation_wh=4_000))
    honest = signed(reading(generation_wh=1_000))
    assert [s for s, _ in put(ledger, store, impossible, honest, honest)] == [
        Status.rejected,
        Status.accepted,
        Status.duplicate,
    ]
    assert [(r.raw, r.status) for r in store.readings()] == [(honest, Status.accepted)]
    assert [r.raw for r in store.rejections()] == [impossible]


def test_undecodable_payloads_are_kept_once_with_their_size(
    ledger: Ledger, store: ReadingsStore
) -> None:
    oversized = b"\x92" + bytes(10_000)
    garbage = b"not a reading"
    answers = store.record(judge(ledger, store, [oversized, garbage, garbage]), RECEIVED_S)
    assert [(a.reading_id, a.status, a.reasons) for a in answers] == [
        (None, Status.rejected, ("reading_too_large",)),
        (None, Status.rejected, ("malformed_reading",)),
        (None, Status.rejected, ("malformed_reading",)),
    ]
    kept = {r.size_bytes: r for r in store.rejections()}
    assert set(kept) == {len(oversized), len(garbage)}
    assert kept[len(oversized)].raw == oversized[:MAX_STORED_RAW_BYTES]
    assert kept[len(garbage)].raw == garbage
    assert kept[len(garbage)].reading_id is None and kept[len(garbage)].device_id is None
    assert store.readings() == []


def test_a_batch_is_one_transaction(ledger: Ledger, store: ReadingsStore) -> None:
    raws = [signed(reading(NOON_S + i * INTERVAL_S, counter_wh=5_000_000 + i)) for i in range(3)]
    verdicts = judge(ledger, store, raws)
    poison = msgspec.structs.replace(verdicts[2], raw=object())
    with pytest.raises(Exception):  # noqa: B017 (each driver names its own error)
        store.record([verdicts[0], verdicts[1], poison], RECEIVED_S)
    assert store.readings() == [] and store.rejections() == []
    assert [a.status for a in store.record(verdicts, RECEIVED_S)] == [Status.accepted] * 3


# ---- history across restarts -----------------------------------------------------------------


def test_counters_are_checked_against_the_store_after_a_restart(
    ledger: Ledger, store_url: str
) -> None:
    with open_store(store_url) as first:
        assert put(ledger, first, signed(reading(NOON_S, counter_wh=5_000_000))) == [ACCEPTED]
        assert put(ledger, first, signed(reading(NOON_S + 2 * INTERVAL_S, counter_wh=5_002_000)))
    with open_store(store_url) as again:
        history = again.history()
        after = NOON_S + 2 * INTERVAL_S
        assert history.previous("pv-1", NOON_S + INTERVAL_S) == reading(
            NOON_S, counter_wh=5_000_000
        )
        assert history.following("pv-1", NOON_S + INTERVAL_S) == reading(
            after, counter_wh=5_002_000
        )
        assert history.at("pv-1", NOON_S) == reading(NOON_S, counter_wh=5_000_000)
        assert history.at("pv-1", NOON_S + INTERVAL_S) is None
        assert history.previous("pv-1", NOON_S) is None
        assert history.following("pv-1", after) is None
        # A meter reset (its register back near zero) between two stored readings:
        reset = signed(reading(NOON_S + INTERVAL_S, counter_wh=1_000))
        assert put(ledger, again, reset) == [
            (Status.rejected, (Reason.counter_ran_backwards.value,))
        ]
        # ... and one that fits between them is accepted, after the restart too.
        fits = signed(reading(NOON_S + INTERVAL_S, counter_wh=5_001_000))
        assert put(ledger, again, fits) == [ACCEPTED]


def test_history_sees_only_accepted_readings(ledger: Ledger, store: ReadingsStore) -> None:
    put(ledger, store, signed(reading(NOON_S, generation_wh=4_000)))  # rejected
    history = store.history()
    assert history.at("pv-1", NOON_S) is None
    assert history.previous("pv-1", NOON_S + INTERVAL_S) is None


def test_cached_history_answers_as_the_store_does(ledger: Ledger, store: ReadingsStore) -> None:
    """Random arrival order, some readings rejected, batches committed or pending: the cached
    history gives the answers of an in-memory model of what was accepted."""
    rng = random.Random(20250601)
    cached = CachedHistory(store)
    starts = [DAY_START_S + i * INTERVAL_S for i in range(40)]
    rng.shuffle(starts)
    accepted: dict[int, Reading] = {}
    batch: list[Validated] = []
    number = 0
    for start in starts:
        r = reading(start, generation_wh=0, export_wh=0, counter_wh=start - DAY_START_S)
        context = ValidationContext(ledger.app.state.device, cached, NOW_S)
        verdict = validate(signed(r), context)
        if rng.random() < 0.2:
            verdict = msgspec.structs.replace(verdict, rejections=(*verdict.rejections, _forced()))
        if verdict.accepted:
            cached.add(r, number, cached.generation)
            accepted[start] = r
        batch.append(verdict)
        if rng.random() < 0.3:
            store.record(batch, RECEIVED_S)
            cached.committed(number)
            number, batch = number + 1, []
        for probe in rng.sample(range(-1, 41), 6):
            at = DAY_START_S + probe * INTERVAL_S
            before = [s for s in accepted if s < at]
            after = [s for s in accepted if s > at]
            assert cached.previous("pv-1", at) == (accepted[max(before)] if before else None)
            assert cached.following("pv-1", at) == (accepted[min(after)] if after else None)
            assert cached.at("pv-1", at) == accepted.get(at)
    store.record(batch, RECEIVED_S)
    cached.committed(number)
    fresh = CachedHistory(store)  # what a restarted intake sees
    for probe in range(-1, 41):
        at = DAY_START_S + probe * INTERVAL_S
        assert fresh.previous("pv-1", at) == store.history().previous("pv-1", at)
        assert fresh.following("pv-1", at) == store.history().following("pv-1", at)
        assert fresh.at("pv-1", at) == accepted.get(at)


def _forced() -> Rejection:
    return Rejection("test", "forced_rejection")


def test_cached_history_forgets_pending_readings_on_reset(
    ledger: Ledger, store: ReadingsStore
) -> None:
    cached = CachedHistory(store)
    r = reading(NOON_S)
    generation = cached.generation
    cached.add(r, 1, generation)
    assert cached.at("pv-1", NOON_S) == r
    cached.reset()
    assert cached.at("pv-1", NOON_S) is None
    cached.add(r, 1, generation)  # a batch validated before the reset: ignored
    assert cached.at("pv-1", NOON_S) is None
    assert cached.previous("pv-1", NOON_S + INTERVAL_S) is None


# ---- issued days -----------------------------------------------------------------------------


def test_pending_days_are_complete_days_with_accepted_readings_not_yet_issued(
    ledger: Ledger, store: ReadingsStore
) -> None:
    day2 = DAY_START_S + 86_400
    raws = [
        signed(reading(DAY_START_S + 20 * INTERVAL_S, counter_wh=1)),
        signed(reading(DAY_START_S + 47 * INTERVAL_S, generation_wh=0, export_wh=0, counter_wh=2)),
        signed(reading(day2 + 20 * INTERVAL_S, counter_wh=3)),
        signed(reading(day2 + 22 * INTERVAL_S, generation_wh=4_000, counter_wh=4)),  # rejected
    ]
    put(ledger, store, *raws)
    assert store.pending_days(day2) == [PendingDay("pv-1", DAY_START_S, 2)]
    assert store.pending_days(day2 + 86_399) == [PendingDay("pv-1", DAY_START_S, 2)]
    assert store.pending_days(day2 + 86_400) == [
        PendingDay("pv-1", DAY_START_S, 2),
        PendingDay("pv-1", day2, 1),
    ]
    assert [r.interval_start_s for r in store.accepted_readings("pv-1", day2, day2 + 86_400)] == [
        day2 + 20 * INTERVAL_S
    ]
    refused = IssuedDay("pv-1", "2025-06-01", DAY_START_S, "pv-1:2025-06-01", "x", None, 5)
    store.record_issued(refused)
    assert store.pending_days(day2 + 86_400) == [PendingDay("pv-1", day2, 1)]
    assert store.issued_days() == [refused]
    assert store.forget_refused() == 1
    issued = dataclasses.replace(refused, outcome="ok", tx_hash=bytes(range(32)))
    store.record_issued(issued)
    store.record_issued(issued)
    assert store.issued_days("pv-1") == [issued]
    assert store.forget_refused() == 0
    assert store.pending_days(day2 + 86_400) == [PendingDay("pv-1", day2, 1)]


# ---- a device's rows over many days ----------------------------------------------------------


def fleet_days(rng: random.Random) -> list[Validated]:
    """Three devices over six JST days (one day empty), some intervals rejected, some readings
    off the grid (rejected: a listing shows them, the accepted history never has them)."""
    verdicts = []
    for day in (0, 1, 3, 4, 5):
        for device_id in ("pv-1", "pv-2", "pv-3"):
            for slot in sorted(rng.sample(range(48), rng.randrange(0, 12))):
                start = DAY_START_S + day * 86_400 + slot * INTERVAL_S
                if rng.random() < 0.1:
                    start += 60
                r = reading(start, generation_wh=0, export_wh=0, device_id=device_id)
                raw = sign_reading(r, seed_of("meter-" + device_id))
                rejected = start % INTERVAL_S != 0 or rng.random() < 0.25
                verdicts.append(Validated(raw, reading_hash(raw), r, (_forced(),) * rejected))
    rng.shuffle(verdicts)
    return verdicts


def test_a_devices_rows_are_found_across_days_and_gaps(store: ReadingsStore) -> None:
    """previous / following / accepted_readings / readings(device) / pending_days against an
    in-memory model, at probes on and off the grid, before, between and after the days with
    readings."""
    rng = random.Random(7)
    verdicts = fleet_days(rng)
    for start in range(0, len(verdicts), 7):  # several batches, as the intake writes them
        store.record(verdicts[start : start + 7], RECEIVED_S)
    probes = [DAY_START_S + offset for offset in range(-86_400, 7 * 86_400, 1_337)]
    for device_id in ("pv-1", "pv-2", "pv-3", "pv-9"):
        mine = [v for v in verdicts if v.reading is not None and v.reading.device_id == device_id]
        by_start = {v.reading.interval_start_s: v for v in mine if v.reading is not None}
        accepted = sorted(s for s, v in by_start.items() if v.accepted)
        listed = [(r.interval_start_s, r.status) for r in store.readings(device_id)]
        assert listed == [
            (s, Status.accepted if by_start[s].accepted else Status.rejected)
            for s in sorted(by_start)
        ]
        for at in probes:
            before = [s for s in accepted if s < at]
            after = [s for s in accepted if s > at]
            previous = store.previous_accepted(device_id, at)
            following = store.following_accepted(device_id, at)
            assert (previous and previous.interval_start_s) == (max(before) if before else None)
            assert (following and following.interval_start_s) == (min(after) if after else None)
        for first in range(-1, 7):
            lo = DAY_START_S + first * 86_400 + rng.randrange(0, 86_400)
            hi = lo + rng.randrange(0, 3 * 86_400)
            got = [r.interval_start_s for r in store.accepted_readings(device_id, lo, hi)]
            assert got == [s for s in accepted if lo <= s < hi]
    for until in (DAY_START_S + 86_400 * n + 3_600 * (n % 2) for n in range(7)):
        per_day: dict[tuple[str, int], int] = {}
        for v in verdicts:
            if v.accepted and v.reading is not None:
                day = DAY_START_S + (v.reading.interval_start_s - DAY_START_S) // 86_400 * 86_400
                if day + 86_400 <= until:
                    key = (v.reading.device_id, day)
                    per_day[key] = per_day.get(key, 0) + 1
        assert store.pending_days(until) == [
            PendingDay(d, s, n) for (d, s), n in sorted(per_day.items())
        ]


def test_a_store_of_the_earlier_layout_is_brought_up_to_date(tmp_path: Path) -> None:
    """A SQLite store made with the index by device and no device_days: opening it fills
    device_days from its rows and drops the old index; nothing is lost."""
    path = tmp_path / "readings.sqlite"
    verdicts = fleet_days(random.Random(11))
    with open_store(f"sqlite://{path}") as store:
        store.record(verdicts, RECEIVED_S)
        expected = {d: store.readings(d) for d in ("pv-1", "pv-2", "pv-3")}
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE device_days; "
        "CREATE UNIQUE INDEX readings_key ON readings (device_id, interval_start_s);"
    )
    conn.close()
    with open_store(f"sqlite://{path}") as store:
        assert {d: store.readings(d) for d in ("pv-1", "pv-2", "pv-3")} == expected
        last = max(r.interval_start_s for r in expected["pv-1"])
        again = [v for v in verdicts if v.reading is not None and v.reading.device_id == "pv-1"]
        assert {a.status for a in store.record(again, RECEIVED_S)} <= {
            Status.duplicate,
            Status.rejected,
        }
        assert store.readings("pv-1")[-1].interval_start_s == last
    conn = sqlite3.connect(path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert "readings_key" not in names and "readings_at" in names


# ---- opening ---------------------------------------------------------------------------------


def test_store_urls(tmp_path: Path) -> None:
    for url in (f"sqlite://{tmp_path}/a.sqlite", str(tmp_path / "b.sqlite")):
        with open_store(url) as opened:
            assert opened.counts()["accepted"] == 0
    assert (tmp_path / "a.sqlite").exists() and (tmp_path / "b.sqlite").exists()
    with pytest.raises(StoreError, match="unknown store URL"):
        open_store("mysql://x/y")
    with pytest.raises(StoreError, match="cannot connect"):
        open_store("postgresql://nobody:secret@127.0.0.1:1/none")


def test_postgres_errors_never_show_the_password() -> None:
    with pytest.raises(StoreError) as raised:
        open_store("postgresql://reco2:hunter2@127.0.0.1:1/none")
    assert "hunter2" not in str(raised.value)


def test_stored_reading_round_trips(ledger: Ledger, store: ReadingsStore) -> None:
    raw = signed(reading())
    put(ledger, store, raw)
    row = store.reading(f"pv-1/{NOON_S}")
    assert isinstance(row, StoredReading)
    assert store.find(raw) == row
    assert store.find(signed(reading(NOON_S + INTERVAL_S))) is None
    assert store.find(b"garbage") is None
    assert store.reading("pv-1/0") is None
