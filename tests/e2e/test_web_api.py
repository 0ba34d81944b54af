"""The JSON API (/api/v1) over real HTTP: public reads that never name an undisclosed seller,
and writes by logged-in people (session cookie + X-CSRF-Token) that check the role, refuse
another user's order and change nothing when refused; a whole market round through it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reco2 import factors
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from reco2.ledger.types import Participant
from reco2.node.view import StateView
from tests.e2e.harness import run_cli
from tests.e2e.web_api_client import ApiUser
from tests.e2e.web_server import WebServer

PUBLIC_READS = (
    "/participants",
    "/devices",
    "/book",
    "/trades",
    "/batches",
    "/retirements",
    "/factors",
    "/audit",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    base = tmp_path_factory.mktemp("webapi")
    web = WebServer(base / "data", base / "server.log").start()
    try:
        yield web
    finally:
        web.stop()


def api(server: WebServer) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)


def undisclosed(server: WebServer) -> list[str]:
    view = StateView.open(server.data_dir)
    return [
        p.participant_id
        for _, p in view.state.records_with_prefix(b"participant/")
        if isinstance(p, Participant) and not p.name_public
    ]


def nonces(server: WebServer) -> list[int]:
    return [
        httpx.get(f"{server.url}/node/v1/nonce/{pid}").json()["next_nonce"]
        for pid in ("web-buyer", "web-seller")
    ]


def buy(order_id: str, **more: Any) -> dict[str, Any]:
    return {"order_id": order_id, "quantity_g": 1000, "price_sen_per_kg": 1, **more}


def test_public_reads_never_name_an_undisclosed_seller(server: WebServer) -> None:
    hidden = undisclosed(server)
    assert hidden, "the seed has a seller who does not disclose their name"
    with api(server) as http:
        bodies = {path: http.get(path) for path in PUBLIC_READS}
        for path, response in bodies.items():
            assert response.status_code == 200, (path, response.text)
            text = json.dumps(response.json(), ensure_ascii=False)
            for pid in hidden:
                assert f'"{pid}"' not in text, f"{path} names undisclosed {pid}"
        book = bodies["/book"].json()
        assert any(o["seller"] == "undisclosed" for o in book["sell"])
        assert all(
            o["seller_name"] == "非公表" for o in book["sell"] if o["seller"] == "undisclosed"
        )
        batches = bodies["/batches"].json()
        hidden_batch = next(b for b in batches if b["owner"] == "undisclosed")
        assert hidden_batch["place_name"] and hidden_batch["co2_g"] > 0  # provenance kept
        # a history carries signed transactions, so an undisclosed owner's is not public
        history = http.get(f"/batches/{hidden_batch['batch_id']}/history")
        assert history.status_code == 403
        assert http.get("/batches/no-such-batch").status_code == 404
        assert http.get("/batches/bad id!").status_code == 422
        tables = bodies["/factors"].json()
        assert tables[0]["version"] == factors.publish_action().version
        audit = bodies["/audit"].json()
        status = httpx.get(f"{server.url}/node/v1/status").json()
        assert audit["chain_id"] == status["chain_id"] and audit["height"] >= 1
        readings = http.post(
            "/readings", content=b"\x90", headers={"content-type": "application/msgpack"}
        )
        assert readings.status_code == 200 and readings.json() == {"results": []}
    spec = httpx.get(f"{server.url}/openapi.json").json()
    schema = spec["paths"]["/api/v1/orders/buy"]["post"]
    assert set(schema["responses"]) >= {"200", "401", "403", "409", "413", "422"}
    assert {"reco2_session", "X-CSRF-Token"} <= {
        s["name"] for s in spec["components"]["securitySchemes"].values()
    }


def test_refused_writes_change_nothing(server: WebServer) -> None:
    buyer, seller = ApiUser(server, "buyer"), ApiUser(server, "seller")
    placed = buyer.post("/orders/buy", buy("api-own-1", places=["13"]))
    assert placed.status_code == 200 and placed.json()["ok"], placed.text
    before = (api(server).get("/book").json(), nonces(server))
    anonymous = api(server)

    assert anonymous.post("/orders/buy", json=buy("api-x1")).status_code == 401
    assert anonymous.get("/me").status_code == 401
    assert anonymous.delete("/orders/api-own-1").status_code == 401
    assert seller.post("/orders/buy", buy("api-x2")).status_code == 403  # wrong role
    rule = {"rule_id": "api-r1", "device_id": "fukushima-pv-web", "price_sen_per_kg": 1, "cap_g": 1}
    assert buyer.post("/rules", rule).status_code == 403
    assert buyer.post("/orders/buy", buy("api-x3"), csrf="forged").status_code == 403
    assert buyer.post("/orders/buy", buy("api-x4"), csrf="").status_code == 403
    assert buyer.post("/orders/buy", buy("api-x5"), csrf=seller.csrf).status_code == 403
    assert seller.delete("/orders/api-own-1").status_code == 404  # another user's order
    assert buyer.post("/orders/buy", buy("api-x6", places=["99"])).status_code == 422
    assert buyer.post("/orders/buy", buy("api-x7", quantity_g=0)).status_code == 422
    assert buyer.post("/orders/buy", buy("api-x8", extra=1)).status_code == 422
    big = buyer.post("/orders/buy", buy("api-x9", sellers=["x" * 60] * 2_000))
    assert big.status_code == 413
    assert (api(server).get("/book").json(), nonces(server)) == before, "a refusal changed state"

    again = buyer.post("/orders/buy", buy("api-own-1"))  # the ledger refuses a reused id
    assert again.status_code == 409 and not again.json()["ok"], again.text
    cancelled = buyer.delete("/orders/api-own-1")
    assert cancelled.status_code == 200 and cancelled.json()["ok"], cancelled.text
    assert not any(o["order_id"] == "api-own-1" for o in buyer.http.get("/me/orders").json()["buy"])


def test_market_round_through_the_api(server: WebServer) -> None:
    """The seller's rule lists new value; the buyer's order with a place condition buys it,
    retires it, and the batch's history shows the retirement."""
    buyer, seller = ApiUser(server, "buyer"), ApiUser(server, "seller")
    rule = {
        "rule_id": "api-rule-1",
        "device_id": "fukushima-pv-web",
        "price_sen_per_kg": 200,
        "cap_g": 100_000,
    }
    assert seller.post("/rules", rule).json()["ok"]
    order = buy("api-buy-1", quantity_g=3_000, price_sen_per_kg=300, places=["072010"])
    assert buyer.post("/orders/buy", order).json()["ok"]
    day = parse_iso_date("2025-08-15")
    assert day is not None
    start = jst_midnight_s(day)
    run_cli(
        "tx", "issue", "api-batch-1",
        "--device", "fukushima-pv-web",
        "--period-start-s", start, "--period-end-s", start + 86_400,
        "--self-consumed-wh", 20_000, "--measured-intervals", 48,
        "--readings-root", "00" * 32,
        "--factor-version", factors.publish_action().version,
        "--node", f"{server.url}/node",
        "--key", server.data_dir / "keys" / "mrv.key",
        "-d", server.data_dir,
    )  # fmt: skip
    trades = [
        t for t in api(server).get("/trades?limit=1000").json() if t["buy_order"] == "api-buy-1"
    ]
    assert len(trades) == 1 and trades[0]["quantity_g"] == 3_000, trades
    assert trades[0]["batches"] == [["api-batch-1", 3_000]]
    assert seller.delete("/rules/api-rule-1").json()["ok"]
    assert buyer.delete("/rules/api-rule-1").status_code == 403

    retire = {
        "retirement_id": "api-ret-1",
        "batch_id": "api-batch-1",
        "quantity_g": 3_000,
        "beneficiary": "デモ買い手株式会社",
        "purpose": "offset",
        "claimed_period": "FY2025",
    }
    assert buyer.post("/retirements", retire | {"quantity_g": 3_001}).status_code == 409
    done = buyer.post("/retirements", retire)
    assert done.status_code == 200 and done.json()["ok"], done.text
    listed = {r["retirement_id"]: r for r in api(server).get("/retirements").json()}
    assert listed["api-ret-1"]["holder"] == "web-buyer"
    history = api(server).get("/batches/api-batch-1/history")
    assert history.status_code == 200, history.text
    keys = {entry["key"] for entry in history.json()["state"]}
    assert "retirement/api-ret-1" in keys and "batch/api-batch-1" in keys


def test_audit_of_a_snapshot_while_the_node_runs(server: WebServer) -> None:
    buyer = ApiUser(server, "buyer")
    assert api(server).post("/audit").status_code == 401
    assert buyer.post("/audit", {}, csrf="forged").status_code == 403
    before = api(server).get("/audit").json()
    assert buyer.post("/orders/buy", buy("api-audit-1")).json()["ok"]  # a block meanwhile
    ran = buyer.post("/audit", {})
    assert ran.status_code == 200, ran.text
    run = ran.json()
    assert run["ok"], run["problems"]
    assert run["tip_height"] >= before["height"] and run["txs"] > 0
    status = api(server).get("/audit").json()
    assert status["last_audit"] == run
