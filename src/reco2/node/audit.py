"""Audit of a data directory: re-verify every signature, hash link, Merkle root and state
root from genesis, then the stored state rows against the replayed state.

Signatures are verified on worker processes (see node.verify) ahead of the replay,
which runs the same ledger application the node runs.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from reco2.ledger import block, tx
from reco2.ledger.app import Application
from reco2.ledger.genesis import genesis_hash
from reco2.ledger.outcome import Outcome
from reco2.node.store import Store, StoredBlock
from reco2.node.verify import Verifier

GROUP_TXS = 512
GROUP_BLOCKS = 64
AHEAD_GROUPS = 8


@dataclass(frozen=True, slots=True)
class Problem:
    what: str
    height: int | None = None
    tx_index: int | None = None
    key: bytes | None = None

    def __str__(self) -> str:
        where = []
        if self.height is not None:
            where.append(f"height {self.height}")
        if self.tx_index is not None:
            where.append(f"tx {self.tx_index}")
        if self.key is not None:
            where.append(f"state row {self.key.decode(errors='replace')!r}")
        return f"{', '.join(where) or 'chain'}: {self.what}"


@dataclass(slots=True)
class AuditReport:
    blocks: int = 0
    txs: int = 0
    state_rows: int = 0
    tip_hash: bytes = b""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _verified_blocks(store: Store, verifier: Verifier) -> Iterator[tuple[StoredBlock, list[bool]]]:
    """Blocks with per-transaction signature verdicts. Blocks are grouped so each task on the
    worker processes holds a few hundred signatures, and several groups run ahead of the
    replay."""
    pending: list[tuple[list[StoredBlock], Future[list[bool]]]] = []
    group: list[StoredBlock] = []
    group_txs = 0

    def flush() -> None:
        nonlocal group, group_txs
        if group:
            raws = [s.raw for item in group for s in item.txs]
            pending.append((group, verifier.submit(raws)))
            group, group_txs = [], 0

    def drain(keep: int) -> Iterator[tuple[StoredBlock, list[bool]]]:
        while len(pending) > keep:
            blocks, future = pending.pop(0)
            verdicts = future.result()
            at = 0
            for item in blocks:
                yield item, verdicts[at : at + len(item.txs)]
                at += len(item.txs)

    for item in store.iter_blocks():
        group.append(item)
        group_txs += len(item.txs)
        if group_txs >= GROUP_TXS or len(group) >= GROUP_BLOCKS:
            flush()
            yield from drain(AHEAD_GROUPS)
    flush()
    yield from drain(0)


def audit(
    data_dir: Path,
    *,
    trusted_hash: bytes | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Audit a data directory; the report lists every problem found (empty = all hold).

    Structural checks (hashes, links, roots, signatures) run over every block. The replay
    stops at the first block whose results or state root differ, since every later root
    depends on it; the stored state rows are compared only when the replay reached the tip.
    """
    store = Store(data_dir, readonly=True)
    report = AuditReport()
    verifier = Verifier(workers)
    try:
        genesis = store.genesis()
        app = Application(genesis)
        gc.freeze()  # the replayed state is long-lived; spare it the collector's full walks
        last = store.last_height()
        total = 0 if last is None else last
        expected_prev = genesis_hash(genesis)
        prev_time_ns = -1
        replaying = True
        for item, signatures in _verified_blocks(store, verifier):
            report.blocks += 1
            report.txs += len(item.txs)
            problems = report.problems
            try:
                header = block.decode_header(item.header)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                problems.append(Problem("block header is unreadable", item.height))
                replaying = False
                expected_prev = item.hash
                continue
            computed = block.header_hash(header)
            if computed != item.hash:
                problems.append(Problem("block header does not match its stored hash", item.height))
            elif block.encode_header(header) != item.header:
                problems.append(Problem("block header bytes are not canonical", item.height))
            if header.height != item.height:
                problems.append(Problem(f"header says height {header.height}", item.height))
            if header.prev_hash != expected_prev:
                problems.append(Problem("previous-block hash link is broken", item.height))
            if header.chain_id != genesis.chain_id:
                problems.append(Problem("header names another chain", item.height))
            if header.time_ns <= prev_time_ns:
                problems.append(Problem("block time does not increase", item.height))
            if header.tx_count != len(item.txs):
                problems.append(Problem("header's transaction count differs", item.height))
            hashes = []
            for stored, signature_ok in zip(item.txs, signatures, strict=True):
                actual = tx.tx_hash(stored.raw)
                hashes.append(actual)
                if actual != stored.hash:
                    problems.append(
                        Problem(
                            "transaction bytes do not match their hash", item.height, stored.index
                        )
                    )
                if not signature_ok:
                    problems.append(
                        Problem("transaction signature does not verify", item.height, stored.index)
                    )
            if block.tx_root(hashes) != header.tx_root:
                problems.append(Problem("transaction Merkle root differs", item.height))
            if block.results_root([s.result for s in item.txs]) != header.results_root:
                problems.append(Problem("results Merkle root differs", item.height))
            expected_prev = computed
            prev_time_ns = header.time_ns
            report.tip_hash = computed
            if replaying:
                replaying = _replay(app, item, header, signatures, problems)
            if progress is not None:
                progress(item.height, total)
        if trusted_hash is not None and report.tip_hash != trusted_hash:
            report.problems.append(Problem("tip hash differs from the trusted block hash"))
        if replaying:
            report.state_rows = _compare_state(app, store, report.problems)
        else:
            report.problems.append(Problem("stored state not compared: the replay diverged"))
    finally:
        verifier.close()
        store.close()
    return report


def _replay(
    app: Application,
    item: StoredBlock,
    header: block.BlockHeader,
    signatures: list[bool],
    problems: list[Problem],
) -> bool:
    if item.height == 0:
        if header.state_root != app.state_root():
            problems.append(Problem("genesis state root differs from the genesis file", 0))
            return False
        return True
    checked = {}
    for stored, ok in zip(item.txs, signatures, strict=True):
        decoded = tx.decode(stored.raw, app.max_tx_bytes) if ok else None
        if isinstance(decoded, tx.DecodedTx):
            checked[stored.raw] = decoded
    raws = [s.raw for s in item.txs]
    finalized = app.finalize_block(raws, item.height, header.time_ns, checked)
    app.commit()
    good = True
    for stored, result in zip(item.txs, finalized.results, strict=True):
        if block.encode_result(result) != stored.result:
            good = False
            problems.append(
                Problem(
                    f"replayed result {result.code!r} differs from the stored result",
                    item.height,
                    stored.index,
                )
            )
        elif result.code == Outcome.bad_signature.value:
            problems.append(
                Problem("block holds a badly signed transaction", item.height, stored.index)
            )
    if finalized.app_hash != header.state_root:
        good = False
        problems.append(Problem("replayed state root differs from the header's", item.height))
    return good


def _compare_state(app: Application, store: Store, problems: list[Problem]) -> int:
    replayed = dict(app.state.encoded_items())
    rows = 0
    for key, value in store.state_items():
        rows += 1
        expected = replayed.pop(key, None)
        if expected is None:
            problems.append(Problem("stored state has a row the replay does not", key=key))
        elif expected != value:
            problems.append(Problem("stored state row differs from the replay", key=key))
    for key in sorted(replayed):
        problems.append(Problem("stored state lacks a row of the replay", key=key))
    return rows
