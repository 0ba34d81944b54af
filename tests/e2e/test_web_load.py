"""A bounded load test of the web API on loopback: several distinct buyers, each with its own
participant, login and session, place buy orders through /api/v1 at once for a fixed time;
every request must succeed and every acknowledged order must be on the ledger on disk as its
buyer's. Prints the throughput as a ratio to the node's in-process rate on the market
benchmark's order stream, measured in the same run, and the p99 latency."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from benchmarks.bench_web import (
    add_buyers,
    inprocess_orders_per_s,
    missing_orders,
    report,
    web_load,
)

from tests.e2e.web_server import WebServer

SECONDS = 10.0
USERS = 16
INPROCESS_ORDERS = 4_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    base = tmp_path_factory.mktemp("webload")
    web = WebServer(base / "data", base / "server.log").start()
    try:
        yield web
    finally:
        web.stop()


def test_concurrent_users_place_orders_through_the_api(server: WebServer) -> None:
    inprocess = inprocess_orders_per_s(INPROCESS_ORDERS)
    users = add_buyers(server.url, server.data_dir, USERS)
    assert len({u.headers["cookie"] for u in users}) == USERS, "one session per user"
    result = web_load(f"{server.url}/api/v1", users, SECONDS)
    print(f"\n{report(result, inprocess)}")
    assert not result.errors, result.errors[:5]
    by_user = {pid: 0 for pid in (u.participant_id for u in users)}
    for owner in result.acknowledged.values():
        by_user[owner] += 1
    assert all(count > 0 for count in by_user.values()), f"a user placed nothing: {by_user}"
    lost = missing_orders(server.data_dir, result.acknowledged)
    assert not lost, f"{len(lost)} acknowledged orders are not on the ledger: {lost[:5]}"
