"""Blocks of the embedded chain: a header that links the previous block and commits the
transactions, their results and the state root after them.

    tx_root      = simple Merkle root over SHA-256 of each transaction (as CometBFT's Txs.Hash)
    results_root = simple Merkle root over each result's canonical bytes
    block hash   = SHA-256 of the header's canonical bytes

Height 0 is the genesis block: its ``prev_hash`` is the SHA-256 of the canonical genesis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import msgspec

from reco2.ledger import merkle


class BlockHeader(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    chain_id: str
    height: int
    time_ns: int  # block time [UTC ns], strictly increasing
    prev_hash: bytes
    tx_count: int
    tx_root: bytes
    results_root: bytes
    state_root: bytes


class TxResult(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """What a transaction did: its outcome code and the entities it touched."""

    code: str
    events: list[str]


_encoder = msgspec.msgpack.Encoder()
_header_decoder = msgspec.msgpack.Decoder(BlockHeader)
_result_decoder = msgspec.msgpack.Decoder(TxResult)


def encode_header(header: BlockHeader) -> bytes:
    return _encoder.encode(header)


def decode_header(raw: bytes) -> BlockHeader:
    """Strict decode; raises msgspec.DecodeError / ValidationError on bad bytes."""
    return _header_decoder.decode(raw)


def header_hash(header: BlockHeader) -> bytes:
    return hashlib.sha256(_encoder.encode(header)).digest()


def encode_result(result: TxResult) -> bytes:
    return _encoder.encode(result)


def decode_result(raw: bytes) -> TxResult:
    return _result_decoder.decode(raw)


def tx_root(tx_hashes: Sequence[bytes]) -> bytes:
    return merkle.simple_root(tx_hashes)


def results_root(encoded_results: Sequence[bytes]) -> bytes:
    return merkle.simple_root(encoded_results)
