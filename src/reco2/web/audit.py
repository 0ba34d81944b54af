"""The audit trail of one batch, checked: readings -> issuance -> transfers and trades ->
retirement.

- Ledger: ``node.history.build`` gives the batch's history bundle (every transaction that
  touched it, proven into its block; the headers up to the tip; the batch's current records
  with state proofs). ``ledger.history.verify`` checks every link of it. Then each record's
  proof is checked again with ``merkle.verify_value`` against the state root the running node
  itself holds for that height (taken while the sequencer is held back), so the bundle is tied
  to this node's tip and not only to itself.
- Readings: the batch commits to its readings by their Merkle root. Where the readings store
  is present the root is recomputed from the stored accepted readings, and one reading's
  inclusion proof (``mrv.quantify.reading_proof``) and meter signature are checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reco2.ledger import block, merkle, tx
from reco2.ledger import history as ledger_history
from reco2.ledger.history import HistoryError, unb64
from reco2.ledger.state import State, decode_value
from reco2.ledger.types import Retirement, Trade, ValueBatch
from reco2.mrv.quantify import reading_proof, readings_root, verify_reading_proof
from reco2.mrv.readings import Reading, reading_id, verify_reading_signature
from reco2.mrv.store import decode_stored, open_store
from reco2.node import history as node_history
from reco2.node.embedded import Node

READINGS_FILE = "readings.sqlite"


@dataclass(slots=True)
class StateCheck:
    key: str
    record: Any
    checked: bool
    error: str = ""


@dataclass(slots=True)
class ReadingsCheck:
    present: bool  # a readings store is here
    readings: list[Reading] = field(default_factory=list)
    recomputed_root: bytes = b""
    root_matches: bool = False
    selected: int = 0
    proof: merkle.Proof | None = None
    proof_checked: bool = False
    signature_checked: bool = False

    @property
    def checked(self) -> bool:
        return self.root_matches and self.proof_checked and self.signature_checked


@dataclass(slots=True)
class Trail:
    batch: ValueBatch
    tip_height: int
    tip_hash: str
    live_root: bytes
    history_checked: bool
    history_error: str
    tip_matches_node: bool
    events: list[ledger_history.Event]
    states: list[StateCheck]
    readings: ReadingsCheck

    @property
    def ledger_checked(self) -> bool:
        return (
            self.history_checked
            and self.tip_matches_node
            and bool(self.states)
            and all(s.checked for s in self.states)
        )

    @property
    def checked(self) -> bool:
        """Everything that can be checked here was, and held."""
        return self.ledger_checked and (not self.readings.present or self.readings.checked)

    @property
    def trades(self) -> list[Trade]:
        return sorted(
            (s.record for s in self.states if isinstance(s.record, Trade)),
            key=lambda t: t.trade_seq,
        )

    @property
    def retirements(self) -> list[Retirement]:
        return [s.record for s in self.states if isinstance(s.record, Retirement)]


def state_keypath(key: bytes) -> str:
    """The key path of a state key: its bucket (first two bytes of SHA-256), then the key."""
    return merkle.keypath([hashlib.sha256(key).digest()[:2], key])


def check_states(bundle: dict[str, Any], root: bytes) -> list[StateCheck]:
    checks = []
    for entry in bundle.get("state", []):
        key = str(entry.get("key", "")).encode()
        try:
            value = unb64(entry.get("value"), "state value")
            ops = merkle.proof_ops_from_json(entry.get("proof_ops"))
            merkle.verify_value(ops, root, state_keypath(key), value)
        except (merkle.ProofError, HistoryError) as exc:
            checks.append(StateCheck(key.decode(), None, False, str(exc)))
            continue
        checks.append(StateCheck(key.decode(), decode_value(key, value), True))
    return checks


def check_readings(
    data_dir: Path, batch: ValueBatch, meter_key: bytes, index: int
) -> ReadingsCheck:
    path = data_dir / READINGS_FILE
    if not path.exists():
        return ReadingsCheck(present=False)
    store = open_store(f"sqlite://{path.absolute()}")
    try:
        readings = store.accepted_readings(
            batch.device_id, batch.period_start_s, batch.period_end_s
        )
        check = ReadingsCheck(present=True, readings=readings)
        check.recomputed_root = readings_root(readings)
        check.root_matches = check.recomputed_root == batch.readings_root
        if not readings:
            return check
        check.selected = min(max(index, 0), len(readings) - 1)
        chosen = readings[check.selected]
        check.proof = reading_proof(readings, check.selected)
        check.proof_checked = verify_reading_proof(chosen, check.proof, batch.readings_root)
        row = store.reading(reading_id(chosen.device_id, chosen.interval_start_s))
        if row is not None:
            envelope = decode_stored(row.raw).envelope
            check.signature_checked = verify_reading_signature(envelope, meter_key)
        return check
    finally:
        store.close()


def build_trail(node: Node, data_dir: Path, batch_id: str, reading_index: int = 0) -> Trail:
    """Raises LookupError for an unknown batch."""
    with node._app_lock:  # no new block while the bundle is built and the live root read
        height, live_root = node.state_root()
        bundle = node_history.build(data_dir, batch_id)
        state: State = node.app.state
        batch = state.batch(batch_id)
        device = state.device(batch.device_id) if batch is not None else None
    assert batch is not None  # build() raised LookupError otherwise
    tip = block.decode_header(unb64(bundle["headers"][-1], "header"))
    try:
        verified = ledger_history.verify(bundle, bytes.fromhex(bundle["tip_hash"]))
        events, ok, error = verified.events, True, ""
    except (HistoryError, ValueError) as exc:
        events, ok, error = [], False, str(exc)
    return Trail(
        batch=batch,
        tip_height=int(bundle["tip_height"]),
        tip_hash=str(bundle["tip_hash"]),
        live_root=live_root,
        history_checked=ok,
        history_error=error,
        tip_matches_node=tip.height == height and tip.state_root == live_root,
        events=sorted(events, key=lambda e: e.height),
        states=check_states(bundle, live_root),
        readings=check_readings(
            data_dir, batch, device.meter_public_key if device else b"", reading_index
        ),
    )


def describe(action: tx.Action) -> dict[str, Any]:
    """The fields of an action worth showing in the trail (amounts and ids, not keys)."""
    fields = {}
    for name in action.__struct_fields__:
        value = getattr(action, name)
        if isinstance(value, bytes):
            value = value.hex()[:16] + "…" if value else ""
        fields[name] = value
    return fields
