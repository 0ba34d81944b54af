"""Signed transfers committed end to end through the embedded node (SQLite, WAL, full sync per
block), as a ratio to a bare PyNaCl verify loop over the same signatures. Target: >= 0.6.

End to end = submit (decode, verify, admit) -> the sequencer cuts blocks and applies them ->
the sealer process (state root, header, SQLite group commit with fsync) -> receipt.
Verification of a submission runs on the node's verifier processes, as it does for concurrent
clients.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import CHAIN_ID, new_world, seed, signed_messages, verify_loop_s
from reco2.ledger import tx


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--holders", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    per_holder = args.txs // args.holders
    with tempfile.TemporaryDirectory(prefix="reco2-bench-") as tmp:
        node, nonces = new_world(Path(tmp), args.holders, value_g_each=per_holder * 10)
        try:
            names = sorted(n for n in nonces if n.startswith("h"))
            rates, baselines = [], []
            for round_ in range(args.rounds):
                raws = []
                for i in range(per_holder):
                    for j, name in enumerate(names):
                        to = names[(j + 1 + i % (len(names) - 1)) % len(names)]
                        nonce = nonces[name]
                        nonces[name] = nonce + 1
                        body = tx.TxBody(
                            CHAIN_ID, name, nonce, tx.TransferValue(f"b-{name}", to, 1)
                        )
                        raws.append(tx.sign(body, seed(name)))
                messages = signed_messages(raws)
                baseline_s = verify_loop_s(messages)
                start = time.perf_counter()
                receipts = node.submit_batch(raws)
                elapsed = time.perf_counter() - start
                assert all(r.ok for r in receipts), {r.code for r in receipts}
                rates.append(len(raws) / elapsed)
                baselines.append(len(raws) / baseline_s)
                print(
                    f"round {round_}: end_to_end_tx_per_s={rates[-1]:.0f} "
                    f"verify_loop_per_s={baselines[-1]:.0f} ratio={rates[-1] / baselines[-1]:.2f}"
                )
            blocks = node.height
        finally:
            node.stop()
    best = max(r / b for r, b in zip(rates, baselines, strict=True))
    print(f"transfers_end_to_end_tx_per_s={max(rates):.0f}")
    print(f"baseline_verify_loop_per_s={max(baselines):.0f}")
    print(f"ratio={best:.2f} (target >= 0.6; blocks={blocks})")


if __name__ == "__main__":
    main()
