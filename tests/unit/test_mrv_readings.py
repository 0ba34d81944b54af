"""Signed meter readings: canonical bytes, signatures with the meter key, strict decoding."""

from __future__ import annotations

import hashlib

import msgspec
import nacl.bindings
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reco2.ledger import tx
from reco2.mrv.readings import (
    MAX_SIGNED_READING_BYTES,
    READING_DOMAIN,
    DecodedReading,
    DecodeFailure,
    Reading,
    SignedReading,
    decode_reading,
    encode_reading,
    interval_end_s,
    reading_hash,
    reading_id,
    self_consumed_wh,
    sign_reading,
    verify_reading_signature,
)

METER_SEED = hashlib.sha256(b"test meter").digest()
METER_KEY = tx.public_key_of(METER_SEED)
OTHER_KEY = tx.public_key_of(hashlib.sha256(b"another meter").digest())
START_S = 1_748_703_600  # 2025-06-01T00:00+09:00

READING = Reading(
    device_id="pv-1",
    interval_start_s=START_S + 24 * 1_800,
    generation_wh=1_532,
    export_wh=1_100,
    import_wh=0,
    generation_counter_wh=12_345_678,
    export_counter_wh=9_876_543,
)


def decoded(raw: bytes) -> DecodedReading:
    result = decode_reading(raw)
    assert isinstance(result, DecodedReading), result
    return result


def envelope_bytes(body: bytes, signature: bytes) -> bytes:
    return msgspec.msgpack.encode(SignedReading(body, signature))


def test_round_trip_keeps_every_field_and_signs_the_canonical_body() -> None:
    raw = sign_reading(READING, METER_SEED)
    result = decoded(raw)
    assert result.reading == READING
    assert result.envelope.body == encode_reading(READING)
    assert result.raw == raw
    assert result.hash == hashlib.sha256(raw).digest() == reading_hash(raw)
    assert verify_reading_signature(result.envelope, METER_KEY)


def test_canonical_bytes_are_a_msgpack_array_in_field_order() -> None:
    reading = Reading("d1", 1_800, 5, 2, None, None, None)
    # fixarray(7), fixstr "d1", uint16 1800, 5, 2, nil, nil, nil
    assert encode_reading(reading) == bytes.fromhex("97a26431cd07080502c0c0c0")


def test_signing_is_deterministic_so_one_reading_has_one_hash() -> None:
    assert sign_reading(READING, METER_SEED) == sign_reading(READING, METER_SEED)
    changed = msgspec.structs.replace(READING, export_wh=READING.export_wh + 1)
    assert reading_hash(sign_reading(changed, METER_SEED)) != reading_hash(
        sign_reading(READING, METER_SEED)
    )


def test_forged_signature_fails() -> None:
    raw = bytearray(sign_reading(READING, METER_SEED))
    raw[-1] ^= 0x01  # the signature is the envelope's last field
    result = decoded(bytes(raw))
    assert not verify_reading_signature(result.envelope, METER_KEY)


def test_altered_body_fails_against_the_original_signature() -> None:
    original = decoded(sign_reading(READING, METER_SEED))
    inflated = encode_reading(msgspec.structs.replace(READING, generation_wh=2_000))
    forged = decoded(envelope_bytes(inflated, original.envelope.signature))
    assert not verify_reading_signature(forged.envelope, METER_KEY)


def test_wrong_key_fails() -> None:
    result = decoded(sign_reading(READING, METER_SEED))
    assert not verify_reading_signature(result.envelope, OTHER_KEY)
    assert not verify_reading_signature(result.envelope, METER_KEY[:31])


def test_a_ledger_transaction_signature_is_not_a_reading_signature() -> None:
    """The domain tag separates readings from transactions signed with the same key."""
    body = encode_reading(READING)
    _, secret = nacl.bindings.crypto_sign_seed_keypair(METER_SEED)
    tx_signature = nacl.bindings.crypto_sign(tx.SIGNING_DOMAIN + body, secret)[:64]
    result = decoded(envelope_bytes(body, tx_signature))
    assert not verify_reading_signature(result.envelope, METER_KEY)
    reading_signature = nacl.bindings.crypto_sign(READING_DOMAIN + body, secret)[:64]
    assert verify_reading_signature(
        decoded(envelope_bytes(body, reading_signature)).envelope, METER_KEY
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", DecodeFailure.malformed_reading),
        (b"\xff\x00garbage", DecodeFailure.malformed_reading),
        (
            msgspec.msgpack.encode({"body": b"x", "signature": bytes(64)}),
            DecodeFailure.malformed_reading,
        ),
        (msgspec.msgpack.encode([b"x"]), DecodeFailure.malformed_reading),
        (msgspec.msgpack.encode([b"x", bytes(64), b"extra"]), DecodeFailure.malformed_reading),
        (msgspec.msgpack.encode(["text body", bytes(64)]), DecodeFailure.malformed_reading),
        (envelope_bytes(b"\x93\x01\x02\x03", bytes(64)), DecodeFailure.malformed_reading),
        (
            envelope_bytes(msgspec.msgpack.encode(["d", 0, 1, 2, None, None]), bytes(64)),
            DecodeFailure.malformed_reading,
        ),
        (
            envelope_bytes(msgspec.msgpack.encode(["d", 0, 1, 2, None, None, None, 9]), bytes(64)),
            DecodeFailure.malformed_reading,
        ),
        (
            envelope_bytes(msgspec.msgpack.encode(["d", 0, 1.5, 2, None, None, None]), bytes(64)),
            DecodeFailure.malformed_reading,
        ),
        (
            envelope_bytes(msgspec.msgpack.encode(["d", "0", 1, 2, None, None, None]), bytes(64)),
            DecodeFailure.malformed_reading,
        ),
        (
            envelope_bytes(msgspec.msgpack.encode([7, 0, 1, 2, None, None, None]), bytes(64)),
            DecodeFailure.malformed_reading,
        ),
        (
            envelope_bytes(b"\x97\xa1\xff\x00\x01\x02\xc0\xc0\xc0", bytes(64)),
            DecodeFailure.malformed_reading,
        ),  # invalid UTF-8 in the device id
        (
            envelope_bytes(encode_reading(READING), bytes(63)),
            DecodeFailure.invalid_signature_length,
        ),
        (envelope_bytes(encode_reading(READING), b""), DecodeFailure.invalid_signature_length),
    ],
    ids=[
        "empty",
        "garbage",
        "map-envelope",
        "short-envelope",
        "long-envelope",
        "str-body",
        "short-body",
        "six-fields",
        "eight-fields",
        "float-energy",
        "string-interval",
        "int-device-id",
        "bad-utf8",
        "63-byte-signature",
        "no-signature",
    ],
)
def test_malformed_input_gets_a_named_reason(raw: bytes, expected: DecodeFailure) -> None:
    assert decode_reading(raw) is expected


def test_non_canonical_body_is_refused() -> None:
    # 1800 written as uint32 (0xce) instead of the shortest uint16 form
    body = bytes.fromhex("97a26431ce000007080502c0c0c0")
    assert msgspec.msgpack.decode(body) == ["d1", 1_800, 5, 2, None, None, None]
    assert decode_reading(envelope_bytes(body, bytes(64))) is DecodeFailure.non_canonical_encoding


def test_non_canonical_envelope_is_refused() -> None:
    body = encode_reading(READING)
    # body written as bin16 (0xc5) although it fits a bin8
    raw = b"\x92\xc5" + len(body).to_bytes(2, "big") + body + b"\xc4\x40" + bytes(64)
    assert msgspec.msgpack.decode(raw) == [body, bytes(64)]
    assert decode_reading(raw) is DecodeFailure.non_canonical_encoding


def test_oversized_input_is_refused_before_reading_it() -> None:
    assert (
        decode_reading(b"\x00" * (MAX_SIGNED_READING_BYTES + 1)) is DecodeFailure.reading_too_large
    )
    long_id = msgspec.structs.replace(READING, device_id="x" * 200)
    raw = sign_reading(long_id, METER_SEED)
    assert len(raw) > MAX_SIGNED_READING_BYTES
    assert decode_reading(raw) is DecodeFailure.reading_too_large
    assert isinstance(decode_reading(raw, max_bytes=len(raw)), DecodedReading)


def test_the_largest_well_formed_reading_fits_the_limit() -> None:
    largest = Reading("x" * 64, 2**63 - 1, 2**63 - 1, 2**63 - 1, 2**63 - 1, 2**63 - 1, 2**63 - 1)
    raw = sign_reading(largest, METER_SEED)
    assert len(raw) <= MAX_SIGNED_READING_BYTES
    assert decoded(raw).reading == largest


def test_reading_id_is_one_per_device_and_interval() -> None:
    assert reading_id("pv-1", 1_800) == "pv-1/1800"
    assert reading_id("pv-1", 1_800) != reading_id("pv-1", 3_600)
    assert reading_id("pv-1", 1_800) != reading_id("pv-11", 800)
    assert reading_id(READING.device_id, READING.interval_start_s).rsplit("/", 1) == [
        "pv-1",
        str(READING.interval_start_s),
    ]


@pytest.mark.parametrize(
    ("generation_wh", "export_wh", "expected_wh"),
    [(1_532, 1_100, 432), (1_000, 0, 1_000), (800, 800, 0), (100, 250, 0), (0, 0, 0)],
)
def test_self_consumed_is_generation_minus_export_never_below_zero(
    generation_wh: int, export_wh: int, expected_wh: int
) -> None:
    reading = msgspec.structs.replace(READING, generation_wh=generation_wh, export_wh=export_wh)
    assert self_consumed_wh(reading) == expected_wh


def test_interval_end_is_thirty_minutes_after_start() -> None:
    assert interval_end_s(READING) == READING.interval_start_s + 1_800


_ids = st.from_regex(r"[A-Za-z0-9._:\-]{1,64}", fullmatch=True)
_i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_readings = st.builds(
    Reading,
    device_id=_ids,
    interval_start_s=_i64,
    generation_wh=_i64,
    export_wh=_i64,
    import_wh=st.none() | _i64,
    generation_counter_wh=st.none() | _i64,
    export_counter_wh=st.none() | _i64,
)


@given(_readings)
def test_property_every_reading_round_trips_through_its_signed_bytes(reading: Reading) -> None:
    raw = sign_reading(reading, METER_SEED)
    result = decoded(raw)
    assert result.reading == reading
    assert verify_reading_signature(result.envelope, METER_KEY)
    assert encode_reading(result.reading) == result.envelope.body


@given(st.binary(max_size=MAX_SIGNED_READING_BYTES + 8))
def test_property_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = decode_reading(raw)
    assert isinstance(result, DecodedReading | DecodeFailure)
    if isinstance(result, DecodedReading):
        assert sign_reading(result.reading, METER_SEED) == raw or not verify_reading_signature(
            result.envelope, METER_KEY
        )
