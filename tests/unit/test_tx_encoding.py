"""Transaction bytes (reco2.ledger.tx): signing, strict canonical decoding, and the outcome
codes for every way the bytes can be wrong, at the door (check_tx) and inside a block."""

from __future__ import annotations

import hashlib
import random

import msgspec
import nacl.bindings
import pytest
from tests.support import (
    CHAIN_ID,
    LEDGER_KINDS,
    Ledger,
    device_action,
    expect,
    issue_action,
    public_key,
    seed_of,
    world,
)

from reco2 import factors
from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import GridContract, Purpose, Role, SchemeEnrollment, Source

SAMPLE_ACTIONS: list[tx.Action] = [
    tx.RegisterParticipant(
        "tanaka", public_key("tanaka"), [Role.buyer, Role.prosumer], "田中", False
    ),
    device_action(
        "pv-9",
        source=Source.wind,
        grid_contract=GridContract.fip,
        utility="A0002",
        other_schemes=[SchemeEnrollment("j-credit", 1_700_000_000, 1_800_000_000)],
    ),
    tx.ApproveDevice("pv-9"),
    tx.DeactivateDevice("pv-9", "moved house"),
    factors.publish_action(),
    issue_action(),
    tx.TransferValue("b1", "buyer", 1_000),
    tx.RetireValue("r1", "b1", 500, "株式会社 例", Purpose.ghg_report, "FY2025", "温対法 報告"),
    tx.DepositYen("buyer", 1_000_000, "bank-ref-1"),
    tx.WithdrawYen(50_000, "bank", "wd-1"),
    tx.ReleaseReading("pv-9", 1_748_703_600, bytes(range(32)), "1", "checked on site"),
]


def test_samples_cover_every_ledger_kind() -> None:
    """The value ledger's kinds and the release of a flagged reading;
    tests/property/test_encoding_props.py covers every kind."""
    assert {tx.kind_of(a) for a in SAMPLE_ACTIONS} == set(LEDGER_KINDS)


def signed(action: tx.Action, signer: str = "maekawa", nonce: int = 0) -> bytes:
    return tx.sign(tx.TxBody(CHAIN_ID, signer, nonce, action), seed_of(signer))  # type: ignore[arg-type]


def envelope(body: bytes, signer: str = "maekawa") -> bytes:
    """Sign arbitrary body bytes correctly and wrap them in a canonical envelope."""
    pk, sk = nacl.bindings.crypto_sign_seed_keypair(seed_of(signer))
    signature = nacl.bindings.crypto_sign(tx.SIGNING_DOMAIN + body, sk)[: tx.SIGNATURE_BYTES]
    return tx.encode(tx.SignedTx(body, pk, signature))


def enc(value: object) -> bytes:
    return msgspec.msgpack.encode(value)


@pytest.fixture
def ledger() -> Ledger:
    return world()


# ---- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("action", SAMPLE_ACTIONS, ids=tx.kind_of)
def test_sign_decode_round_trip(action: tx.Action) -> None:
    body = tx.TxBody(CHAIN_ID, "maekawa", 7, action)  # type: ignore[arg-type]
    raw = tx.sign(body, seed_of("maekawa"))
    decoded = tx.decode(raw, 1 << 20)
    assert isinstance(decoded, tx.DecodedTx)
    assert decoded.body == body
    assert type(decoded.body.action) is type(action)
    assert decoded.raw == raw
    assert decoded.hash == hashlib.sha256(raw).digest()
    assert decoded.envelope.public_key == public_key("maekawa")
    assert tx.verify_signature(decoded.envelope)
    # canonical: re-encoding gives the same bytes, and signing again too (Ed25519 is deterministic)
    assert tx.encode(decoded.body) == decoded.envelope.body
    assert tx.encode(decoded.envelope) == raw
    assert tx.sign(decoded.body, seed_of("maekawa")) == raw


def test_wire_shape() -> None:
    """SignedTx = [body, public_key, signature]; TxBody = [chain_id, signer, nonce, action];
    action = [kind, field...]."""
    raw = signed(tx.TransferValue("b1", "buyer", 1_000), nonce=3)
    body, key, signature = msgspec.msgpack.decode(raw)
    assert key == public_key("maekawa")
    assert len(signature) == tx.SIGNATURE_BYTES
    assert msgspec.msgpack.decode(body) == [
        CHAIN_ID,
        "maekawa",
        3,
        ["transfer_value", "b1", "buyer", 1_000],
    ]
    assert body == enc([CHAIN_ID, "maekawa", 3, ["transfer_value", "b1", "buyer", 1_000]])


def test_equal_actions_give_equal_bytes_and_different_ones_differ() -> None:
    a = signed(tx.TransferValue("b1", "buyer", 1_000))
    b = signed(tx.TransferValue("b1", "buyer", 1_000))
    c = signed(tx.TransferValue("b1", "buyer", 1_001))
    assert a == b
    assert a != c
    assert tx.tx_hash(a) != tx.tx_hash(c)


def test_a_valid_transaction_passes_the_door(ledger: Ledger) -> None:
    raw = ledger.sign(
        "authority", tx.RegisterParticipant("tanaka", public_key("tanaka"), [Role.buyer], "t", True)
    )
    expect(ledger.check(raw), Outcome.ok)
    assert ledger.block([raw]).results[0].code == "ok"


# ---- non-canonical encodings ----------------------------------------------------------

TRANSFER = ["transfer_value", "b1", "buyer", 5]
TRANSFER_BYTES = b"\x94" + enc("transfer_value") + enc("b1") + enc("buyer") + enc(5)
assert enc(TRANSFER) == TRANSFER_BYTES


def body_bytes(
    chain: bytes, signer: bytes, nonce: bytes, action: bytes, header: bytes = b"\x94"
) -> bytes:
    return header + chain + signer + nonce + action


NON_CANONICAL_BODIES = {
    # the nonce 0 as a uint64 (0xcf + 8 bytes) instead of a positive fixint
    "nonce as uint64": body_bytes(
        enc(CHAIN_ID), enc("maekawa"), b"\xcf" + bytes(8), TRANSFER_BYTES
    ),
    "nonce as uint8": body_bytes(enc(CHAIN_ID), enc("maekawa"), b"\xcc\x00", TRANSFER_BYTES),
    "nonce as int8": body_bytes(enc(CHAIN_ID), enc("maekawa"), b"\xd0\x00", TRANSFER_BYTES),
    # the quantity 5 as an int16 inside the action
    "quantity as int16": body_bytes(
        enc(CHAIN_ID),
        enc("maekawa"),
        enc(0),
        b"\x94" + enc("transfer_value") + enc("b1") + enc("buyer") + b"\xd1\x00\x05",
    ),
    # a short string as str8 (0xd9) instead of fixstr
    "chain id as str8": body_bytes(
        b"\xd9" + bytes([len(CHAIN_ID)]) + CHAIN_ID.encode(), enc("maekawa"), enc(0), TRANSFER_BYTES
    ),
    "signer as str16": body_bytes(enc(CHAIN_ID), b"\xda\x00\x07maekawa", enc(0), TRANSFER_BYTES),
    # the body's array header as array16 (0xdc) instead of fixarray
    "body header as array16": body_bytes(
        enc(CHAIN_ID), enc("maekawa"), enc(0), TRANSFER_BYTES, header=b"\xdc\x00\x04"
    ),
    "action header as array32": body_bytes(
        enc(CHAIN_ID), enc("maekawa"), enc(0), b"\xdd\x00\x00\x00\x04" + TRANSFER_BYTES[1:]
    ),
}


def test_the_hand_built_body_is_canonical_when_built_plainly(ledger: Ledger) -> None:
    """Guards the table below: the same construction with minimal forms is accepted."""
    plain = body_bytes(enc(CHAIN_ID), enc("maekawa"), enc(0), TRANSFER_BYTES)
    decoded = tx.decode(envelope(plain), 1 << 20)
    assert isinstance(decoded, tx.DecodedTx)
    assert decoded.body == tx.TxBody(CHAIN_ID, "maekawa", 0, tx.TransferValue("b1", "buyer", 5))


@pytest.mark.parametrize("body", NON_CANONICAL_BODIES.values(), ids=NON_CANONICAL_BODIES.keys())
def test_non_canonical_body_is_refused(ledger: Ledger, body: bytes) -> None:
    raw = envelope(body)  # correctly signed: only the encoding is at fault
    generic = msgspec.msgpack.decode(body)
    assert generic == [CHAIN_ID, "maekawa", 0, ["transfer_value", "b1", "buyer", generic[3][3]]]
    assert tx.decode(raw, 1 << 20) is Outcome.non_canonical_encoding
    ledger.attempt_raw(raw, Outcome.non_canonical_encoding, "maekawa")


def bin8(data: bytes) -> bytes:
    return b"\xc4" + bytes([len(data)]) + data


def bin16(data: bytes) -> bytes:
    return b"\xc5" + len(data).to_bytes(2, "big") + data


def non_canonical_envelopes() -> dict[str, bytes]:
    raw = signed(tx.TransferValue("b1", "buyer", 5))
    body, key, signature = msgspec.msgpack.decode(raw)
    assert raw == b"\x93" + bin8(body) + bin8(key) + bin8(signature)
    return {
        "envelope header as array16": b"\xdc\x00\x03" + bin8(body) + bin8(key) + bin8(signature),
        "body as bin16": b"\x93" + bin16(body) + bin8(key) + bin8(signature),
        "signature as bin32": b"\x93"
        + bin8(body)
        + bin8(key)
        + b"\xc6\x00\x00\x00\x40"
        + signature,
    }


@pytest.mark.parametrize("name", non_canonical_envelopes().keys())
def test_non_canonical_envelope_is_refused(ledger: Ledger, name: str) -> None:
    raw = non_canonical_envelopes()[name]
    assert tx.decode(raw, 1 << 20) is Outcome.non_canonical_encoding
    ledger.attempt_raw(raw, Outcome.non_canonical_encoding, "maekawa")


# ---- malformed ------------------------------------------------------------------------


def malformed_bodies() -> dict[str, bytes]:
    return {
        "body as a map": enc(
            {"chain_id": CHAIN_ID, "signer": "maekawa", "nonce": 0, "action": TRANSFER}
        ),
        "action as a map": enc(
            [
                CHAIN_ID,
                "maekawa",
                0,
                {"kind": "transfer_value", "batch_id": "b1", "recipient": "buyer", "quantity_g": 5},
            ]
        ),
        "nonce as a string": enc([CHAIN_ID, "maekawa", "0", TRANSFER]),
        "nonce as a float": enc([CHAIN_ID, "maekawa", 0.0, TRANSFER]),
        "quantity as a float": enc(
            [CHAIN_ID, "maekawa", 0, ["transfer_value", "b1", "buyer", 5.0]]
        ),
        "quantity as nil": enc([CHAIN_ID, "maekawa", 0, ["transfer_value", "b1", "buyer", None]]),
        "id as bytes": enc([CHAIN_ID, "maekawa", 0, ["transfer_value", b"b1", "buyer", 5]]),
        "missing field": enc([CHAIN_ID, "maekawa", 0, ["transfer_value", "b1", "buyer"]]),
        "extra field": enc([CHAIN_ID, "maekawa", 0, ["transfer_value", "b1", "buyer", 5, 6]]),
        "extra body field": enc([CHAIN_ID, "maekawa", 0, TRANSFER, "more"]),
        "three-element body": enc([CHAIN_ID, "maekawa", 0]),
        "kind as an int": enc([CHAIN_ID, "maekawa", 0, [7, "b1", "buyer", 5]]),
        "empty action": enc([CHAIN_ID, "maekawa", 0, []]),
        "unknown enum value": enc(
            [
                CHAIN_ID,
                "maekawa",
                0,
                ["register_participant", "x", bytes(32), ["wizard"], "x", True],
            ]
        ),
        "nonce above uint64": b"\x94"
        + enc(CHAIN_ID)
        + enc("maekawa")
        + b"\xcf"
        + b"\xff" * 8
        + TRANSFER_BYTES[:-1],
        "body is a string": enc("hello"),
        "body is empty": b"",
        "bad utf-8 in a string": b"\x94"
        + b"\xa2\xff\xfe"
        + enc("maekawa")
        + enc(0)
        + TRANSFER_BYTES,
        "trailing byte": enc([CHAIN_ID, "maekawa", 0, TRANSFER]) + b"\x00",
    }


@pytest.mark.parametrize("name", malformed_bodies().keys())
def test_malformed_body_is_refused(ledger: Ledger, name: str) -> None:
    raw = envelope(malformed_bodies()[name])
    assert tx.decode(raw, 1 << 20) is Outcome.malformed_transaction
    ledger.attempt_raw(raw, Outcome.malformed_transaction, "maekawa")


def test_envelope_as_a_map_is_refused(ledger: Ledger) -> None:
    raw = signed(tx.TransferValue("b1", "buyer", 5))
    body, key, signature = msgspec.msgpack.decode(raw)
    as_map = enc({"body": body, "public_key": key, "signature": signature})
    ledger.attempt_raw(as_map, Outcome.malformed_transaction)


GARBAGE = {
    "empty": b"",
    "never-used byte 0xc1": b"\xc1",
    "an array header alone": b"\x93",
    "nil": b"\xc0",
    "an integer": b"\x05",
    "text": b"hello, ledger",
    "json": b'{"kind": "transfer_value"}',
    "four-element envelope": enc([b"x", bytes(32), bytes(64), b"y"]),
    "envelope of strings": enc(["body", "key", "signature"]),
    **{f"random {i}": random.Random(i).randbytes(1 + 37 * i) for i in range(8)},
}


@pytest.mark.parametrize("raw", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_malformed(ledger: Ledger, raw: bytes) -> None:
    assert tx.decode(raw, 1 << 20) is Outcome.malformed_transaction
    ledger.attempt_raw(raw, Outcome.malformed_transaction)


def test_every_truncation_is_malformed(ledger: Ledger) -> None:
    raw = signed(tx.TransferValue("b1", "buyer", 5))
    for length in range(len(raw)):
        assert tx.decode(raw[:length], 1 << 20) is Outcome.malformed_transaction, length
        assert ledger.app.check_tx(raw[:length]).outcome is Outcome.malformed_transaction
    ledger.attempt_raw(raw[: len(raw) // 2], Outcome.malformed_transaction)
    ledger.attempt_raw(raw[:-1], Outcome.malformed_transaction)


def test_a_short_signature_or_key_is_a_bad_signature(ledger: Ledger) -> None:
    raw = signed(tx.TransferValue("b1", "buyer", 5))
    body, key, signature = msgspec.msgpack.decode(raw)
    ledger.attempt_raw(tx.encode(tx.SignedTx(body, key, signature[:63])), Outcome.bad_signature)
    ledger.attempt_raw(tx.encode(tx.SignedTx(body, key[:31], signature)), Outcome.bad_signature)


# ---- size ---------------------------------------------------------------------------


def retire_of_size(ledger: Ledger, size: int) -> bytes:
    """A signed retirement whose note pads the envelope to exactly ``size`` bytes."""
    signer = ledger.app.state.participant("maekawa")
    assert signer is not None

    def build(note_chars: int) -> bytes:
        action = tx.RetireValue("r1", "b1", 1, "x", Purpose.offset, "FY2025", "n" * note_chars)
        return ledger.sign("maekawa", action, nonce=signer.next_nonce)

    note = size - len(build(0))
    while len(build(note)) > size:  # a longer string header takes a few bytes
        note -= 1
    raw = build(note)
    assert len(raw) == size
    return raw


def test_oversized_transaction_is_refused(ledger: Ledger) -> None:
    limit = ledger.app.max_tx_bytes
    assert limit == 16_384
    raw = retire_of_size(ledger, limit + 1)
    assert tx.decode(raw, limit) is Outcome.transaction_too_large
    ledger.attempt_raw(raw, Outcome.transaction_too_large, "maekawa")
    # the size check comes first: oversized garbage is too large, not malformed
    ledger.attempt_raw(b"\xc1" * (limit + 1), Outcome.transaction_too_large)
    ledger.attempt_raw(bytes(10 * limit), Outcome.transaction_too_large)


def test_a_transaction_of_exactly_the_limit_is_not_too_large(ledger: Ledger) -> None:
    raw = retire_of_size(ledger, ledger.app.max_tx_bytes)
    # it passes the size check; its 16 kB note then breaks the note rule (1,024 characters)
    assert isinstance(tx.decode(raw, ledger.app.max_tx_bytes), tx.DecodedTx)
    ledger.attempt_raw(raw, Outcome.text_too_long, "maekawa")


# ---- kinds and signatures -------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [["mint_value", "b1", 1_000_000], ["transfer", "b1", "buyer", 5], ["", 1], ["TRANSFER_VALUE"]],
    ids=["mint_value", "transfer", "empty", "upper-case"],
)
def test_unknown_kind(ledger: Ledger, action: list[object]) -> None:
    raw = envelope(enc([CHAIN_ID, "maekawa", 0, action]))
    assert tx.decode(raw, 1 << 20) is Outcome.unknown_kind
    ledger.attempt_raw(raw, Outcome.unknown_kind, "maekawa")


def test_flipped_signature_bit_is_a_bad_signature(ledger: Ledger) -> None:
    raw = bytearray(signed(tx.TransferValue("b1", "buyer", 5)))
    raw[-1] ^= 0x01  # the last byte of the signature
    ledger.attempt_raw(bytes(raw), Outcome.bad_signature, "maekawa")


def test_flipped_body_bit_is_a_bad_signature(ledger: Ledger) -> None:
    raw = signed(tx.TransferValue("b1", "buyer", 5))
    forged = raw.replace(b"\x05", b"\x7f", 1)  # quantity 5 -> 127, same length, still canonical
    assert forged != raw
    decoded = tx.decode(forged, 1 << 20)
    assert isinstance(decoded, tx.DecodedTx)
    assert decoded.body.action == tx.TransferValue("b1", "buyer", 127)
    ledger.attempt_raw(forged, Outcome.bad_signature, "maekawa")


def test_signature_by_another_key_is_a_bad_signature(ledger: Ledger) -> None:
    """The envelope names maekawa's key but the signature is the buyer's."""
    body = tx.encode(tx.TxBody(CHAIN_ID, "maekawa", 0, tx.TransferValue("b1", "buyer", 5)))
    _, buyer_sk = nacl.bindings.crypto_sign_seed_keypair(seed_of("buyer"))
    signature = nacl.bindings.crypto_sign(tx.SIGNING_DOMAIN + body, buyer_sk)[:64]
    raw = tx.encode(tx.SignedTx(body, public_key("maekawa"), signature))
    ledger.attempt_raw(raw, Outcome.bad_signature, "maekawa")


def test_signature_without_the_domain_is_a_bad_signature(ledger: Ledger) -> None:
    body = tx.encode(tx.TxBody(CHAIN_ID, "maekawa", 0, tx.TransferValue("b1", "buyer", 5)))
    pk, sk = nacl.bindings.crypto_sign_seed_keypair(seed_of("maekawa"))
    signature = nacl.bindings.crypto_sign(body, sk)[:64]
    ledger.attempt_raw(
        tx.encode(tx.SignedTx(body, pk, signature)), Outcome.bad_signature, "maekawa"
    )


def test_signature_of_another_body_is_a_bad_signature(ledger: Ledger) -> None:
    one = msgspec.msgpack.decode(signed(tx.TransferValue("b1", "buyer", 5)))
    two = msgspec.msgpack.decode(signed(tx.TransferValue("b1", "buyer", 6)))
    raw = tx.encode(tx.SignedTx(one[0], one[1], two[2]))
    ledger.attempt_raw(raw, Outcome.bad_signature, "maekawa")


def test_an_accepted_door_then_the_same_bytes_again_in_the_block(ledger: Ledger) -> None:
    """The block re-checks what the door checked: the outcome is the same for the same bytes."""
    raw = signed(tx.TransferValue("b1", "buyer", 5))
    bad = bytearray(raw)
    bad[-2] ^= 0x80
    assert ledger.app.check_tx(bytes(bad)).outcome is Outcome.bad_signature
    result = ledger.block([bytes(bad), bytes(bad)])
    assert [r.code for r in result.results] == ["bad_signature", "bad_signature"]
