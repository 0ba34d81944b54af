"""Benchmark: cost of committing 1,000 changed keys to the bucketed state root.

Measures ``BucketedCommitment.apply`` (default 65,536 buckets) for a block of
1,000 changes -- 500 updates of existing keys and 500 new keys -- with 10,000
and with 1,000,000 keys already in state (bulk-loaded first, not timed).  The
two states are benchmarked in alternation so that background load on the
machine hits both alike.  Prints the median over the repetitions in
milliseconds and the big/small ratio (target: ratio <= 2.0, i.e. the commit
cost follows the number of changed keys, not the state size).

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/bench_state_root.py [--reps N]``
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import time
from collections.abc import Iterator

from reco2.ledger.merkle import BucketedCommitment

CHANGES_PER_BLOCK = 1_000
SMALL = 10_000
BIG = 1_000_000


def _key(i: int) -> bytes:
    """Deterministic 32-byte state key number ``i``."""
    return hashlib.sha256(b"key:" + i.to_bytes(8, "big")).digest()


def _value(i: int, version: int) -> bytes:
    """Deterministic 40-byte value of key ``i`` at ``version``."""
    return hashlib.sha256(b"val:" + i.to_bytes(8, "big")).digest() + version.to_bytes(8, "big")


def _initial(n: int) -> Iterator[tuple[bytes, bytes]]:
    for i in range(n):
        yield _key(i), _value(i, 0)


def _rss_mib() -> float:
    """Resident set size of this process in MiB (Linux), or -1 if unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return -1.0


class _Workload:
    """A loaded commitment plus a generator of 1,000-change blocks."""

    def __init__(self, n_state: int) -> None:
        self.n_state = n_state
        self.next_new = n_state
        self.commitment = BucketedCommitment()
        rss0 = _rss_mib()
        t0 = time.perf_counter()
        self.commitment.bulk_load(_initial(n_state))
        print(
            f"# n_state={n_state} bulk_load_s={time.perf_counter() - t0:.2f} "
            f"rss_added_mib={_rss_mib() - rss0:.0f}"
        )
        self.samples_ms: list[float] = []

    def block(self, rep: int) -> dict[bytes, bytes | None]:
        half = CHANGES_PER_BLOCK // 2
        changes: dict[bytes, bytes | None] = {}
        stride = max(1, self.n_state // half)
        for j in range(half):  # updates spread over the existing keys
            i = (j * stride + rep * 7919) % self.n_state
            changes[_key(i)] = _value(i, rep + 1)
        for _ in range(half):  # brand-new keys
            changes[_key(self.next_new)] = _value(self.next_new, 0)
            self.next_new += 1
        return changes

    def run_once(self, rep: int) -> None:
        changes = self.block(rep)
        # As timeit does: collect first and keep the cyclic GC out of the timed
        # call, so that one full collection of the heap does not land in a sample.
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            self.commitment.apply(changes)
            self.samples_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            gc.enable()

    def report(self) -> float:
        assert len(self.commitment) == self.next_new
        s = self.samples_ms
        print(f"# n_state={self.n_state} min_ms={min(s):.2f} max_ms={max(s):.2f} reps={len(s)}")
        return statistics.median(s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=31, help="timed repetitions per size")
    args = parser.parse_args()
    small = _Workload(SMALL)
    big = _Workload(BIG)
    for rep in range(args.reps):
        small.run_once(rep)
        big.run_once(rep)
    small_ms = small.report()
    big_ms = big.report()
    print(f"state_root_commit_10k_ms={small_ms:.2f}")
    print(f"state_root_commit_1m_ms={big_ms:.2f}")
    print(f"ratio={big_ms / small_ms:.2f}")


if __name__ == "__main__":
    main()
