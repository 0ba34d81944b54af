"""Meter readings: the 30-minute record a device's meter signs, its envelope and canonical bytes.

Wire shape (MessagePack arrays, field order = encoding order):
    SignedReading = [body: bin, signature: bin(64)]
    Reading       = [device_id, interval_start_s, generation_wh, export_wh, import_wh | nil,
                     generation_counter_wh | nil, export_counter_wh | nil]

The signature is Ed25519 (libsodium through PyNaCl) over ``READING_DOMAIN + body``, made with
the device's meter key. The envelope carries no public key: a reading is verified against the
``meter_public_key`` of the device record on the ledger, so only the key the registry approved
can speak for a device. The domain tag keeps a reading signature from ever being valid as a
ledger transaction signature and the other way round.

Decoding is strict, as for transactions (``reco2.ledger.tx``): a size limit, no unknown fields,
exact types, and the bytes must re-encode to themselves, so one reading has exactly one body and
one signed envelope (libsodium refuses non-canonical signatures) and hence one hash. Bad input
gets a named ``DecodeFailure``; decoding never raises.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Final

import msgspec
import nacl.bindings
import nacl.exceptions

from reco2.ledger.calendar import INTERVAL_S

READING_DOMAIN: Final = b"reco2/reading/v1\n"
PUBLIC_KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64

#: Largest signed reading accepted [bytes]. The largest well-formed one is about 190 bytes: a
#: 64-character device id (65), six integers of at most 9 bytes each (54), array and bin
#: headers (6) and the signature (64). 256 leaves room and refuses anything bigger unread.
MAX_SIGNED_READING_BYTES: Final = 256


class DecodeFailure(StrEnum):
    """Why a signed reading could not be decoded, in the order the rules are checked."""

    reading_too_large = "reading_too_large"
    malformed_reading = "malformed_reading"
    non_canonical_encoding = "non_canonical_encoding"
    invalid_signature_length = "invalid_signature_length"


class Reading(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True, gc=False):
    """One device's energy in one 30-minute interval [Wh], as its meter reports it.

    ``interval_start_s`` [UTC s] is on the 30-minute grid; the interval is
    [start, start + 1800 s). ``generation_wh`` is what the generator produced, ``export_wh`` what
    went to the grid, ``import_wh`` what came from it (None when the meter does not say).
    The counters are the cumulative meter registers at the end of the interval [Wh] (None when
    the meter gives none): ECHONET Lite 0x0279 EPC 0xE1 (generated) and 0xE3 (sold).
    """

    device_id: str
    interval_start_s: int
    generation_wh: int
    export_wh: int
    import_wh: int | None
    generation_counter_wh: int | None
    export_counter_wh: int | None


class SignedReading(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
    """The envelope: canonical reading bytes and the meter's Ed25519 signature over them."""

    body: bytes
    signature: bytes


_encoder = msgspec.msgpack.Encoder()
_reading_decoder = msgspec.msgpack.Decoder(Reading)
_envelope_decoder = msgspec.msgpack.Decoder(SignedReading)


class DecodedReading(msgspec.Struct, frozen=True, gc=False):
    """A signed reading whose bytes are canonical (its signature is not yet verified).

    A msgspec Struct rather than a frozen dataclass, as ``validation.Candidate`` and
    ``Validated``: the intake makes one of each per reading, and a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) cost about 0.5 us more every time.
    """

    raw: bytes
    hash: bytes  # reading_hash(raw)
    envelope: SignedReading
    reading: Reading


def encode_reading(reading: Reading) -> bytes:
    """Canonical bytes of a reading: the signed body, and the Merkle leaf of an issuance."""
    return _encoder.encode(reading)


def sign_reading(reading: Reading, meter_seed: bytes) -> bytes:
    """Encode and sign a reading with the meter's 32-byte Ed25519 seed; returns envelope bytes."""
    _, secret_key = nacl.bindings.crypto_sign_seed_keypair(meter_seed)
    body = _encoder.encode(reading)
    signed = nacl.bindings.crypto_sign(READING_DOMAIN + body, secret_key)
    return _encoder.encode(SignedReading(body, signed[:SIGNATURE_BYTES]))


def decode_reading(
    raw: bytes, max_bytes: int = MAX_SIGNED_READING_BYTES
) -> DecodedReading | DecodeFailure:
    """Decode an envelope and its reading strictly; a ``DecodeFailure`` says why it is refused.

    Checks, in order: size, envelope shape, canonical envelope bytes, signature length, reading
    shape, canonical reading bytes. The signature itself is verified against the device's
    registered key (``verify_reading_signature``) once the device is known.
    """
    if len(raw) > max_bytes:
        return DecodeFailure.reading_too_large
    try:
        envelope = _envelope_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return DecodeFailure.malformed_reading
    if _encoder.encode(envelope) != raw:
        return DecodeFailure.non_canonical_encoding
    if len(envelope.signature) != SIGNATURE_BYTES:
        return DecodeFailure.invalid_signature_length
    try:
        reading = _reading_decoder.decode(envelope.body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return DecodeFailure.malformed_reading
    if _encoder.encode(reading) != envelope.body:
        return DecodeFailure.non_canonical_encoding
    return DecodedReading(raw, reading_hash(raw), envelope, reading)


def signed_message(envelope: SignedReading) -> bytes:
    """What libsodium's ``crypto_sign_open`` checks: signature + ``READING_DOMAIN`` + body."""
    return envelope.signature + READING_DOMAIN + envelope.body


def well_formed_key(meter_public_key: bytes) -> bool:
    return len(meter_public_key) == PUBLIC_KEY_BYTES


def verify_reading_signature(envelope: SignedReading, meter_public_key: bytes) -> bool:
    """Ed25519 check of the envelope's signature with a device's meter key (constant time)."""
    if len(meter_public_key) != PUBLIC_KEY_BYTES or len(envelope.signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(signed_message(envelope), meter_public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


def reading_id(device_id: str, interval_start_s: int) -> str:
    """Idempotency key of a reading: one device, one interval ("<device_id>/<start s>").

    A device id never contains "/" (``reco2.ledger.kinds.common.ID_PATTERN``), and the part after
    the last "/" is always the integer, so the key is unambiguous. Two envelopes with the same
    key and the same ``reading_hash`` are one reading sent twice; with different hashes they
    conflict.
    """
    return f"{device_id}/{interval_start_s}"


def reading_hash(raw: bytes) -> bytes:
    """Identity of a signed reading: SHA-256 of its envelope bytes [32 bytes]."""
    return hashlib.sha256(raw).digest()


def interval_end_s(reading: Reading) -> int:
    """End of the reading's interval [UTC s], exclusive."""
    return reading.interval_start_s + INTERVAL_S


def self_consumed_wh(reading: Reading) -> int:
    """Energy used on site [Wh] = generation - export, never below 0 (DESIGN.md section 4).

    Only this energy creates value; exported (FIT-sold) energy never does. Export above
    generation (a battery discharging to the grid) counts as zero self-consumption.
    """
    return max(0, reading.generation_wh - reading.export_wh)
