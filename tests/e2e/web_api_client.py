"""A logged-in client of the JSON API (/api/v1) of a `reco2 serve --demo` process."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.web_server import WebServer


def login_cookie(server: WebServer, username: str) -> str:
    """Log in through the login form; returns the session cookie as a Cookie header value.

    The cookies are Secure, which httpx keeps off plain HTTP, so they are sent by hand."""
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=False) as http:
        login_csrf = http.get("/login").cookies["reco2_login_csrf"]
        response = http.post(
            "/login",
            data={
                "username": username,
                "password": server.users[username][0],
                "csrf_token": login_csrf,
            },
            headers={"cookie": f"reco2_login_csrf={login_csrf}"},
        )
        assert response.status_code == 303, response.text
        return f"reco2_session={response.cookies['reco2_session']}"


class ApiUser:
    def __init__(self, server: WebServer, username: str) -> None:
        self.participant_id = server.users[username][1]
        self.cookie = login_cookie(server, username)
        self.http = httpx.Client(
            base_url=f"{server.url}/api/v1", timeout=30, headers={"cookie": self.cookie}
        )
        me = self.http.get("/me")
        assert me.status_code == 200, me.text
        self.csrf: str = me.json()["csrf_token"]

    @property
    def headers(self) -> dict[str, str]:
        """What a write carries: the session cookie and the CSRF token."""
        return {"cookie": self.cookie, "x-csrf-token": self.csrf}

    def post(self, path: str, body: dict[str, Any], csrf: str | None = None) -> httpx.Response:
        return self.http.post(
            path, json=body, headers={"x-csrf-token": self.csrf if csrf is None else csrf}
        )

    def delete(self, path: str, csrf: str | None = None) -> httpx.Response:
        return self.http.delete(path, headers={"x-csrf-token": self.csrf if csrf is None else csrf})

    def close(self) -> None:
        self.http.close()
