"""ReleaseReading: the registry authority releases one reading the anomaly model flagged; the
release is kept in state under a key the issuer derives from the reading and the model."""

from __future__ import annotations

import hashlib

import pytest
from tests.support import (
    GENESIS_TIME_NS,
    Case,
    Ledger,
    add_participant,
    day_start,
    device_action,
    issue_action,
    run_case,
    world,
)

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import decode_value, release_key
from reco2.ledger.types import ReadingRelease, Role

START_S = day_start("2025-06-01") + 24 * 1_800  # 12:00 JST
HASH = hashlib.sha256(b"a signed reading envelope").digest()


def release(**overrides: object) -> tx.ReleaseReading:
    fields: dict[str, object] = dict(
        device_id="pv-1",
        interval_start_s=START_S,
        reading_hash=HASH,
        model_version="1",
        note="inverter log shows the output; the neighbours were shaded",
    )
    fields.update(overrides)
    return tx.ReleaseReading(**fields)  # type: ignore[arg-type]


def released(ledger: Ledger) -> None:
    record = ledger.app.state.release("pv-1", START_S, "1")
    assert record is not None
    assert record.reading_hash == HASH
    assert record.reviewer == "authority"
    assert record.note.startswith("inverter log")
    assert record.height == ledger.app.height
    assert record.time_ns == ledger.time_ns
    assert len(record.tx_hash) == 32


def not_released(ledger: Ledger) -> None:
    assert ledger.app.state.release("pv-1", START_S, "1") is None


def already(ledger: Ledger) -> None:
    ledger.ok("authority", release())


def day_issued(ledger: Ledger) -> None:
    ledger.ok("mrv", issue_action("b1", day="2025-06-01"))


def pv2_pending(ledger: Ledger) -> None:
    ledger.ok("maekawa", device_action("pv-2"))


def pv1_deactivated(ledger: Ledger) -> None:
    ledger.ok("authority", tx.DeactivateDevice("pv-1", "sold"))


def second_authority(ledger: Ledger) -> None:
    add_participant(ledger, "registry-2", Role.authority)


#: The interval that ends exactly at the block's time: already over, so releasable.
def ending_at(ledger: Ledger) -> int:
    return (ledger.time_ns + 10 * 1_000_000_000) // 1_000_000_000 // 1_800 * 1_800 - 1_800


LAST_START_S = 7_258_118_400 - 1_800

CASES = [
    Case("ok by the authority", "authority", release(), Outcome.ok, then=released),
    Case(
        "ok by another authority",
        "registry-2",
        release(),
        Outcome.ok,
        setup=second_authority,
    ),
    Case("ok an empty note", "authority", release(note=""), Outcome.ok),
    Case(
        "ok the same reading flagged by another model version",
        "authority",
        release(model_version="2"),
        Outcome.ok,
        setup=already,
    ),
    Case(
        "ok the next interval of an issued day",
        "authority",
        release(interval_start_s=day_start("2025-06-02")),
        Outcome.ok,
        setup=day_issued,
    ),
    # who may release: the registry authority alone
    Case("the device's aggregator", "mrv", release(), Outcome.role_not_allowed, then=not_released),
    Case("the device's owner", "maekawa", release(), Outcome.role_not_allowed, then=not_released),
    Case("a buyer", "buyer", release(), Outcome.role_not_allowed, then=not_released),
    Case("the bank", "bank", release(), Outcome.role_not_allowed, then=not_released),
    # against state
    Case("unknown device", "authority", release(device_id="pv-404"), Outcome.unknown_device),
    Case(
        "a pending device",
        "authority",
        release(device_id="pv-2"),
        Outcome.device_not_active,
        setup=pv2_pending,
    ),
    Case(
        "a deactivated device",
        "authority",
        release(),
        Outcome.device_not_active,
        setup=pv1_deactivated,
        then=not_released,
    ),
    Case(
        "an interval not over at block time",
        "authority",
        release(interval_start_s=GENESIS_TIME_NS // 1_000_000_000 // 1_800 * 1_800 + 3_600),
        Outcome.reading_in_future,
    ),
    Case(
        "released already",
        "authority",
        release(note="again"),
        Outcome.reading_already_released,
        setup=already,
    ),
    Case(
        "the interval's day was issued",
        "authority",
        release(),
        Outcome.reading_already_issued,
        setup=day_issued,
        then=not_released,
    ),
    # the action's own fields
    Case("bad device id", "authority", release(device_id="pv/1"), Outcome.invalid_id),
    Case("bad model version", "authority", release(model_version="v/1"), Outcome.invalid_id),
    Case("empty model version", "authority", release(model_version=""), Outcome.invalid_id),
    Case("negative start", "authority", release(interval_start_s=-1_800), Outcome.invalid_period),
    Case(
        "start after the last period",
        "authority",
        release(interval_start_s=LAST_START_S + 1_800),
        Outcome.invalid_period,
    ),
    Case(
        "start off the grid",
        "authority",
        release(interval_start_s=START_S + 60),
        Outcome.period_not_on_grid,
    ),
    Case("short hash", "authority", release(reading_hash=HASH[:31]), Outcome.invalid_reading_hash),
    Case("empty hash", "authority", release(reading_hash=b""), Outcome.invalid_reading_hash),
    Case("note too long", "authority", release(note="n" * 257), Outcome.text_too_long),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_release_reading(case: Case) -> None:
    run_case(case)


def test_a_release_of_the_interval_that_just_ended_is_accepted() -> None:
    ledger = world()
    start_s = ending_at(ledger)
    ledger.attempt("authority", release(interval_start_s=start_s), Outcome.ok)
    assert ledger.app.state.release("pv-1", start_s, "1") is not None


def test_the_release_is_kept_under_the_key_the_issuer_derives_and_is_proven() -> None:
    ledger = world()
    result = ledger.attempt("authority", release(), Outcome.ok)
    key = release_key("pv-1", START_S, "1")
    assert key == b"release/pv-1/%012d/1" % START_S
    assert result.events == [key.decode()]
    answer = ledger.app.query(key)
    assert answer.value is not None
    record = decode_value(key, answer.value)
    assert isinstance(record, ReadingRelease)
    assert (record.device_id, record.interval_start_s, record.model_version) == (
        "pv-1",
        START_S,
        "1",
    )
    assert answer.proof_ops, "a release is proven against the state root"
    # another model's flag of the same reading is not released by it
    assert ledger.app.query(release_key("pv-1", START_S, "2")).value is None


def test_a_released_reading_does_not_stop_its_day_from_issuing() -> None:
    ledger = world()
    ledger.attempt("authority", release(), Outcome.ok)
    ledger.attempt("mrv", issue_action("b1", day="2025-06-01"), Outcome.ok)
    ledger.attempt("authority", release(model_version="2"), Outcome.reading_already_issued)
