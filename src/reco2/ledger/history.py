"""A batch's verifiable history: every transaction that touched it, each proven into its block,
the block headers linking them to a trusted block hash, and the batch's current records proven
against that block's state root. ``verify`` needs nothing but the bundle and the trusted hash.

Bundle (JSON, bytes as base64):
    {"format": "reco2-history/1", "chain_id", "batch_id",
     "headers": [header bytes, contiguous heights, last = the trusted block],
     "transactions": [{"height", "index", "tx", "result", "tx_proof", "result_proof"}],
     "state": [{"key", "value", "proof_ops"}]}
Merkle proofs are CometBFT "simple" proofs; state proofs are two chained ``simple:v`` ops.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from reco2.ledger import block, merkle, tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import batch_key, decode_value
from reco2.ledger.types import Holding, Trade, ValueBatch

FORMAT = "reco2-history/1"


class HistoryError(ValueError):
    """The bundle does not prove what it claims."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise HistoryError(f"{what} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise HistoryError(f"{what} is not base64") from exc


def proof_to_json(proof: merkle.Proof) -> dict[str, Any]:
    return {
        "total": proof.total,
        "index": proof.index,
        "leaf_hash": b64(proof.leaf_hash),
        "aunts": [b64(a) for a in proof.aunts],
    }


def proof_from_json(obj: Any, what: str) -> merkle.Proof:
    if not isinstance(obj, dict):
        raise HistoryError(f"{what} must be an object")
    try:
        return merkle.Proof(
            int(obj["total"]),
            int(obj["index"]),
            unb64(obj["leaf_hash"], what),
            tuple(unb64(a, what) for a in obj["aunts"]),
        )
    except (KeyError, TypeError) as exc:
        raise HistoryError(f"{what} is incomplete") from exc


@dataclass(frozen=True, slots=True)
class Event:
    height: int
    time_ns: int
    kind: str
    signer: str
    code: str
    action: tx.Action
    tx_hash: bytes


@dataclass(slots=True)
class VerifiedHistory:
    batch: ValueBatch
    holdings: dict[str, Holding]
    events: list[Event]
    tip_height: int
    tip_hash: bytes
    retirements: list[Any] = field(default_factory=list)


def verify(bundle: dict[str, Any], trusted_hash: bytes) -> VerifiedHistory:
    """Check every link of a batch history; raises HistoryError naming the first that fails."""
    if bundle.get("format") != FORMAT:
        raise HistoryError(f"not a {FORMAT} bundle")
    batch_id = bundle.get("batch_id")
    if not isinstance(batch_id, str):
        raise HistoryError("bundle names no batch")
    headers = _verify_headers(bundle, trusted_hash)
    tip = headers[max(headers)]
    events = [_verify_tx(entry, headers) for entry in bundle.get("transactions", [])]
    records = _verify_state(bundle, tip.state_root)
    batch = records.get(batch_key(batch_id))
    if not isinstance(batch, ValueBatch):
        raise HistoryError("the batch record is not in the proven state")
    holdings = {
        key.decode().rsplit("/", 1)[1]: record
        for key, record in records.items()
        if isinstance(record, Holding)
    }
    trades = [r for r in records.values() if isinstance(r, Trade)]
    _check_story(batch, holdings, events, trades)
    return VerifiedHistory(batch, holdings, events, tip.height, trusted_hash)


def _verify_headers(bundle: dict[str, Any], trusted_hash: bytes) -> dict[int, block.BlockHeader]:
    raw_headers = [unb64(h, "header") for h in bundle.get("headers", [])]
    if not raw_headers:
        raise HistoryError("bundle has no headers")
    headers: dict[int, block.BlockHeader] = {}
    expected = trusted_hash
    for raw in reversed(raw_headers):
        try:
            header = block.decode_header(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise HistoryError("a header is unreadable") from exc
        if block.header_hash(header) != expected:
            which = "trusted block" if expected == trusted_hash else f"block {header.height}"
            raise HistoryError(f"header chain broken at {which}")
        if headers and header.height != min(headers) - 1:
            raise HistoryError("headers are not contiguous")
        headers[header.height] = header
        expected = header.prev_hash
    return headers


def _verify_tx(entry: dict[str, Any], headers: dict[int, block.BlockHeader]) -> Event:
    height = entry.get("height")
    if not isinstance(height, int) or height not in headers:
        raise HistoryError(f"transaction at unknown height {height!r}")
    header = headers[height]
    raw = unb64(entry.get("tx"), "tx")
    result_raw = unb64(entry.get("result"), "result")
    tx_proof = proof_from_json(entry.get("tx_proof"), "tx proof")
    result_proof = proof_from_json(entry.get("result_proof"), "result proof")
    where = f"block {height} tx {entry.get('index')}"
    try:
        if tx_proof.leaf_hash != merkle.leaf_hash(tx.tx_hash(raw)):
            raise HistoryError(f"{where}: transaction is not the proven leaf")
        if tx_proof.compute_root() != header.tx_root:
            raise HistoryError(f"{where}: transaction not in the block")
        if result_proof.leaf_hash != merkle.leaf_hash(result_raw):
            raise HistoryError(f"{where}: result is not the proven leaf")
        if result_proof.compute_root() != header.results_root:
            raise HistoryError(f"{where}: result not in the block")
    except merkle.ProofError as exc:
        raise HistoryError(f"{where}: {exc}") from exc
    if tx_proof.index != result_proof.index or tx_proof.index != entry.get("index"):
        raise HistoryError(f"{where}: transaction and result positions differ")
    decoded = tx.decode(raw, 1 << 20)
    if isinstance(decoded, Outcome):
        raise HistoryError(f"{where}: transaction unreadable ({decoded})")
    if not tx.verify_signature(decoded.envelope):
        raise HistoryError(f"{where}: signature does not verify")
    result = block.decode_result(result_raw)
    return Event(
        height,
        header.time_ns,
        tx.kind_of(decoded.body.action),
        decoded.body.signer,
        result.code,
        decoded.body.action,
        decoded.hash,
    )


def _verify_state(bundle: dict[str, Any], state_root: bytes) -> dict[bytes, Any]:
    records: dict[bytes, Any] = {}
    for entry in bundle.get("state", []):
        key = str(entry.get("key", "")).encode()
        value = unb64(entry.get("value"), "state value")
        try:
            ops = merkle.proof_ops_from_json(entry.get("proof_ops"))
            bucket = hashlib.sha256(key).digest()[:2]  # the state key's bucket (see merkle)
            merkle.verify_value(ops, state_root, merkle.keypath([bucket, key]), value)
        except merkle.ProofError as exc:
            raise HistoryError(f"state {key.decode()}: {exc}") from exc
        records[key] = decode_value(key, value)
    return records


def _check_story(
    batch: ValueBatch, holdings: dict[str, Holding], events: list[Event], trades: list[Trade]
) -> None:
    """The proven transactions and trades must explain the proven holdings exactly.

    Escrow for a sell order moves value within one holder (tradable to escrowed), so only
    issuance, transfers, trades and retirements change what each holder has."""
    tradable: dict[str, int] = defaultdict(int)
    retired: dict[str, int] = defaultdict(int)
    issued = False
    for event in sorted(events, key=lambda e: e.height):
        if event.code != Outcome.ok.value:
            continue
        action = event.action
        if isinstance(action, tx.IssueValue) and action.batch_id == batch.batch_id:
            if event.tx_hash != batch.issue_tx:
                raise HistoryError("the issuance in the history is not the batch's")
            tradable[batch.owner] += batch.co2_g
            issued = True
        elif isinstance(action, tx.TransferValue) and action.batch_id == batch.batch_id:
            tradable[event.signer] -= action.quantity_g
            tradable[action.recipient] += action.quantity_g
        elif isinstance(action, tx.RetireValue) and action.batch_id == batch.batch_id:
            tradable[event.signer] -= action.quantity_g
            retired[event.signer] += action.quantity_g
    if not issued:
        raise HistoryError("the history lacks the batch's issuance")
    tx_hashes = {e.tx_hash for e in events if e.code == Outcome.ok.value}
    for trade in trades:
        if trade.tx_hash not in tx_hashes:
            raise HistoryError(f"trade {trade.trade_seq} comes from no transaction in the history")
        for draw in trade.lots:
            if draw.batch_id == batch.batch_id:
                tradable[trade.seller] -= draw.quantity_g
                tradable[trade.buyer] += draw.quantity_g
    for holder in sorted(set(tradable) | set(retired) | set(holdings)):
        holding = holdings.get(holder, Holding(0, 0, 0))
        if (holding.tradable_g + holding.escrowed_g, holding.retired_g) != (
            tradable[holder],
            retired[holder],
        ):
            raise HistoryError(f"holdings of {holder} are not explained by the history")
