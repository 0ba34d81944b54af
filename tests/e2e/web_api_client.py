"""A logged-in client of the JSON API (/api/v1) of a `reco2 serve --demo` process."""

from __future__ import annotations

import secrets
import subprocess
from typing import Any

import httpx

from reco2.node.keys import key_path
from tests.e2e.harness import RECO2, cli_env
from tests.e2e.web_server import WebServer


def add_user(server: WebServer, username: str, participant_id: str) -> None:
    """A web login for a participant whose key file is in the data directory, made with
    `reco2 web add-user` while the server runs; the server's ``users`` learns the password."""
    password = secrets.token_urlsafe(12)
    key_file = key_path(server.data_dir, participant_id)
    proc = subprocess.run(
        [str(RECO2), "web", "add-user", username, "--participant", participant_id,
         "--key-file", str(key_file), "-d", str(server.data_dir), "--password-stdin"],
        input=password + "\n", capture_output=True, text=True, env=cli_env(), timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    server.users[username] = (password, participant_id)


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
