"""Orders through the web API (/api/v1/orders/buy) on loopback, as a ratio to the node's
in-process rate on the market benchmark's order stream measured in the same run.

Web side: a `reco2 serve --demo` process; concurrent async clients, logged in as the demo buyer,
place buy orders for a fixed time (each waits for its receipt: the block is on disk). Every
acknowledged order must be on the ledger afterwards, and no request may fail.

In-process side: the stream of ``bench_orders`` (signed sell and buy orders at crossing prices,
40% with conditions) submitted to an embedded node with ``Node.submit_batch``.

    python -m benchmarks.bench_web --seconds 10 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.common import CHAIN_ID, new_world, seed
from reco2.ledger import tx
from reco2.ledger.types import BuyConditions, Role, Source

#: A place no demo sell order lists, so the load's buy orders rest on the book.
RESTING_PLACE = "47"


def inprocess_orders_per_s(orders: int, sellers: int = 50, buyers: int = 50) -> float:
    """Orders per second through an embedded node, as ``bench_orders`` submits them."""
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="reco2-bench-web-") as tmp:
        node, nonces = new_world(Path(tmp), sellers, value_g_each=10_000_000)
        try:
            holders = sorted(n for n in nonces if n.startswith("h"))
            buyer_ids = [f"buyer{i:04d}" for i in range(buyers)]

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
                    for b in buyer_ids
                ]
            )
            run([sign("bank", tx.DepositYen(b, 10**12, f"dep-{b}")) for b in buyer_ids])
            raws = []
            for i in range(orders):
                oid = f"o{i}"
                quantity = rng.randrange(1, 5) * 1000
                if i % 2 == 0:
                    action: tx.Action = tx.PlaceSellOrder(
                        oid,
                        quantity,
                        False,
                        rng.randrange(300, 400),
                        Source.solar,
                        "131202",
                        True,
                        [],
                        0,
                    )
                    raws.append(sign(rng.choice(holders), action))
                    continue
                kind = rng.random()
                if kind < 0.6:
                    cond = BuyConditions([], [], [], 0, 0, "", False)
                elif kind < 0.75:
                    cond = BuyConditions(sorted(rng.sample(holders, 3)), [], [], 0, 0, "", False)
                elif kind < 0.9:
                    cond = BuyConditions([], ["13"], [], 0, 0, "", False)
                else:
                    cond = BuyConditions([], [], [Source.solar], 0, 0, "", False)
                action = tx.PlaceBuyOrder(oid, quantity, False, rng.randrange(350, 450), cond, 0)
                raws.append(sign(rng.choice(buyer_ids), action))
            start = time.perf_counter()
            run(raws)
            return orders / (time.perf_counter() - start)
        finally:
            node.stop()


@dataclass
class LoadResult:
    seconds: float
    acknowledged: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return len(self.acknowledged) / self.seconds

    @property
    def p99_ms(self) -> float:
        if len(self.latencies_s) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_s, n=100)[98] * 1000

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_s) * 1000 if self.latencies_s else float("nan")


async def _load(api_url: str, headers: dict[str, str], clients: int, seconds: float) -> LoadResult:
    result = LoadResult(seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers, timeout=60, limits=limits
    ) as http:
        start = time.perf_counter()
        deadline = start + seconds

        async def client(number: int) -> None:
            sent = 0
            while time.perf_counter() < deadline:
                order_id = f"load-{number}-{sent}"
                sent += 1
                body = {
                    "order_id": order_id,
                    "quantity_g": 1000,
                    "price_sen_per_kg": 1,
                    "places": [RESTING_PLACE],
                }
                began = time.perf_counter()
                try:
                    response = await http.post("/orders/buy", json=body)
                except httpx.HTTPError as exc:
                    result.errors.append(f"{order_id}: {exc!r}")
                    continue
                result.latencies_s.append(time.perf_counter() - began)
                if response.status_code == 200 and response.json()["ok"]:
                    result.acknowledged.append(order_id)
                else:
                    result.errors.append(f"{order_id}: {response.status_code} {response.text}")

        await asyncio.gather(*(client(n) for n in range(clients)))
        result.seconds = time.perf_counter() - start
    return result


def web_load(api_url: str, headers: dict[str, str], clients: int, seconds: float) -> LoadResult:
    """Concurrent clients placing buy orders through the API for a fixed time."""
    return asyncio.run(_load(api_url, headers, clients, seconds))


def missing_orders(api_url: str, headers: dict[str, str], acknowledged: list[str]) -> list[str]:
    """Acknowledged orders that are not resting on the ledger's book as the buyer's."""
    with httpx.Client(base_url=api_url, headers=headers, timeout=60) as http:
        response = http.get("/me/orders")
        response.raise_for_status()
        resting = {o["order_id"] for o in response.json()["buy"]}
    return [o for o in acknowledged if o not in resting]


def report(result: LoadResult, inprocess_per_s: float) -> str:
    return (
        f"web_orders_per_s={result.per_s:.0f} over {result.seconds:.1f} s "
        f"({len(result.acknowledged)} acknowledged, {len(result.errors)} errors) "
        f"p50_ms={result.p50_ms:.1f} p99_ms={result.p99_ms:.1f} "
        f"inprocess_orders_per_s={inprocess_per_s:.0f} "
        f"web_to_inprocess_ratio={result.per_s / inprocess_per_s:.3f}"
    )


def main() -> None:
    from tests.e2e.web_api_client import ApiUser
    from tests.e2e.web_server import WebServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--inprocess-orders", type=int, default=10_000)
    args = parser.parse_args()
    inprocess = inprocess_orders_per_s(args.inprocess_orders)
    with tempfile.TemporaryDirectory(prefix="reco2-bench-web-") as tmp:
        server = WebServer(Path(tmp) / "data", Path(tmp) / "server.log").start()
        try:
            buyer = ApiUser(server, "buyer")
            api_url = f"{server.url}/api/v1"
            result = web_load(api_url, buyer.headers, args.clients, args.seconds)
            lost = missing_orders(api_url, buyer.headers, result.acknowledged)
            buyer.close()
        finally:
            server.stop()
    print(report(result, inprocess))
    print(f"lost_orders={len(lost)} errors={len(result.errors)}")


if __name__ == "__main__":
    main()
