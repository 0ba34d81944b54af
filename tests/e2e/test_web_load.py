"""A bounded load test of the web API on loopback: concurrent clients place buy orders through
/api/v1 for a fixed time; every request must succeed and every acknowledged order must be on
the ledger afterwards. Prints the throughput as a ratio to the node's in-process rate on the
market benchmark's order stream, measured in the same run, and the p99 latency."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from benchmarks.bench_web import inprocess_orders_per_s, missing_orders, report, web_load

from tests.e2e.web_api_client import ApiUser
from tests.e2e.web_server import WebServer

SECONDS = 10.0
CLIENTS = 16
INPROCESS_ORDERS = 4_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    base = tmp_path_factory.mktemp("webload")
    web = WebServer(base / "data", base / "server.log").start()
    try:
        yield web
    finally:
        web.stop()


def test_concurrent_orders_through_the_api(server: WebServer) -> None:
    inprocess = inprocess_orders_per_s(INPROCESS_ORDERS)
    buyer = ApiUser(server, "buyer")
    api_url = f"{server.url}/api/v1"
    result = web_load(api_url, buyer.headers, CLIENTS, SECONDS)
    print(f"\n{report(result, inprocess)}")
    assert not result.errors, result.errors[:5]
    assert len(result.acknowledged) >= CLIENTS, "the load placed almost nothing"
    lost = missing_orders(api_url, buyer.headers, result.acknowledged)
    assert not lost, f"{len(lost)} acknowledged orders are not on the ledger: {lost[:5]}"
    buyer.close()
