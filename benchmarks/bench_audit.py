"""`reco2 audit` over a chain of 100,000 transactions, as a ratio to a bare PyNaCl verify loop
over the same signatures. Target: >= 0.6.

The audit re-verifies every signature (on worker processes), every hash link, transaction and
result Merkle root, replays every block to recompute every state root, and compares the stored
state rows with the replay.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import CHAIN_ID, new_world, seed, signed_messages, verify_loop_s
from reco2.ledger import tx
from reco2.node.audit import audit
from reco2.node.store import Store


def build_chain(data_dir: Path, total_txs: int, holders: int) -> None:
    node, nonces = new_world(data_dir, holders, value_g_each=total_txs)
    try:
        names = sorted(n for n in nonces if n.startswith("h"))
        raws: list[bytes] = []
        i = 0
        while node.store.tx_count() + len(raws) < total_txs:
            name = names[i % len(names)]
            to = names[(i + 1 + (i // len(names)) % (len(names) - 1)) % len(names)]
            nonce = nonces[name]
            nonces[name] = nonce + 1
            raws.append(
                tx.sign(
                    tx.TxBody(CHAIN_ID, name, nonce, tx.TransferValue(f"b-{name}", to, 1)),
                    seed(name),
                )
            )
            i += 1
            if len(raws) == 10_000:
                assert all(r.ok for r in node.submit_batch(raws))
                raws = []
        if raws:
            assert all(r.ok for r in node.submit_batch(raws))
    finally:
        node.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--txs", type=int, default=100_000)
    parser.add_argument("--holders", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reco2-bench-audit-") as tmp:
        data_dir = Path(tmp)
        start = time.perf_counter()
        build_chain(data_dir, args.txs, args.holders)
        store = Store(data_dir, readonly=True)
        raws = [s.raw for block in store.iter_blocks() for s in block.txs]
        store.close()
        print(f"built {len(raws)} transactions in {time.perf_counter() - start:.1f} s")
        messages = signed_messages(raws)
        ratios = []
        for round_ in range(args.rounds):
            baseline_s = verify_loop_s(messages)
            start = time.perf_counter()
            report = audit(data_dir)
            audit_s = time.perf_counter() - start
            assert report.ok, report.problems[:5]
            assert report.txs == len(raws)
            ratio = baseline_s / audit_s
            ratios.append(ratio)
            print(
                f"round {round_}: audit_tx_per_s={len(raws) / audit_s:.0f} "
                f"verify_loop_per_s={len(raws) / baseline_s:.0f} ratio={ratio:.2f} "
                f"(blocks={report.blocks})"
            )
    print(f"audit_ratio={max(ratios):.2f} (target >= 0.6)")


if __name__ == "__main__":
    main()
