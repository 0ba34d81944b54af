"""Signature verification on worker processes.

Ed25519 verification is the largest cost of a transaction. Threads do not help much in
CPython: libsodium releases the GIL during a verification, but each thread must win the GIL
back between transactions, and a busy sequencer thread makes them wait (the convoy effect).
Worker processes verify batches truly in parallel with the sequencer and the replay.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from reco2.ledger import tx

CHUNK = 512


def verify_chunk(raws: Sequence[bytes]) -> list[bool]:
    """Decode each envelope and check its signature (False when either fails)."""
    verdicts = []
    for raw in raws:
        decoded = tx.decode(raw, 1 << 30)
        verdicts.append(isinstance(decoded, tx.DecodedTx) and tx.verify_signature(decoded.envelope))
    return verdicts


class Verifier:
    """A pool of verifier processes (``workers=0``: verify in the calling thread)."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            # forkserver: never fork a process that is running threads (the node is).
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(workers, mp_context=context)

    def submit(self, raws: Sequence[bytes]) -> Future[list[bool]]:
        if self._pool is None:
            future: Future[list[bool]] = Future()
            future.set_result(verify_chunk(raws))
            return future
        return self._pool.submit(verify_chunk, list(raws))

    def verify(self, raws: Sequence[bytes]) -> Iterator[bool]:
        """Verdicts in order, verified in chunks across the workers."""
        futures = [self.submit(raws[i : i + CHUNK]) for i in range(0, len(raws), CHUNK)]
        for future in futures:
            yield from future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
