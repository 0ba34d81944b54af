"""Orders through the web API (/api/v1/orders/buy) on loopback, as a ratio to the node's
in-process rate on the market benchmark's order stream measured in the same run.

Web side: a `reco2 serve --demo` process with several new buyers, each its own participant
with yen on deposit and its own web login; all of them at once, one client (connection and
session) each, place buy orders for a fixed time, each waiting for its receipt (the block is
on disk). Every acknowledged order must be on the ledger on disk afterwards, as its buyer's,
and no request may fail.

In-process side: the stream of ``bench_orders`` (signed sell and buy orders at crossing prices,
40% with conditions) submitted to an embedded node with ``Node.submit_batch``.

    python -m benchmarks.bench_web --seconds 10 --users 16
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


@dataclass(frozen=True, slots=True)
class LoadUser:
    """A web user of its own ledger participant, logged in: what its requests carry."""

    username: str
    participant_id: str
    headers: dict[str, str]  # the session cookie and the CSRF token


def add_buyers(url: str, data_dir: Path, count: int, prefix: str = "load") -> list[LoadUser]:
    """``count`` new buyers on the served ledger, each with yen on deposit and a web login
    (made as ``reco2 web add-user`` makes one), logged in through the login form."""
    from reco2.node.client import HttpSubmitter, submit
    from reco2.node.keys import KeyFile, key_path
    from reco2.web import security
    from reco2.web.accounts import Accounts

    authority = KeyFile.load(key_path(data_dir, "authority"))
    bank = KeyFile.load(key_path(data_dir, "bank"))
    keys = [KeyFile.generate(f"{prefix}-buyer-{i:03d}") for i in range(count)]
    node = HttpSubmitter(f"{url}/node")
    try:
        for key in keys:
            pid = key.participant_id
            for signer, action in (
                (authority, tx.RegisterParticipant(pid, key.public_key, [Role.buyer], pid, True)),
                (bank, tx.DepositYen(pid, 10**8, f"{pid}-deposit")),
            ):
                receipt = submit(node, signer, action)
                if not receipt.ok:
                    raise RuntimeError(f"{tx.kind_of(action)} for {pid}: {receipt.code}")
    finally:
        node.close()
    accounts = Accounts(data_dir, security.KeyVault(security.load_or_create_secret(data_dir)))
    passwords = {}
    try:
        for key in keys:
            passwords[key.participant_id] = security.new_password()
            accounts.add_user(key.participant_id, passwords[key.participant_id],
                              key.participant_id, key.seed)  # fmt: skip
    finally:
        accounts.close()
    return [login(url, pid, password, pid) for pid, password in passwords.items()]


def login(url: str, username: str, password: str, participant_id: str) -> LoadUser:
    """Log in through the login form. The cookies are Secure, which httpx keeps off plain
    HTTP, so they are carried by hand."""
    with httpx.Client(base_url=url, timeout=60, follow_redirects=False) as http:
        login_csrf = http.get("/login").cookies["reco2_login_csrf"]
        response = http.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": login_csrf},
            headers={"cookie": f"reco2_login_csrf={login_csrf}"},
        )
        if response.status_code != 303:
            raise RuntimeError(f"login of {username}: {response.status_code} {response.text}")
        cookie = f"reco2_session={response.cookies['reco2_session']}"
        me = http.get("/api/v1/me", headers={"cookie": cookie})
        me.raise_for_status()
    return LoadUser(
        username, participant_id, {"cookie": cookie, "x-csrf-token": me.json()["csrf_token"]}
    )


@dataclass
class LoadResult:
    seconds: float
    users: int = 0
    acknowledged: dict[str, str] = field(default_factory=dict)  # order id -> participant
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


async def _load(api_url: str, users: list[LoadUser], seconds: float) -> LoadResult:
    result = LoadResult(seconds, users=len(users))
    start = time.perf_counter()
    deadline = start + seconds

    async def client(user: LoadUser) -> None:
        """One user on its own connection and session, one order at a time."""
        async with httpx.AsyncClient(base_url=api_url, headers=user.headers, timeout=60) as http:
            sent = 0
            while time.perf_counter() < deadline:
                order_id = f"{user.username}-{sent}"
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
                    result.acknowledged[order_id] = user.participant_id
                else:
                    result.errors.append(f"{order_id}: {response.status_code} {response.text}")

    await asyncio.gather(*(client(user) for user in users))
    result.seconds = time.perf_counter() - start
    return result


def web_load(api_url: str, users: list[LoadUser], seconds: float) -> LoadResult:
    """Each user places buy orders through the API for a fixed time, all at once."""
    return asyncio.run(_load(api_url, users, seconds))


def missing_orders(data_dir: Path, acknowledged: dict[str, str]) -> list[str]:
    """Acknowledged orders that are not on the ledger on disk as their buyer's open order."""
    from reco2.node.view import StateView

    state = StateView.open(data_dir).state
    missing = []
    for order_id, owner in acknowledged.items():
        order = state.buy_order(order_id)
        if order is None or order.owner != owner:
            missing.append(order_id)
    return missing


def report(result: LoadResult, inprocess_per_s: float) -> str:
    return (
        f"web_orders_per_s={result.per_s:.0f} over {result.seconds:.1f} s "
        f"({result.users} users, {len(result.acknowledged)} acknowledged, "
        f"{len(result.errors)} errors) "
        f"p50_ms={result.p50_ms:.1f} p99_ms={result.p99_ms:.1f} "
        f"inprocess_orders_per_s={inprocess_per_s:.0f} "
        f"web_to_inprocess_ratio={result.per_s / inprocess_per_s:.3f}"
    )


def main() -> None:
    from tests.e2e.web_server import WebServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=16, help="Concurrent users, one client each.")
    parser.add_argument("--inprocess-orders", type=int, default=10_000)
    args = parser.parse_args()
    inprocess = inprocess_orders_per_s(args.inprocess_orders)
    with tempfile.TemporaryDirectory(prefix="reco2-bench-web-") as tmp:
        server = WebServer(Path(tmp) / "data", Path(tmp) / "server.log").start()
        try:
            users = add_buyers(server.url, server.data_dir, args.users)
            result = web_load(f"{server.url}/api/v1", users, args.seconds)
            lost = missing_orders(server.data_dir, result.acknowledged)
        finally:
            server.stop()
    print(report(result, inprocess))
    print(f"lost_orders={len(lost)} errors={len(result.errors)}")


if __name__ == "__main__":
    main()
