"""Secrets of the web app: password hashes, session and CSRF tokens, custodied ledger keys.

- Passwords: scrypt (RFC 7914) with n=2**14, r=8, p=1 and a 16-byte random salt, 32-byte key;
  stored as ``scrypt$n$r$p$salt_hex$hash_hex`` so the parameters can be raised later.
- Sessions and CSRF: 32 random bytes, URL-safe base64; only the session token's SHA-256 is
  stored, so a leaked user database does not hand out sessions.
- Custodied keys: each user's Ed25519 seed is sealed with a libsodium SecretBox
  (XSalsa20-Poly1305) under the server secret, a 32-byte key in ``DATA_DIR/web-secret.key``
  created with mode 0600 (the server refuses a secret file others can read).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

import nacl.secret

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
SECRET_FILE = "web-secret.key"


class SecretFileError(RuntimeError):
    """The server secret is missing, malformed or readable by others."""


def hash_password(password: str) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time check of a password against its stored hash (False on any bad format)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=SCRYPT_DKLEN, maxmem=64 * 1024 * 1024
    )


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_password() -> str:
    """A password to print once for a demo user (about 96 bits)."""
    return secrets.token_urlsafe(12)


def load_or_create_secret(data_dir: Path) -> bytes:
    """The server secret, created on first use with mode 0600."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(os.urandom(nacl.secret.SecretBox.KEY_SIZE)).decode())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretFileError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        key = base64.b64decode(path.read_text().strip(), validate=True)
    except ValueError as exc:
        raise SecretFileError(f"{path} is not base64") from exc
    if len(key) != nacl.secret.SecretBox.KEY_SIZE:
        raise SecretFileError(f"{path} does not hold a {nacl.secret.SecretBox.KEY_SIZE}-byte key")
    return key


class KeyVault:
    """Seals and opens users' ledger seeds under the server secret."""

    def __init__(self, secret: bytes) -> None:
        self._box = nacl.secret.SecretBox(secret)

    def seal(self, seed: bytes) -> bytes:
        return bytes(self._box.encrypt(seed))

    def open(self, sealed: bytes) -> bytes:
        return bytes(self._box.decrypt(sealed))
