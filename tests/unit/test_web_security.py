"""Password hashes, the server secret file and the sealed ledger seeds of the web app."""

from __future__ import annotations

import os
from pathlib import Path

import nacl.exceptions
import pytest

from reco2.web import security
from reco2.web.accounts import AccountError, Accounts
from reco2.web.statement import StatementError, from_pdf


def test_password_hash_checks_and_states_its_parameters() -> None:
    stored = security.hash_password("correct horse battery")
    assert stored.startswith(f"scrypt${2**14}$8$1$")
    assert security.check_password("correct horse battery", stored)
    assert not security.check_password("correct horse batterz", stored)
    assert not security.check_password("correct horse battery", "md5$abc")
    assert stored != security.hash_password("correct horse battery")  # salted


def test_secret_file_is_private_and_refused_when_readable(tmp_path: Path) -> None:
    key = security.load_or_create_secret(tmp_path)
    path = tmp_path / security.SECRET_FILE
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert security.load_or_create_secret(tmp_path) == key
    os.chmod(path, 0o644)
    with pytest.raises(security.SecretFileError):
        security.load_or_create_secret(tmp_path)


def test_seeds_are_sealed_at_rest(tmp_path: Path) -> None:
    vault = security.KeyVault(security.load_or_create_secret(tmp_path))
    accounts = Accounts(tmp_path, vault)
    seed = os.urandom(32)
    accounts.add_user("alice", "a long password", "alice-pid", seed)
    with pytest.raises(AccountError):
        accounts.add_user("alice", "a long password", "alice-pid", seed)
    assert seed not in (tmp_path / "web.sqlite").read_bytes()
    assert accounts.seed_of("alice") == seed
    assert accounts.login("alice", "wrong password") is None
    found = accounts.login("alice", "a long password")
    assert found is not None
    token, session = found
    assert accounts.session(token) == session
    accounts.logout(token)
    assert accounts.session(token) is None
    accounts.close()
    other = security.KeyVault(os.urandom(32))
    with pytest.raises(nacl.exceptions.CryptoError):
        Accounts(tmp_path, other).seed_of("alice")


def test_a_file_that_is_not_a_statement_is_refused() -> None:
    with pytest.raises(StatementError):
        from_pdf(b"%PDF-1.4 not really")
