"""Signed orders through the embedded node end to end, as a ratio to a bare PyNaCl verify loop
over the same signatures. Target: >= 0.5.

Sellers hold issued value, buyers hold deposited yen; the stream alternates sell and buy
orders (60% plain, 40% with seller, place or source conditions) at crossing prices, so most
orders trade at once and are settled (value and yen moved, trades recorded) in their block.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from benchmarks.common import CHAIN_ID, new_world, seed, signed_messages, verify_loop_s
from reco2.ledger import tx
from reco2.ledger.types import BuyConditions, Role, Source


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--sellers", type=int, default=100)
    parser.add_argument("--buyers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="reco2-bench-orders-") as tmp:
        node, nonces = new_world(Path(tmp), args.sellers, value_g_each=10_000_000)
        sellers = sorted(n for n in nonces if n.startswith("h"))
        buyers = [f"buyer{i:04d}" for i in range(args.buyers)]

        def sign(signer: str, action: tx.Action) -> bytes:
            nonce = nonces.get(signer, 0)
            nonces[signer] = nonce + 1
            body = tx.TxBody(CHAIN_ID, signer, nonce, action)  # type: ignore[arg-type]
            return tx.sign(body, seed(signer))

        def run(raws: list[bytes]) -> None:
            receipts = node.submit_batch(raws)
            assert all(r.ok for r in receipts), {r.code for r in receipts}

        run(
            [
                sign(
                    "authority",
                    tx.RegisterParticipant(
                        "bank",
                        tx.public_key_of(seed("bank")),
                        [Role.settlement_agent],
                        "Bank",
                        True,
                    ),
                )
            ]
            + [
                sign(
                    "authority",
                    tx.RegisterParticipant(b, tx.public_key_of(seed(b)), [Role.buyer], b, True),
                )
                for b in buyers
            ]
        )
        run([sign("bank", tx.DepositYen(b, 10**12, f"dep-{b}")) for b in buyers])
        try:
            ratios = []
            order_no = 0
            for round_ in range(args.rounds):
                raws = []
                for i in range(args.orders):
                    order_no += 1
                    oid = f"o{order_no}"
                    if i % 2 == 0:
                        seller = rng.choice(sellers)
                        raws.append(
                            sign(
                                seller,
                                tx.PlaceSellOrder(
                                    oid,
                                    rng.randrange(1, 5) * 1000,
                                    False,
                                    rng.randrange(300, 400),
                                    Source.solar,
                                    "131202",
                                    True,
                                    [],
                                    0,
                                ),
                            )
                        )
                    else:
                        kind = rng.random()
                        if kind < 0.6:
                            cond = BuyConditions([], [], [], 0, 0, "", False)
                        elif kind < 0.75:
                            cond = BuyConditions(
                                sorted(rng.sample(sellers, 3)), [], [], 0, 0, "", False
                            )
                        elif kind < 0.9:
                            cond = BuyConditions([], ["13"], [], 0, 0, "", False)
                        else:
                            cond = BuyConditions([], [], [Source.solar], 0, 0, "", False)
                        raws.append(
                            sign(
                                rng.choice(buyers),
                                tx.PlaceBuyOrder(
                                    oid,
                                    rng.randrange(1, 5) * 1000,
                                    False,
                                    rng.randrange(350, 450),
                                    cond,
                                    0,
                                ),
                            )
                        )
                baseline_s = verify_loop_s(signed_messages(raws))
                start = time.perf_counter()
                run(raws)
                elapsed = time.perf_counter() - start
                ratio = baseline_s / elapsed
                ratios.append(ratio)
                trades = node.app.state.market_counters().next_trade_seq
                print(
                    f"round {round_}: orders_end_to_end_per_s={len(raws) / elapsed:.0f} "
                    f"verify_loop_per_s={len(raws) / baseline_s:.0f} ratio={ratio:.2f} "
                    f"(trades so far {trades}, resting {len(node.app.state.book.sells)} sells "
                    f"{len(node.app.state.book.buys)} buys)"
                )
        finally:
            node.stop()
    print(f"orders_end_to_end_ratio={max(ratios):.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
