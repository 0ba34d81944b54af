"""No public read of `reco2 serve` names an undisclosed seller: the raw state read under /node
answers the registry authority alone, and a batch's history (signed transactions and raw
records with proofs) is public only when it names no hidden participant."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from reco2 import factors
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from reco2.ledger.state import decode_value, sell_order_key, trade_key
from reco2.ledger.types import Participant, SellOrder, Trade
from reco2.node.view import StateView
from tests.e2e.harness import run_cli
from tests.e2e.web_api_client import ApiUser, add_user
from tests.e2e.web_server import WebServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    base = tmp_path_factory.mktemp("webprivacy")
    web = WebServer(base / "data", base / "server.log").start()
    try:
        add_user(web, "registry", "authority")
        yield web
    finally:
        web.stop()


@pytest.fixture(scope="module")
def hidden_sale(server: WebServer) -> int:
    """A seller who discloses its name sells a day's value by a rule with the name hidden;
    returns the trade's sequence number."""
    buyer, seller = ApiUser(server, "buyer"), ApiUser(server, "seller")
    rule = {
        "rule_id": "hidden-rule-1",
        "device_id": "fukushima-pv-web",
        "price_sen_per_kg": 200,
        "cap_g": 2_000,
        "name_public": False,
    }
    assert seller.post("/rules", rule).json()["ok"]
    order = {
        "order_id": "hidden-buy-1",
        "quantity_g": 2_000,
        "price_sen_per_kg": 300,
        "places": ["072010"],
    }
    assert buyer.post("/orders/buy", order).json()["ok"]
    day = parse_iso_date("2025-09-01")
    assert day is not None
    start = jst_midnight_s(day)
    run_cli(
        "tx", "issue", "hidden-batch-1",
        "--device", "fukushima-pv-web",
        "--period-start-s", start, "--period-end-s", start + 86_400,
        "--self-consumed-wh", 20_000, "--measured-intervals", 48,
        "--readings-root", "00" * 32,
        "--factor-version", factors.publish_action().version,
        "--node", f"{server.url}/node",
        "--key", server.data_dir / "keys" / "mrv.key",
        "-d", server.data_dir,
    )  # fmt: skip
    public = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
    trades = [
        t for t in public.get("/trades?limit=1000").json() if t["buy_order"] == "hidden-buy-1"
    ]
    assert [t["seller"] for t in trades] == ["undisclosed"], trades
    return int(trades[0]["trade_seq"])


def raw_state(server: WebServer, key: bytes, cookie: str | None = None) -> httpx.Response:
    headers = {"cookie": cookie} if cookie else {}
    return httpx.get(
        f"{server.url}/node/v1/state", params={"key": key.decode()}, headers=headers, timeout=30
    )


def test_raw_state_reads_are_for_the_authority(server: WebServer, hidden_sale: int) -> None:
    public = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
    hidden_sell = next(
        o for o in public.get("/book").json()["sell"] if o["seller"] == "undisclosed"
    )
    state = StateView.open(server.data_dir).state
    order = state.sell_order(hidden_sell["order_id"])
    trade = state.trade(hidden_sale)
    assert order is not None and trade is not None
    keys = {sell_order_key(order.order_id): order.owner, trade_key(trade.trade_seq): trade.seller}
    buyer, registry = ApiUser(server, "buyer"), ApiUser(server, "registry")
    for key, true_owner in keys.items():
        anonymous = raw_state(server, key)
        assert anonymous.status_code == 401, anonymous.text
        assert true_owner not in anonymous.text
        assert raw_state(server, key, buyer.cookie).status_code == 403
        answer = raw_state(server, key, registry.cookie)
        assert answer.status_code == 200, answer.text
        record = decode_value(key, base64.b64decode(answer.json()["value"]))
        assert isinstance(record, SellOrder | Trade)
        named = record.owner if isinstance(record, SellOrder) else record.seller
        assert named == true_owner and answer.json()["proof_ops"]
    # the rest of the node's machine API stays open: status, nonces, transactions
    assert httpx.get(f"{server.url}/node/v1/status").status_code == 200
    assert httpx.get(f"{server.url}/node/v1/nonce/web-buyer").status_code == 200


def test_history_of_value_sold_under_a_hidden_name(server: WebServer, hidden_sale: int) -> None:
    """The board says the hidden sale's seller is undisclosed, so the batch's history (which
    names the rule's signer and the trade's seller) is refused to the public and to the
    buyer, and shown to the seller and the authority."""
    buyer, seller = ApiUser(server, "buyer"), ApiUser(server, "seller")
    registry = ApiUser(server, "registry")
    public = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
    # Nothing public says which batch (so which device and owner) the hidden sale drew from:
    # not the batches, not the issuing transaction, not the rule-listed order's id.
    issue_tx = public.get("/batches/hidden-batch-1").json()["issue_tx"]
    for url in (f"{server.url}/api/v1/trades?limit=1000", f"{server.url}/api/trades"):
        listed = httpx.get(url).json()
        mine = [t for t in listed if t["trade_seq"] == hidden_sale]
        assert mine and mine[0]["batches"] == [] and mine[0]["tx_hash"] == "", url
        assert mine[0]["sell_order"].startswith("hidden-rule-1~"), mine
        assert "hidden-batch-1" not in str(listed) and issue_tx not in str(listed), url
    board = httpx.get(f"{server.url}/fragments/board").text
    assert mine[0]["sell_order"] in board and "hidden-batch-1" not in board

    path = "/batches/hidden-batch-1/history"
    refused = public.get(path)
    assert refused.status_code == 403 and "web-seller" not in refused.text
    assert buyer.http.get(path).status_code == 403  # the buyer was not told who sold
    for allowed in (seller, registry):
        shown = allowed.http.get(path)
        assert shown.status_code == 200, shown.text
        assert "trade/" in " ".join(entry["key"] for entry in shown.json()["state"])
    # the audit trail page (any logged-in user) shows the hidden seller as 非公表
    trail = httpx.get(
        f"{server.url}/audit/hidden-batch-1?lang=en", headers={"cookie": buyer.cookie}, timeout=60
    )
    assert trail.status_code == 200 and "hidden-batch-1" in trail.text
    assert "web-seller" not in trail.text and "福島ソーラー合同会社" not in trail.text
    # a batch whose history names nobody hidden stays public, with its proofs
    open_batch = next(
        b for b in public.get("/batches?limit=1000").json() if b["batch_id"].startswith("fuku")
    )
    assert public.get(f"/batches/{open_batch['batch_id']}/history").status_code == 200


def test_a_buy_order_naming_a_hidden_seller_does_not_name_it(server: WebServer) -> None:
    """A buyer who knows a hidden seller's id may accept value from it alone; the public book
    shows that condition as undisclosed, and the buyer's own list keeps the real id."""
    state = StateView.open(server.data_dir).state
    hidden = next(
        p
        for _, p in state.records_with_prefix(b"participant/")
        if isinstance(p, Participant) and not p.name_public
    )
    buyer = ApiUser(server, "buyer")
    order = {
        "order_id": "names-hidden-1",
        "quantity_g": 1_000,
        "price_sen_per_kg": 1,
        "sellers": [hidden.participant_id, "web-seller"],
    }
    placed = buyer.post("/orders/buy", order)
    assert placed.status_code == 200 and placed.json()["ok"], placed.text
    book = httpx.get(f"{server.url}/api/v1/book").json()
    mine = next(o for o in book["buy"] if o["order_id"] == "names-hidden-1")
    assert mine["sellers"] == ["undisclosed", "web-seller"]
    assert mine["seller_names"] == ["非公表", "福島ソーラー合同会社"]
    for url in ("/api/v1/book", "/api/book", "/fragments/board", "/board"):
        text = httpx.get(f"{server.url}{url}").text
        assert hidden.participant_id not in text and hidden.display_name not in text, url
    own = buyer.http.get("/me/orders").json()["buy"]
    assert next(o for o in own if o["order_id"] == "names-hidden-1")["sellers"][0] == (
        hidden.participant_id
    )
    assert buyer.delete("/orders/names-hidden-1").json()["ok"]
