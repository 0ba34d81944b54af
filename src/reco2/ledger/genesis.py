"""The genesis document: the chain's name, its first participants (the registry authority
and any other founding members) and its parameters. Stored as JSON; hashed canonically."""

from __future__ import annotations

import hashlib

import msgspec

from reco2.ledger.types import Role

DEFAULT_MAX_TX_BYTES = 16_384


class GenesisParticipant(msgspec.Struct, forbid_unknown_fields=True):
    participant_id: str
    public_key: bytes
    roles: list[Role]
    display_name: str
    name_public: bool = True


class Genesis(msgspec.Struct, forbid_unknown_fields=True):
    chain_id: str
    genesis_time_ns: int
    participants: list[GenesisParticipant]
    max_tx_bytes: int = DEFAULT_MAX_TX_BYTES


def to_json(genesis: Genesis) -> bytes:
    return msgspec.json.format(msgspec.json.encode(genesis), indent=2)


def from_json(raw: bytes) -> Genesis:
    return msgspec.json.decode(raw, type=Genesis)


def genesis_hash(genesis: Genesis) -> bytes:
    """SHA-256 of the genesis's canonical MessagePack bytes (map keys in field order)."""
    return hashlib.sha256(msgspec.msgpack.encode(genesis)).digest()
