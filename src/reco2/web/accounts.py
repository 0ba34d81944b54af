"""Web users and their sessions, in ``DATA_DIR/web.sqlite`` (beside the ledger, never in it).

A user is a login bound to one ledger participant; the participant's seed is kept sealed
(see ``security.KeyVault``). Sessions expire after ``SESSION_TTL_S``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from reco2.web import security

DB_FILE = "web.sqlite"
SESSION_TTL_S = 8 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    sealed_seed BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_digest TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username),
    csrf_token TEXT NOT NULL,
    expires_ns INTEGER NOT NULL
);
"""


class AccountError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    participant_id: str
    csrf_token: str


class Accounts:
    def __init__(self, data_dir: Path, vault: security.KeyVault) -> None:
        self._vault = vault
        self._lock = threading.Lock()
        self._db = sqlite3.connect(data_dir / DB_FILE, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        (data_dir / DB_FILE).chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_user(self, username: str, password: str, participant_id: str, seed: bytes) -> None:
        if not username or len(username) > 64 or not username.isprintable():
            raise AccountError("a username is 1-64 printable characters")
        if len(password) < 10:
            raise AccountError("a password has at least 10 characters")
        sealed = self._vault.seal(seed)
        with self._lock, self._db:
            try:
                self._db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?)",
                    (username, security.hash_password(password), participant_id, sealed),
                )
            except sqlite3.IntegrityError as exc:
                raise AccountError(f"user {username!r} exists") from exc

    def login(self, username: str, password: str) -> tuple[str, Session] | None:
        """A new session token and its session, or None when the password is wrong."""
        with self._lock:
            row = self._db.execute(
                "SELECT password_hash, participant_id FROM users WHERE username = ?", (username,)
            ).fetchone()
        if row is None:
            security.check_password(password, _DUMMY_HASH)  # same cost for unknown users
            return None
        if not security.check_password(password, row[0]):
            return None
        token, csrf = security.new_token(), security.new_token()
        expires = time.time_ns() + SESSION_TTL_S * 1_000_000_000
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?)",
                (security.token_digest(token), username, csrf, expires),
            )
        return token, Session(username, row[1], csrf)

    def session(self, token: str) -> Session | None:
        with self._lock:
            row = self._db.execute(
                "SELECT s.username, u.participant_id, s.csrf_token, s.expires_ns "
                "FROM sessions s JOIN users u ON u.username = s.username "
                "WHERE s.token_digest = ?",
                (security.token_digest(token),),
            ).fetchone()
        if row is None or row[3] < time.time_ns():
            return None
        return Session(row[0], row[1], row[2])

    def logout(self, token: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM sessions WHERE token_digest = ?", (security.token_digest(token),)
            )

    def seed_of(self, username: str) -> bytes:
        with self._lock:
            row = self._db.execute(
                "SELECT sealed_seed FROM users WHERE username = ?", (username,)
            ).fetchone()
        if row is None:
            raise AccountError(f"no user {username!r}")
        return self._vault.open(bytes(row[0]))


_DUMMY_HASH = security.hash_password("not a password anyone has")
