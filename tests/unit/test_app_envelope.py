"""The envelope of every transaction at the Application (reco2.ledger.app): chain, signature,
signer, key and nonce, at the door (check_tx) and in blocks; replays and duplicates."""

from __future__ import annotations

import pytest
from tests.support import (
    Ledger,
    add_participant,
    changed_keys,
    expect,
    genesis,
    public_key,
    snapshot,
    world,
)

from reco2.ledger import tx
from reco2.ledger.app import Application
from reco2.ledger.outcome import ENVELOPE_OUTCOMES, Outcome
from reco2.ledger.types import Role

GIFT = tx.RegisterParticipant("tanaka", public_key("tanaka"), [Role.buyer], "田中", True)


@pytest.fixture
def ledger() -> Ledger:
    return world()


def next_nonce(ledger: Ledger, pid: str) -> int:
    participant = ledger.app.state.participant(pid)
    assert participant is not None
    return participant.next_nonce


def test_wrong_chain(ledger: Ledger) -> None:
    ledger.attempt("authority", GIFT, Outcome.wrong_chain, chain_id="reco2-other")
    ledger.attempt("authority", GIFT, Outcome.wrong_chain, chain_id="")
    ledger.attempt("authority", GIFT, Outcome.ok)  # the nonce was not used


def test_unknown_signer(ledger: Ledger) -> None:
    ledger.attempt("ghost", tx.TransferValue("b1", "buyer", 1), Outcome.unknown_signer)
    # a known participant's name is the signer only with that participant's key
    assert ledger.app.state.participant("ghost") is None


def test_signer_key_mismatch(ledger: Ledger) -> None:
    """Signed correctly, but with the buyer's key while naming the authority as signer."""
    ledger.attempt("authority", GIFT, Outcome.signer_key_mismatch, key_of="buyer")
    ledger.attempt("authority", GIFT, Outcome.signer_key_mismatch, key_of="unregistered")
    ledger.attempt("authority", GIFT, Outcome.ok)


def test_envelope_refusals_keep_the_nonce(ledger: Ledger) -> None:
    nonce = next_nonce(ledger, "authority")
    ledger.attempt("authority", GIFT, Outcome.wrong_chain, chain_id="x", nonce=nonce)
    ledger.attempt("authority", GIFT, Outcome.signer_key_mismatch, key_of="bank", nonce=nonce)
    ledger.attempt("authority", GIFT, Outcome.nonce_too_high, nonce=nonce + 1)
    assert next_nonce(ledger, "authority") == nonce
    ledger.attempt("authority", GIFT, Outcome.ok, nonce=nonce)
    assert next_nonce(ledger, "authority") == nonce + 1


def test_nonce_reused(ledger: Ledger) -> None:
    nonce = next_nonce(ledger, "authority")
    assert nonce > 0
    ledger.attempt("authority", GIFT, Outcome.nonce_reused, nonce=nonce - 1)
    ledger.attempt("authority", GIFT, Outcome.nonce_reused, nonce=0)
    ledger.attempt("authority", GIFT, Outcome.nonce_reused, nonce=-1)


def test_nonce_too_high_passes_the_door_and_fails_in_the_block(ledger: Ledger) -> None:
    """The door cannot know what an earlier transaction in the mempool will do; the block can."""
    nonce = next_nonce(ledger, "authority")
    ledger.attempt("authority", GIFT, Outcome.nonce_too_high, nonce=nonce + 1)
    ledger.attempt("authority", GIFT, Outcome.nonce_too_high, nonce=2**64 - 1)


def test_replayed_transaction_is_refused(ledger: Ledger) -> None:
    raw = ledger.sign("authority", GIFT)
    assert ledger.block([raw]).results[0].code == "ok"
    before = snapshot(ledger.app)
    ledger.attempt_raw(raw, Outcome.nonce_reused, "authority")
    assert snapshot(ledger.app) == before


def test_duplicate_in_one_block(ledger: Ledger) -> None:
    raw = ledger.sign("authority", GIFT)
    assert [r.code for r in ledger.block([raw, raw, raw]).results] == [
        "ok",
        "nonce_reused",
        "nonce_reused",
    ]


def test_nonces_in_order_within_a_block(ledger: Ledger) -> None:
    raws = [
        ledger.sign("authority", tx.RegisterParticipant(p, public_key(p), [Role.buyer], p, True))
        for p in ("p1", "p2", "p3")
    ]
    for raw in raws:  # the door judges each against the committed state alone
        expect(ledger.check(raw), Outcome.ok)
    assert [r.code for r in ledger.block(raws).results] == ["ok", "ok", "ok"]


def test_nonces_out_of_order_within_a_block(ledger: Ledger) -> None:
    first, second = (
        ledger.sign("authority", tx.RegisterParticipant(p, public_key(p), [Role.buyer], p, True))
        for p in ("p1", "p2")
    )
    assert [r.code for r in ledger.block([second, first]).results] == ["nonce_too_high", "ok"]
    # the refused one can come again later, now in turn
    assert ledger.block([second]).results[0].code == "ok"
    assert ledger.app.state.participant("p2") is not None


def test_a_rejected_action_uses_its_nonce(ledger: Ledger) -> None:
    nonce = next_nonce(ledger, "maekawa")
    ledger.attempt("maekawa", GIFT, Outcome.role_not_allowed)  # stateful rule
    ledger.attempt("maekawa", tx.TransferValue("b1", "buyer", 0), Outcome.quantity_must_be_positive)
    assert next_nonce(ledger, "maekawa") == nonce + 2
    ledger.attempt("maekawa", GIFT, Outcome.nonce_reused, nonce=nonce)


def test_check_tx_does_not_judge_state(ledger: Ledger) -> None:
    """The door checks the envelope and the action's own fields; rules against state are the
    block's (they depend on what comes before in the block)."""
    raw = ledger.sign("maekawa", GIFT, nonce=next_nonce(ledger, "maekawa"))
    expect(ledger.check(raw), Outcome.ok)
    assert ledger.block([raw]).results[0].code == "role_not_allowed"


def test_mixed_block_applies_the_good_and_only_the_good(ledger: Ledger) -> None:
    before = snapshot(ledger.app)
    good = ledger.sign("authority", GIFT)
    bad_sig = bytearray(ledger.sign("authority", GIFT, nonce=999))
    bad_sig[-1] ^= 1
    replay = good
    garbage = b"\x00\x01\x02"
    result = ledger.block([garbage, bytes(bad_sig), good, replay])
    assert [r.code for r in result.results] == [
        "malformed_transaction",
        "bad_signature",
        "ok",
        "nonce_reused",
    ]
    changed = changed_keys(before, snapshot(ledger.app))
    assert changed == {b"participant/authority", b"participant/tanaka"}


def test_an_empty_block_changes_nothing_but_the_height(ledger: Ledger) -> None:
    before, root, height = snapshot(ledger.app), ledger.app.state_root(), ledger.app.height
    result = ledger.block([])
    assert result.results == []
    assert result.app_hash == root
    assert snapshot(ledger.app) == before
    assert ledger.app.height == height + 1


def test_results_and_roots_replay_identically() -> None:
    """The same blocks given to a fresh Application give the same results and roots."""
    ledger = world()
    add_participant(ledger, "tanaka", Role.buyer)
    ledger.block([ledger.sign("authority", GIFT), b"junk"])
    fresh = Application(genesis())
    for raws, height, time_ns, app_hash in ledger.blocks:
        result = fresh.finalize_block(raws, height, time_ns)
        assert result.app_hash == app_hash
        fresh.commit()
    assert snapshot(fresh) == snapshot(ledger.app)


def test_envelope_outcomes_are_exactly_those_that_record_nothing() -> None:
    assert Outcome.nonce_too_high in ENVELOPE_OUTCOMES
    assert Outcome.role_not_allowed not in ENVELOPE_OUTCOMES
    assert Outcome.ok not in ENVELOPE_OUTCOMES
