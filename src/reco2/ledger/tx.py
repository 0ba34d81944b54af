"""Transactions: the actions, the signed body, the envelope, and their canonical bytes.

Wire shape (MessagePack arrays, field order = encoding order):
    SignedTx = [body: bin, public_key: bin(32), signature: bin(64)]
    TxBody   = [chain_id, signer, nonce, action]
    action   = [kind, field...]

The signature is Ed25519 (libsodium through PyNaCl) over ``SIGNING_DOMAIN + body``. Decoding is
strict: unknown fields, wrong types and any byte string that does not re-encode to itself are
refused, so one transaction has exactly one encoding and one hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import nacl.bindings
import nacl.exceptions

from reco2.ledger.outcome import Outcome
from reco2.ledger.types import (
    BuyConditions,
    GridContract,
    Purpose,
    Role,
    SchemeEnrollment,
    Source,
)

SIGNING_DOMAIN: Final = b"reco2/tx/v1\n"
PUBLIC_KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64


class Action(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
    """Base of every action (the kind tag is the first array element)."""


class RegisterParticipant(Action, tag="register_participant"):
    participant_id: str
    public_key: bytes
    roles: list[Role]
    display_name: str
    name_public: bool


class RegisterDevice(Action, tag="register_device"):
    device_id: str
    owner: str
    aggregator: str
    source: Source
    capacity_w: int
    prefecture_code: str
    municipality_code: str
    latitude_e2: int
    longitude_e2: int
    commissioned_on: str
    grid_contract: GridContract
    utility: str
    other_schemes: list[SchemeEnrollment]
    meter_public_key: bytes


class ApproveDevice(Action, tag="approve_device"):
    device_id: str


class DeactivateDevice(Action, tag="deactivate_device"):
    device_id: str
    reason: str


class FactorRowIn(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    fiscal_year: int
    utility: str
    factor_mg_per_wh: int
    source: str
    published_on: str


class PublishEmissionFactors(Action, tag="publish_emission_factors"):
    version: str
    rows: list[FactorRowIn]


class IssueValue(Action, tag="issue_value"):
    batch_id: str
    device_id: str
    period_start_s: int
    period_end_s: int
    self_consumed_wh: int
    measured_intervals: int
    estimated_intervals: int
    estimated_wh: int
    readings_root: bytes
    factor_version: str


class TransferValue(Action, tag="transfer_value"):
    batch_id: str
    recipient: str
    quantity_g: int


class RetireValue(Action, tag="retire_value"):
    retirement_id: str
    batch_id: str
    quantity_g: int
    beneficiary: str
    purpose: Purpose
    claimed_period: str
    note: str


class DepositYen(Action, tag="deposit_yen"):
    account: str
    amount_sen: int
    reference: str


class WithdrawYen(Action, tag="withdraw_yen"):
    amount_sen: int
    settlement_agent: str
    reference: str


class PlaceSellOrder(Action, tag="place_sell_order"):
    order_id: str
    quantity_g: int
    all_or_none: bool
    price_sen_per_kg: int  # minimum
    source: Source
    place: str  # prefecture or municipality code the listing shows
    name_public: bool
    buyers: list[str]  # only these buyers; empty = anyone
    expires_at_ns: int  # 0 = good until cancelled


class PlaceBuyOrder(Action, tag="place_buy_order"):
    order_id: str
    quantity_g: int
    all_or_none: bool
    price_sen_per_kg: int  # limit
    conditions: BuyConditions
    expires_at_ns: int


class CancelOrder(Action, tag="cancel_order"):
    order_id: str


class SetSellRule(Action, tag="set_sell_rule"):
    rule_id: str
    device_id: str
    price_sen_per_kg: int
    name_public: bool
    cap_g: int
    buyers: list[str]


class CancelSellRule(Action, tag="cancel_sell_rule"):
    rule_id: str


class ReleaseReading(Action, tag="release_reading"):
    """A reviewer's release of one reading the anomaly model flagged (see
    ``kinds.release_reading``): the reading is named by its device and interval start, and
    pinned to its envelope's bytes and to the model version that flagged it."""

    device_id: str
    interval_start_s: int  # [UTC s], on the 30-minute grid: with the device, the reading id
    reading_hash: bytes  # SHA-256 of the reading's signed envelope
    model_version: str
    note: str  # why the reviewer released it


AnyAction = (
    RegisterParticipant
    | RegisterDevice
    | ApproveDevice
    | DeactivateDevice
    | PublishEmissionFactors
    | IssueValue
    | TransferValue
    | RetireValue
    | DepositYen
    | WithdrawYen
    | PlaceSellOrder
    | PlaceBuyOrder
    | CancelOrder
    | SetSellRule
    | CancelSellRule
    | ReleaseReading
)

KINDS: Final = frozenset(
    {
        "register_participant",
        "register_device",
        "approve_device",
        "deactivate_device",
        "publish_emission_factors",
        "issue_value",
        "transfer_value",
        "retire_value",
        "deposit_yen",
        "withdraw_yen",
        "place_sell_order",
        "place_buy_order",
        "cancel_order",
        "set_sell_rule",
        "cancel_sell_rule",
        "release_reading",
    }
)


class TxBody(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    chain_id: str
    signer: str
    nonce: int
    action: AnyAction


class SignedTx(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    body: bytes
    public_key: bytes
    signature: bytes


_encoder = msgspec.msgpack.Encoder()
_body_decoder = msgspec.msgpack.Decoder(TxBody)
_envelope_decoder = msgspec.msgpack.Decoder(SignedTx)


def encode(obj: Any) -> bytes:
    """Canonical bytes of any ledger struct."""
    return _encoder.encode(obj)


def tx_hash(raw: bytes) -> bytes:
    """Identity of a transaction: SHA-256 of its envelope bytes (as CometBFT's tx hash)."""
    return hashlib.sha256(raw).digest()


def sign(body: TxBody, seed: bytes) -> bytes:
    """Encode and sign a body with a 32-byte Ed25519 seed; returns the envelope bytes."""
    public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(seed)
    body_bytes = _encoder.encode(body)
    signed = nacl.bindings.crypto_sign(SIGNING_DOMAIN + body_bytes, secret_key)
    return _encoder.encode(SignedTx(body_bytes, public_key, signed[:SIGNATURE_BYTES]))


def public_key_of(seed: bytes) -> bytes:
    public_key, _ = nacl.bindings.crypto_sign_seed_keypair(seed)
    return bytes(public_key)


def verify_signature(envelope: SignedTx) -> bool:
    """Ed25519 check of the envelope's signature over its body (libsodium, constant time)."""
    if len(envelope.public_key) != PUBLIC_KEY_BYTES or len(envelope.signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(
            envelope.signature + SIGNING_DOMAIN + envelope.body, envelope.public_key
        )
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class DecodedTx:
    raw: bytes
    hash: bytes
    envelope: SignedTx
    body: TxBody


def decode(raw: bytes, max_bytes: int) -> DecodedTx | Outcome:
    """Decode an envelope and its body strictly; an Outcome says why it is refused.

    Checks (in order): size, envelope shape, canonical envelope bytes, body shape (an unknown
    action kind is told apart from a malformed body), canonical body bytes. Signatures are
    checked separately (see ``verify_signature``) so they can be verified in parallel.
    """
    if len(raw) > max_bytes:
        return Outcome.transaction_too_large
    try:
        envelope = _envelope_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return Outcome.malformed_transaction
    if _encoder.encode(envelope) != raw:
        return Outcome.non_canonical_encoding
    try:
        body = _body_decoder.decode(envelope.body)
    except msgspec.ValidationError:
        return _kind_or_malformed(envelope.body)
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for bad UTF-8
        return Outcome.malformed_transaction
    if _encoder.encode(body) != envelope.body:
        return Outcome.non_canonical_encoding
    return DecodedTx(raw, tx_hash(raw), envelope, body)


def _kind_or_malformed(body: bytes) -> Outcome:
    try:
        generic = msgspec.msgpack.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return Outcome.malformed_transaction
    if (
        isinstance(generic, list)
        and len(generic) == 4
        and isinstance(generic[3], list)
        and generic[3]
        and isinstance(generic[3][0], str)
        and generic[3][0] not in KINDS
    ):
        return Outcome.unknown_kind
    return Outcome.malformed_transaction


def kind_of(action: Action) -> str:
    tag = type(action).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
