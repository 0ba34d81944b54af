"""The embedded node: a sequencer that cuts blocks every N ms or M transactions, drives the
ledger application through its ABCI-shaped calls and commits each block to SQLite.

Durability: a transaction's receipt is given only after its block is committed to disk (WAL,
synchronous=FULL), so an acknowledged transaction survives a kill -9 at any moment. On start
the node loads the committed state and refuses to run unless its root equals the stored root
of the last block (``reco2 audit`` replays from genesis for the full check).
"""

from __future__ import annotations

import fcntl
import gc
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec

from reco2.ledger import block, tx
from reco2.ledger.app import Application, CheckTxResult
from reco2.ledger.block import BlockHeader, TxResult
from reco2.ledger.genesis import Genesis, genesis_hash, to_json
from reco2.ledger.outcome import Outcome
from reco2.node.store import BlockWrite, Store
from reco2.node.verify import Verifier
from reco2.node.writer import (
    Proved,
    Sealed,
    Sealer,
    SealerProcess,
    Unsealed,
    WriterError,
    wait_for_stale_writer,
)

LOCK_FILE = "node.lock"
ADMIT_CHUNK = 256
#: Event tags kept in the storage's history index (the rest stay in the results).
INDEXED_EVENTS = ("batch/", "device/", "participant/", "retirement/")
#: Every this many blocks the writer runs one full garbage collection (see ``_settle_gc``).
FULL_GC_EVERY_BLOCKS = 5_000


class NodeError(RuntimeError):
    """The node cannot start or go on (corrupt storage, a second node on the same data)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What happened to a submitted transaction."""

    tx_hash: bytes
    code: str
    height: int | None = None  # None: refused at the door, never in a block
    index: int | None = None
    events: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == Outcome.ok.value


def create_chain(data_dir: Path, genesis: Genesis) -> bytes:
    """Write genesis and block 0 into a new data directory; returns block 0's hash."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir)
    try:
        if store.last_height() is not None:
            raise NodeError(f"{data_dir} already holds a chain")
        app = Application(genesis)
        changes = dict(app.state.encoded_items())
        header = BlockHeader(
            chain_id=genesis.chain_id,
            height=0,
            time_ns=genesis.genesis_time_ns,
            prev_hash=genesis_hash(genesis),
            tx_count=0,
            tx_root=block.tx_root([]),
            results_root=block.results_root([]),
            state_root=app.state_root(),
        )
        block_hash = block.header_hash(header)
        store.write_genesis(
            to_json(genesis),
            BlockWrite(0, block_hash, block.encode_header(header), [], changes, []),
        )
        return block_hash
    finally:
        store.close()


class _Sink(Protocol):
    """Where a transaction's receipt goes."""

    def done(self, receipt: Receipt) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class _FutureSink:
    __slots__ = ("future",)

    def __init__(self, future: Future[Receipt]) -> None:
        self.future = future

    def done(self, receipt: Receipt) -> None:
        self.future.set_result(receipt)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class _BatchSink:
    """Receipts of a whole batch, with one event instead of a future per transaction."""

    def __init__(self, size: int) -> None:
        self.receipts: list[Receipt | None] = [None] * size
        self.left = size
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._event = threading.Event()
        if size == 0:
            self._event.set()

    def slot(self, index: int) -> _Slot:
        return _Slot(self, index)

    def put(self, index: int, receipt: Receipt) -> None:
        with self._lock:
            self.receipts[index] = receipt
            self.left -= 1
            if self.left == 0:
                self._event.set()

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self._event.set()

    def wait(self) -> list[Receipt]:
        self._event.wait()
        if self.error is not None:
            raise self.error
        return [r for r in self.receipts if r is not None]


class _Slot:
    __slots__ = ("batch", "index")

    def __init__(self, batch: _BatchSink, index: int) -> None:
        self.batch = batch
        self.index = index

    def done(self, receipt: Receipt) -> None:
        self.batch.put(self.index, receipt)

    def fail(self, exc: BaseException) -> None:
        self.batch.fail(exc)


@dataclass(slots=True)
class _Pending:
    decoded: tx.DecodedTx  # decoded and signature-verified at the door
    sink: _Sink

    @property
    def raw(self) -> bytes:
        return self.decoded.raw

    @property
    def hash(self) -> bytes:
        return self.decoded.hash

    @property
    def signer(self) -> str:
        return self.decoded.body.signer


class Node:
    """One process, one writer. ``submit`` may be called from many threads."""

    def __init__(
        self,
        data_dir: Path,
        *,
        block_interval_ms: int = 20,
        max_block_txs: int = 2_000,
        clock_ns: Callable[[], int] = time.time_ns,
        verify_workers: int = 2,
        writer_process: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.block_interval_ms = block_interval_ms
        self.max_block_txs = max_block_txs
        self._clock_ns = clock_ns
        self._lock_fd = os.open(data_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise NodeError(f"another node is running on {data_dir}") from exc
        try:
            wait_for_stale_writer(data_dir)  # a killed node's writer may still be finishing
            self._open_chain(data_dir, writer_process)
        except WriterError as exc:
            os.close(self._lock_fd)
            raise NodeError(str(exc)) from exc
        except BaseException:
            os.close(self._lock_fd)  # leave the data directory free for the next try
            raise
        # The loaded state is long-lived: keep the cyclic garbage collector from walking it
        # on every full collection (it would cost more than the block's own work).
        gc.collect()
        gc.freeze()
        self._app_lock = threading.Lock()
        self._cond = threading.Condition()
        self._mempool: list[_Pending] = []
        self._pending_nonce: dict[str, int] = {}
        self._running = False
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._writes: queue.Queue[_Finalized | None] = queue.Queue(maxsize=2)
        self._durable = threading.Condition()
        self._verifier = Verifier(verify_workers)
        self._block_listeners: list[Callable[[int], None]] = []

    def _open_chain(self, data_dir: Path, writer_process: bool) -> None:
        """Load the committed state and check it against the last block's state root.

        With ``writer_process`` the state commitment lives on the sealer process (which loads
        and checks it itself); otherwise here, beside the application."""
        self.store = Store(data_dir)
        try:
            self.genesis = self.store.genesis()
            last = self.store.last_height()
            if last is None:
                raise NodeError(f"{data_dir} has no blocks: run `reco2 init` first")
            stored_hash, header_bytes = self._header(last)
            try:
                header = block.decode_header(header_bytes)
                self.app = Application(
                    self.genesis,
                    self.store.state_items(),
                    height=last,
                    with_commitment=not writer_process,
                )
            except (
                msgspec.DecodeError,
                msgspec.ValidationError,
                UnicodeDecodeError,
                KeyError,
            ) as exc:
                raise NodeError(
                    f"stored block {last} or state is unreadable ({exc}): "
                    "the data directory is damaged (run `reco2 audit`)"
                ) from exc
            self._sealer: Sealer | SealerProcess
            if writer_process:
                try:
                    self._sealer = SealerProcess(data_dir)
                except WriterError as exc:
                    raise NodeError(str(exc)) from exc
            else:
                if self.app.state_root() != header.state_root:
                    raise NodeError(
                        f"stored state does not match block {last}'s state root: "
                        "the data directory is damaged (run `reco2 audit`)"
                    )
                self._sealer = Sealer(
                    self.store, self.app.commitment, self.genesis.chain_id, last, stored_hash
                )
        except BaseException:
            self.store.close()
            raise
        self.last_time_ns = header.time_ns
        self.durable_height = last
        self.durable_hash = stored_hash
        self.durable_state_root = header.state_root

    def _header(self, height: int) -> tuple[bytes, bytes]:
        found = self.store.header(height)
        if found is None:
            raise NodeError(f"block {height} is missing")
        return found

    # ---- lifecycle --------------------------------------------------------------------
    def start(self) -> Node:
        self._running = True
        self._writer = threading.Thread(target=self._write_loop, name="writer", daemon=True)
        self._writer.start()
        self._thread = threading.Thread(target=self._run, name="sequencer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self._writer is not None:
            self._writer.join()
        if isinstance(self._sealer, SealerProcess):
            self._sealer.close()
        self._verifier.close()
        self.store.close()
        os.close(self._lock_fd)

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def on_block(self, listener: Callable[[int], None]) -> None:
        self._block_listeners.append(listener)

    # ---- submission -------------------------------------------------------------------
    # Admission needs no lock on the application: the checks read the signer's record (dict
    # reads are atomic) and the nonce bookkeeping lives under the mempool's lock, so the
    # door stays open while the sequencer applies a block.
    def submit(self, raw: bytes) -> Future[Receipt]:
        """Check a transaction and queue it; the future resolves when its block is on disk."""
        decoded = tx.decode(raw, self.app.max_tx_bytes)
        if isinstance(decoded, Outcome):
            return _done(Receipt(tx.tx_hash(raw), decoded.value))
        if not tx.verify_signature(decoded.envelope):
            return _done(Receipt(decoded.hash, Outcome.bad_signature.value))
        future: Future[Receipt] = Future()
        self._admit([(decoded, _FutureSink(future))])
        return future

    def submit_many(self, raws: Sequence[bytes]) -> list[Future[Receipt]]:
        """Submit many transactions; each future resolves when its block is on disk."""
        futures: list[Future[Receipt]] = [Future() for _ in raws]
        self._submit_verified(raws, [_FutureSink(f) for f in futures])
        return futures

    def submit_batch(self, raws: Sequence[bytes]) -> list[Receipt]:
        """Submit many transactions and wait until every one has its receipt."""
        batch = _BatchSink(len(raws))
        self._submit_verified(raws, [batch.slot(i) for i in range(len(raws))])
        return batch.wait()

    def _submit_verified(self, raws: Sequence[bytes], sinks: Sequence[_Sink]) -> None:
        """Signatures are verified on the worker processes, chunk by chunk, while earlier
        chunks are admitted and earlier blocks applied and written."""
        chunk: list[tuple[tx.DecodedTx, _Sink]] = []
        for raw, verdict, sink in zip(raws, self._verifier.verify(raws), sinks, strict=True):
            decoded = tx.decode(raw, self.app.max_tx_bytes)
            if isinstance(decoded, Outcome):
                sink.done(Receipt(tx.tx_hash(raw), decoded.value))
            elif not verdict:
                sink.done(Receipt(decoded.hash, Outcome.bad_signature.value))
            else:
                chunk.append((decoded, sink))
                if len(chunk) >= ADMIT_CHUNK:
                    self._admit(chunk)
                    chunk = []
        if chunk:
            self._admit(chunk)

    def _admit(self, items: Sequence[tuple[tx.DecodedTx, _Sink]]) -> None:
        if self._failed is not None:
            raise NodeError(f"the node stopped after a storage failure: {self._failed}")
        admitted: list[tuple[tx.DecodedTx, _Sink]] = []
        for decoded, sink in items:
            checked: CheckTxResult = self.app.check_decoded(decoded, verify=False)
            if checked.outcome is Outcome.ok:
                admitted.append((decoded, sink))
            else:
                sink.done(Receipt(decoded.hash, checked.outcome.value))
        with self._cond:
            for decoded, sink in admitted:
                signer = decoded.body.signer
                participant = self.app.state.participant(signer)
                assert participant is not None
                expected = self._pending_nonce.get(signer, participant.next_nonce)
                if decoded.body.nonce < expected:
                    sink.done(Receipt(decoded.hash, Outcome.nonce_reused.value))
                elif decoded.body.nonce > expected:
                    sink.done(Receipt(decoded.hash, Outcome.nonce_too_high.value))
                else:
                    self._pending_nonce[signer] = expected + 1
                    self._mempool.append(_Pending(decoded, sink))
            if len(self._mempool) >= self.max_block_txs:
                self._cond.notify_all()

    def next_nonce(self, participant_id: str) -> int:
        """The nonce a new transaction of this participant should carry (pending included)."""
        with self._cond:
            participant = self.app.state.participant(participant_id)
            if participant is None:
                raise KeyError(participant_id)
            return self._pending_nonce.get(participant_id, participant.next_nonce)

    def commit_now(self, raws: Sequence[bytes]) -> list[Receipt]:
        """Admit these transactions and commit exactly one block holding those admitted (for
        scenarios and tests that need exact block boundaries; the sequencer must not run)."""
        assert self._thread is None, "commit_now is for a node without a running sequencer"
        futures = [self.submit(raw) for raw in raws]
        with self._cond:
            batch = self._mempool
            self._mempool = []
        if batch:
            self._persist(self._finalize(batch))
        return [f.result() for f in futures]

    # ---- the sequencer ----------------------------------------------------------------
    # Two stages: the sequencer thread applies block N+1 while the writer thread puts block N
    # on disk (SQLite releases the GIL while it writes and syncs). Receipts are given by the
    # writer, after the block is durable; if a write fails the node stops taking work.
    def _run(self) -> None:
        interval_s = self.block_interval_ms / 1_000
        try:
            while True:
                with self._cond:
                    if self._running and len(self._mempool) < self.max_block_txs:
                        self._cond.wait(interval_s)
                    if not self._mempool:
                        if not self._running or self._failed is not None:
                            return
                        continue
                    batch = self._mempool[: self.max_block_txs]
                    del self._mempool[: self.max_block_txs]
                self._writes.put(self._finalize(batch))
        finally:
            self._writes.put(None)

    def _write_loop(self) -> None:
        while (item := self._writes.get()) is not None:
            if self._failed is not None:
                _fail(item, self._failed)
                continue
            try:
                self._persist(item)
            except BaseException as exc:  # storage failure: stop taking work, fail loudly
                self._failed = exc
                _fail(item, exc)
                with self._durable:
                    self._durable.notify_all()
                with self._cond:
                    self._running = False
                    self._cond.notify_all()

    def _finalize(self, batch: list[_Pending]) -> _Finalized:
        """Apply a block's transactions in memory (the sequencer's stage); the state root,
        header and write follow on the writer's stage."""
        with self._app_lock:
            height = self.app.height + 1
            time_ns = max(self._clock_ns(), self.last_time_ns + 1)
            raws = [p.raw for p in batch]
            checked = {p.raw: p.decoded for p in batch}
            results, changes = self.app.deliver_block(raws, height, time_ns, checked)
            self.app.commit_delivered()
            self.last_time_ns = time_ns
        with self._cond:  # nonces the state now knows need no bookkeeping of their own
            for signer in sorted({p.signer for p in batch}):
                participant = self.app.state.participant(signer)
                pending = self._pending_nonce.get(signer)
                if participant and pending is not None and pending <= participant.next_nonce:
                    del self._pending_nonce[signer]
        events = [
            (tag, i)
            for i, r in enumerate(results)
            for tag in r.events
            if tag.startswith(INDEXED_EVENTS)
        ]
        txs = [(p.hash, p.raw, block.encode_result(r)) for p, r in zip(batch, results, strict=True)]
        return _Finalized(Unsealed(height, time_ns, txs, changes, events), batch, results)

    def _persist(self, item: _Finalized) -> None:
        """Put a finalized block on disk, then answer its transactions (the writer's stage)."""
        sealed: Sealed = self._sealer.seal(item.unsealed)
        height = sealed.height
        with self._durable:
            self.durable_height = height
            self.durable_hash = sealed.hash
            self.durable_state_root = sealed.state_root
            self._durable.notify_all()
        for i, (pending_tx, result) in enumerate(zip(item.batch, item.results, strict=True)):
            pending_tx.sink.done(_receipt(pending_tx.hash, result, height, i))
        for listener in self._block_listeners:
            listener(height)
        _settle_gc(height)

    # ---- reads ------------------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.app.height

    def query(self, key: bytes) -> Proved:
        """A value with its proof against the state root of the last block on disk.

        The sequencer may have applied blocks the writer has not sealed yet; the answer never
        comes from those (a crash could still lose them)."""
        if self._failed is not None:
            raise NodeError(f"the node stopped after a storage failure: {self._failed}")
        if isinstance(self._sealer, SealerProcess):
            try:
                return self._sealer.prove(key)
            except WriterError as exc:
                raise NodeError(str(exc)) from exc
        with self._app_lock:  # hold the sequencer back and wait for the writer
            with self._durable:
                while self.durable_height < self.app.height and self._failed is None:
                    self._durable.wait(1.0)
            if self._failed is not None:
                raise NodeError(f"the node stopped after a storage failure: {self._failed}")
            return self._sealer.prove(key)

    def state_root(self) -> tuple[int, bytes]:
        """(height, state root) of the last block on disk, once every applied block is."""
        with self._durable:
            while self.durable_height < self.app.height and self._failed is None:
                self._durable.wait(1.0)
            return self.durable_height, self.durable_state_root


@dataclass(slots=True)
class _Finalized:
    unsealed: Unsealed
    batch: list[_Pending]
    results: list[TxResult]


def _settle_gc(height: int) -> None:
    """Move what survived this block (mostly new ledger records and their lists) out of the
    cyclic collector's reach.

    The state only grows, and a full collection walks all of it: measured on the orders
    benchmark, those walks cost 30-90 us per transaction and grew with every round. Frozen
    objects are still freed by reference counting; only garbage cycles among them would wait,
    so a full collection still runs every ``FULL_GC_EVERY_BLOCKS`` blocks."""
    if height % FULL_GC_EVERY_BLOCKS == 0:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def _fail(item: _Finalized, exc: BaseException) -> None:
    for pending in item.batch:
        pending.sink.fail(exc)


def _receipt(tx_hash: bytes, result: TxResult, height: int, index: int) -> Receipt:
    return Receipt(tx_hash, result.code, height, index, tuple(result.events))


def _done(receipt: Receipt) -> Future[Receipt]:
    future: Future[Receipt] = Future()
    future.set_result(receipt)
    return future
