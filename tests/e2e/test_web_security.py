"""Refusals of the web API over real HTTP: no session, wrong role, forged CSRF token, another
user's order, oversized body. Each gets its status and leaves the ledger as it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.web_server import WebServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    base = tmp_path_factory.mktemp("websec")
    web = WebServer(base / "data", base / "server.log").start()
    try:
        yield web
    finally:
        web.stop()


class User:
    """A logged-in client. Cookies are Secure, which httpx keeps off plain HTTP, so they are
    sent by hand."""

    def __init__(self, server: WebServer, username: str) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)
        page = self.http.get("/login")
        login_csrf = page.cookies["reco2_login_csrf"]
        response = self.http.post(
            "/login",
            data={
                "username": username,
                "password": server.users[username][0],
                "csrf_token": login_csrf,
            },
            headers={"cookie": f"reco2_login_csrf={login_csrf}"},
        )
        assert response.status_code == 303, response.text
        self.cookie = f"reco2_session={response.cookies['reco2_session']}"
        me = self.http.get("/api/me", headers={"cookie": self.cookie}).json()
        self.csrf: str = me["csrf_token"]

    def post(self, path: str, data: dict[str, str], csrf: str | None = None) -> httpx.Response:
        return self.http.post(
            path,
            data={**data, "csrf_token": self.csrf if csrf is None else csrf},
            headers={"cookie": self.cookie},
        )


def ledger(server: WebServer) -> dict[str, Any]:
    get = httpx.get
    return {
        "book": get(f"{server.url}/api/book").json(),
        "trades": get(f"{server.url}/api/trades").json(),
        "nonces": [
            get(f"{server.url}/node/v1/nonce/{pid}").json()["next_nonce"]
            for pid in ("web-buyer", "web-seller")
        ],
    }


def buy_form(order_id: str) -> dict[str, str]:
    return {
        "order_id": order_id,
        "quantity_kg": "1",
        "price_yen_per_kg": "1",
        "prefecture": "13",
    }


def test_refusals_change_nothing(server: WebServer) -> None:
    buyer, seller = User(server, "buyer"), User(server, "seller")
    placed = buyer.post("/orders/buy", buy_form("sec-own-1"))
    assert placed.status_code == 303 and placed.headers["location"].endswith("result=ok")
    before = ledger(server)
    assert any(o["order_id"] == "sec-own-1" for o in before["book"]["buy"])
    anonymous = httpx.Client(base_url=server.url, timeout=30)

    # no session
    assert anonymous.post("/orders/buy", data=buy_form("sec-x1")).status_code == 401
    assert anonymous.get("/api/me").status_code == 401
    page = anonymous.get("/orders", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    # wrong role: a prosumer cannot place a buy order, a buyer cannot set a sell rule
    assert seller.post("/orders/buy", buy_form("sec-x2")).status_code == 403
    rule = {"rule_id": "sec-r1", "device_id": "sapporo-pv", "price_yen_per_kg": "1", "cap_kg": "1"}
    assert buyer.post("/rules", rule).status_code == 403
    # forged or missing CSRF token
    assert buyer.post("/orders/buy", buy_form("sec-x3"), csrf="forged").status_code == 403
    assert buyer.post("/orders/buy", buy_form("sec-x4"), csrf="").status_code == 403
    assert buyer.post("/orders/buy", buy_form("sec-x5"), csrf=seller.csrf).status_code == 403
    # another user's order (and another user's statement)
    assert seller.post("/orders/sec-own-1/cancel", {}).status_code == 404
    statement = seller.http.get("/statements/any.pdf", headers={"cookie": seller.cookie})
    assert statement.status_code == 404
    # oversized body, declared and streamed
    big = buy_form("sec-x6") | {"note": "x" * 100_000, "csrf_token": buyer.csrf}
    response = buyer.http.post("/orders/buy", data=big, headers={"cookie": buyer.cookie})
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"a" * 1_000

    streamed = buyer.http.post(
        "/orders/buy",
        content=chunks(),
        headers={"cookie": buyer.cookie, "content-type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 413

    assert ledger(server) == before, "a refused request changed the ledger"
    cancelled = buyer.post("/orders/sec-own-1/cancel", {})
    assert cancelled.headers["location"].endswith("result=ok")
    assert not any(o["order_id"] == "sec-own-1" for o in ledger(server)["book"]["buy"])


def test_cookies_and_headers(server: WebServer) -> None:
    page = httpx.get(f"{server.url}/login")
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert httpx.get(f"{server.url}/openapi.json").json()["info"]["title"] == "ReCO2 web market"
    wrong = httpx.post(
        f"{server.url}/login",
        data={"username": "buyer", "password": "wrong password", "csrf_token": "t"},
        headers={"cookie": "reco2_login_csrf=t"},
    )
    assert wrong.status_code == 401 and "reco2_session" not in wrong.headers.get("set-cookie", "")
