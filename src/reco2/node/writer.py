"""Sealing and writing blocks: the state root, the header and the SQLite group commit.

The sequencer applies a block's transactions to the state (``Application.deliver_block``) and
hands the result here as an :class:`Unsealed` block. A :class:`Sealer` folds the block's
changes into the state commitment, builds the header (previous hash, tx root, results root,
state root), hashes it and writes the whole block in one SQLite transaction.

The embedded node runs its sealer on a process of its own (:class:`SealerProcess`). Why: the
node's Python work holds the GIL, and so do the state root (hashing in small pieces) and most
of an SQLite write in the ``sqlite3`` module (binding every row). In one process these stages
take turns with admission and block application; on a child process they run at the same time.
The child keeps its own copy of the state commitment (loaded from the stored state, and checked
against the last block's state root before it says it is ready), answers proof queries against
the last block on disk, and replies to each block once it is durable.

Safety across crashes: the child holds an exclusive lock on ``writer.lock`` for as long as it
lives. If the node is killed, its child may still be finishing a block, which it commits whole
or not at all (one SQLite transaction); a starting node waits for that lock before it reads the
stored state, so it never loads a state that a leftover writer is about to move past.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from reco2.ledger import block, merkle
from reco2.ledger.block import BlockHeader
from reco2.node.store import BlockWrite, Store

WRITER_LOCK_FILE = "writer.lock"
#: How long a starting node waits for a writer left behind by a killed node [s].
STALE_WRITER_WAIT_S = 60.0


class WriterError(RuntimeError):
    """Sealing or writing failed (or the writer process went away): the block is not on disk."""


@dataclass(slots=True)
class Unsealed:
    """A block the sequencer applied, before its state root and header exist."""

    height: int
    time_ns: int
    txs: Sequence[tuple[bytes, bytes, bytes]]  # (hash, raw, encoded result)
    changes: dict[bytes, bytes | None]
    events: Sequence[tuple[str, int]]  # (tag, tx index)


@dataclass(frozen=True, slots=True)
class Sealed:
    height: int
    hash: bytes
    state_root: bytes


@dataclass(frozen=True, slots=True)
class Proved:
    """A key's value and proof against the state root of the last block on disk."""

    key: bytes
    value: bytes | None
    proof_ops: list[merkle.ProofOp]
    height: int
    state_root: bytes


class Sealer:
    """Commitment + header + write, in the calling process."""

    def __init__(
        self,
        store: Store,
        commitment: merkle.BucketedCommitment,
        chain_id: str,
        height: int,
        last_hash: bytes,
    ) -> None:
        self.store = store
        self.commitment = commitment
        self.chain_id = chain_id
        self.height = height
        self.last_hash = last_hash

    def seal(self, unsealed: Unsealed) -> Sealed:
        assert unsealed.height == self.height + 1, f"block {unsealed.height} after {self.height}"
        state_root = self.commitment.apply(unsealed.changes)
        header = BlockHeader(
            chain_id=self.chain_id,
            height=unsealed.height,
            time_ns=unsealed.time_ns,
            prev_hash=self.last_hash,
            tx_count=len(unsealed.txs),
            tx_root=block.tx_root([h for h, _, _ in unsealed.txs]),
            results_root=block.results_root([r for _, _, r in unsealed.txs]),
            state_root=state_root,
        )
        block_hash = block.header_hash(header)
        self.store.write_block(
            BlockWrite(
                unsealed.height,
                block_hash,
                block.encode_header(header),
                unsealed.txs,
                unsealed.changes,
                unsealed.events,
            )
        )
        self.height = unsealed.height
        self.last_hash = block_hash
        return Sealed(unsealed.height, block_hash, state_root)

    def prove(self, key: bytes) -> Proved:
        value = self.commitment.get(key)
        ops = self.commitment.prove(key) if value is not None else []
        return Proved(key, value, ops, self.height, self.commitment.root())


def wait_for_stale_writer(data_dir: Path, timeout_s: float = STALE_WRITER_WAIT_S) -> None:
    """Return once no writer process holds the data directory (raise after ``timeout_s``)."""
    fd = os.open(data_dir / WRITER_LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WriterError(
                        f"a writer process still holds {data_dir / WRITER_LOCK_FILE}"
                    ) from None
                time.sleep(0.02)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
    finally:
        os.close(fd)


def _open_sealer(store: Store) -> Sealer:
    """Load the stored state's commitment and check it against the last block's root."""
    genesis = store.genesis()
    height = store.last_height()
    if height is None:
        raise WriterError("the data directory has no blocks")
    found = store.header(height)
    if found is None:
        raise WriterError(f"block {height} is missing")
    last_hash, header_bytes = found
    header = block.decode_header(header_bytes)
    commitment = merkle.BucketedCommitment()
    commitment.bulk_load(store.state_items())
    if commitment.root() != header.state_root:
        raise WriterError(
            f"stored state does not match block {height}'s state root: "
            "the data directory is damaged (run `reco2 audit`)"
        )
    return Sealer(store, commitment, genesis.chain_id, height, last_hash)


def _serve(data_dir: str, blocks: Connection, queries: Connection) -> None:
    """The child: take the lock, load and check the commitment, then seal each block it is
    sent and answer proof queries, until the node closes the block pipe."""
    fd = os.open(Path(data_dir) / WRITER_LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    store = Store(Path(data_dir))
    try:
        try:
            sealer = _open_sealer(store)
        except Exception as exc:
            blocks.send(("error", f"{exc}"))
            return
        blocks.send(("ready", (sealer.height, sealer.last_hash, sealer.commitment.root())))
        while True:
            for ready in wait([blocks, queries]):
                conn = blocks if ready is blocks else queries
                try:
                    message = conn.recv()
                except EOFError:
                    if conn is blocks:  # the node closed the pipe (or died): stop
                        return
                    continue
                if conn is queries:
                    queries.send(sealer.prove(message))
                    continue
                try:
                    sealed = sealer.seal(message)
                except Exception as exc:  # reported; the node stops taking work
                    blocks.send(("error", f"{type(exc).__name__}: {exc}"))
                    return
                blocks.send(("ok", sealed))
    finally:
        store.close()
        os.close(fd)


class SealerProcess:
    """The node's side of the sealer child."""

    def __init__(self, data_dir: Path) -> None:
        # forkserver: never fork a process that is running threads (the node may be).
        context = multiprocessing.get_context("forkserver")
        self._blocks, child_blocks = context.Pipe()
        self._queries, child_queries = context.Pipe()
        self._query_lock = threading.Lock()
        self._process = context.Process(
            target=_serve,
            args=(str(data_dir), child_blocks, child_queries),
            name="reco2-writer",
            daemon=True,
        )
        self._process.start()
        child_blocks.close()
        child_queries.close()
        ready = self._reply("ready")
        assert isinstance(ready, tuple)
        self.height: int = ready[0]
        self.last_hash: bytes = ready[1]
        self.state_root: bytes = ready[2]

    def _reply(self, wanted: str) -> object:
        try:
            status, detail = self._blocks.recv()
        except (EOFError, OSError) as exc:
            self._process.join(timeout=5)
            raise WriterError(f"the writer process went away ({exc!r})") from exc
        if status != wanted:
            self._process.join(timeout=5)
            raise WriterError(str(detail))
        return detail

    def seal(self, unsealed: Unsealed) -> Sealed:
        """Returns once the block is durable (raises :class:`WriterError` otherwise)."""
        try:
            self._blocks.send(unsealed)
        except (OSError, ValueError) as exc:
            raise WriterError(f"the writer process went away ({exc!r})") from exc
        sealed = self._reply("ok")
        assert isinstance(sealed, Sealed)
        return sealed

    def prove(self, key: bytes) -> Proved:
        with self._query_lock:
            try:
                self._queries.send(key)
                proved: Proved = self._queries.recv()
            except (EOFError, OSError, ValueError) as exc:
                raise WriterError(f"the writer process went away ({exc!r})") from exc
        return proved

    def close(self) -> None:
        self._blocks.close()
        self._queries.close()
        self._process.join(timeout=60)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
