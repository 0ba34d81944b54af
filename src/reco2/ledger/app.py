"""The ledger application in the ABCI 2.0 call shape.

    check_tx(tx)                          -> outcome (the door: nothing is recorded on refusal)
    finalize_block(txs, height, time_ns)  -> per-transaction results, app hash (state root)
    commit()                              -> the finalized state becomes the committed state
    query(key)                            -> value and a proof against the committed state root

The embedded node and (later) a CometBFT ABCI server drive the same object. Nothing here reads
a clock, randomness, the network or files: height and time arrive as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reco2.ledger import merkle, tx
from reco2.ledger.block import TxResult
from reco2.ledger.genesis import Genesis
from reco2.ledger.kinds import (
    approve_device,
    cancel_order,
    cancel_sell_rule,
    deactivate_device,
    deposit_yen,
    issue_value,
    place_buy_order,
    place_sell_order,
    publish_emission_factors,
    register_device,
    register_participant,
    release_reading,
    retire_value,
    set_sell_rule,
    transfer_value,
    withdraw_yen,
)
from reco2.ledger.kinds.common import Context
from reco2.ledger.market import settlement
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, participant_key
from reco2.ledger.types import Participant


@dataclass(frozen=True, slots=True)
class Kind:
    stateless: Callable[[Any], Outcome]
    check: Callable[[State, Context, Any], Outcome]
    apply: Callable[[State, Context, Any], tuple[str, ...]]


def _kind(module: Any) -> Kind:
    return Kind(module.stateless, module.check, module.apply)


KINDS: dict[type[tx.Action], Kind] = {
    tx.RegisterParticipant: _kind(register_participant),
    tx.RegisterDevice: _kind(register_device),
    tx.ApproveDevice: _kind(approve_device),
    tx.DeactivateDevice: _kind(deactivate_device),
    tx.PublishEmissionFactors: _kind(publish_emission_factors),
    tx.IssueValue: _kind(issue_value),
    tx.TransferValue: _kind(transfer_value),
    tx.RetireValue: _kind(retire_value),
    tx.DepositYen: _kind(deposit_yen),
    tx.WithdrawYen: _kind(withdraw_yen),
    tx.PlaceSellOrder: _kind(place_sell_order),
    tx.PlaceBuyOrder: _kind(place_buy_order),
    tx.CancelOrder: _kind(cancel_order),
    tx.SetSellRule: _kind(set_sell_rule),
    tx.CancelSellRule: _kind(cancel_sell_rule),
    tx.ReleaseReading: _kind(release_reading),
}
assert {k.__struct_config__.tag for k in KINDS} == set(tx.KINDS), "every kind is dispatched"


@dataclass(frozen=True, slots=True)
class CheckTxResult:
    outcome: Outcome
    decoded: tx.DecodedTx | None = None

    @property
    def signer(self) -> str:
        assert self.decoded is not None
        return self.decoded.body.signer

    @property
    def nonce(self) -> int:
        assert self.decoded is not None
        return self.decoded.body.nonce


@dataclass(slots=True)
class FinalizeBlockResult:
    results: list[TxResult]
    app_hash: bytes
    #: state changes of the block, encoded (None = deleted), for the node's storage
    changes: dict[bytes, bytes | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueryResult:
    key: bytes
    value: bytes | None
    proof_ops: list[merkle.ProofOp]
    height: int
    state_root: bytes


def genesis_state(genesis: Genesis) -> State:
    state = State()
    for member in sorted(genesis.participants, key=lambda p: p.participant_id):
        state.put(
            participant_key(member.participant_id),
            Participant(
                participant_id=member.participant_id,
                public_key=member.public_key,
                roles=sorted(set(member.roles)),
                display_name=member.display_name,
                name_public=member.name_public,
                next_nonce=0,
                registered_height=0,
            ),
        )
    return state


class Application:
    """Deterministic ledger application: the same blocks give the same results and roots."""

    def __init__(
        self,
        genesis: Genesis,
        stored: Sequence[tuple[bytes, bytes]] | None = None,
        height: int = 0,
        *,
        with_commitment: bool = True,
    ) -> None:
        """``with_commitment=False``: the state root is kept elsewhere (the embedded node's
        writer process seals blocks); only :meth:`deliver_block` may then be used, and the
        caller feeds each block's changes to a commitment of its own."""
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.max_tx_bytes = genesis.max_tx_bytes
        self._commitment = merkle.BucketedCommitment() if with_commitment else None
        if stored is None:
            self.state = genesis_state(genesis)
            # The commitment starts empty, so applying the genesis records gives bulk_load's
            # root at the cost of the records alone, not a rebuild of every bucket.
            changes = self.state.take_changes()
            if self._commitment is not None:
                self._commitment.apply(changes)
        else:
            self.state = State()
            self.state.load(stored)
            if self._commitment is not None:
                self._commitment.bulk_load(stored)
        self.height = height
        self.finalized_height = height

    @property
    def commitment(self) -> merkle.BucketedCommitment:
        assert self._commitment is not None, "this application keeps no state commitment"
        return self._commitment

    # ---- the door ---------------------------------------------------------------------
    def check_tx(self, raw: bytes, verify: bool = True) -> CheckTxResult:
        """Everything that can be checked before ordering: encoding, chain, signature, signer,
        nonce not already used, and the action's own fields. A refusal here is final for
        these bytes; an accepted transaction may still fail against state in its block."""
        decoded = tx.decode(raw, self.max_tx_bytes)
        if isinstance(decoded, Outcome):
            return CheckTxResult(decoded)
        return self.check_decoded(decoded, verify)

    def check_decoded(self, decoded: tx.DecodedTx, verify: bool = True) -> CheckTxResult:
        """check_tx after decoding; ``verify=False`` when the signature was already checked."""
        outcome = self._check_envelope(decoded, verify)
        if outcome is Outcome.ok:
            signer = self.state.participant(decoded.body.signer)
            assert signer is not None
            if decoded.body.nonce < signer.next_nonce:
                outcome = Outcome.nonce_reused
            else:
                outcome = KINDS[type(decoded.body.action)].stateless(decoded.body.action)
        return CheckTxResult(outcome, decoded)

    def _check_envelope(self, decoded: tx.DecodedTx, verify: bool) -> Outcome:
        if decoded.body.chain_id != self.chain_id:
            return Outcome.wrong_chain
        if verify and not tx.verify_signature(decoded.envelope):
            return Outcome.bad_signature
        signer = self.state.participant(decoded.body.signer)
        if signer is None:
            return Outcome.unknown_signer
        if signer.public_key != decoded.envelope.public_key:
            return Outcome.signer_key_mismatch
        return Outcome.ok

    # ---- blocks -----------------------------------------------------------------------
    def finalize_block(
        self,
        txs: Sequence[bytes],
        height: int,
        time_ns: int,
        checked: Mapping[bytes, tx.DecodedTx] | None = None,
    ) -> FinalizeBlockResult:
        """Apply a block's transactions in order. ``checked`` maps the raw bytes of
        transactions this process already decoded and whose signatures it verified (check_tx
        or a parallel verifier) to their decoding; the others are decoded and verified here."""
        results, changes = self.deliver_block(txs, height, time_ns, checked)
        app_hash = self.commitment.apply(changes)
        return FinalizeBlockResult(results, app_hash, changes)

    def deliver_block(
        self,
        txs: Sequence[bytes],
        height: int,
        time_ns: int,
        checked: Mapping[bytes, tx.DecodedTx] | None = None,
    ) -> tuple[list[TxResult], dict[bytes, bytes | None]]:
        """finalize_block without the state root: the results and the encoded changes, which
        the caller commits to (the embedded node does it on its writer process); then
        :meth:`commit_delivered` makes it the committed block."""
        assert height == self.height + 1, f"block {height} after {self.height}"
        # Orders whose time has come expire before the block's transactions see the book.
        settlement.expire(self.state, time_ns)
        known = checked if checked is not None else {}
        results = [self._deliver(raw, height, time_ns, known) for raw in txs]
        changes = self.state.take_changes()
        self.finalized_height = height
        return results, changes

    def _deliver(
        self, raw: bytes, height: int, time_ns: int, checked: Mapping[bytes, tx.DecodedTx]
    ) -> TxResult:
        decoded = checked.get(raw)
        verify = decoded is None
        if decoded is None:
            fresh = tx.decode(raw, self.max_tx_bytes)
            if isinstance(fresh, Outcome):
                return TxResult(fresh.value, [])
            decoded = fresh
        outcome = self._check_envelope(decoded, verify)
        if outcome is not Outcome.ok:
            return TxResult(outcome.value, [])
        body = decoded.body
        signer = self.state.participant(body.signer)
        assert signer is not None
        if body.nonce < signer.next_nonce:
            return TxResult(Outcome.nonce_reused.value, [])
        if body.nonce > signer.next_nonce:
            return TxResult(Outcome.nonce_too_high.value, [])
        # The nonce is used from here on, whatever the action's outcome: the signed bytes
        # are in the chain and can never be replayed.
        signer.next_nonce += 1
        self.state.touch(participant_key(body.signer))
        kind = KINDS[type(body.action)]
        outcome = kind.stateless(body.action)
        if outcome is not Outcome.ok:
            return TxResult(outcome.value, [])
        ctx = Context(height, time_ns, decoded.hash, signer)
        outcome = kind.check(self.state, ctx, body.action)
        if outcome is not Outcome.ok:
            return TxResult(outcome.value, [])
        return TxResult(Outcome.ok.value, list(kind.apply(self.state, ctx, body.action)))

    def commit_delivered(self) -> None:
        """Make the delivered block the committed one (its root is kept by the caller)."""
        assert self.finalized_height == self.height + 1, "commit follows finalize_block"
        self.height = self.finalized_height

    def commit(self) -> bytes:
        """Make the finalized block the committed one; returns the committed state root."""
        self.commit_delivered()
        return self.commitment.root()

    # ---- reads ------------------------------------------------------------------------
    def state_root(self) -> bytes:
        return self.commitment.root()

    def query(self, key: bytes) -> QueryResult:
        value = self.commitment.get(key)
        ops = self.commitment.prove(key) if value is not None else []
        return QueryResult(key, value, ops, self.finalized_height, self.commitment.root())
