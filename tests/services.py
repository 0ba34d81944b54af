"""Real services for the tests: a Mosquitto broker and a PostgreSQL server, each started on a
free loopback port with its files in a temporary directory, and stopped afterwards.

Neither is mocked and neither is skipped: when a binary is missing the test fails and names the
Debian package to install (``scripts/test`` installs them in CI). PostgreSQL refuses to run as
root, so as root the server runs as the unprivileged ``nobody`` user (present on every Debian
system) with its data directory owned by that user.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

READY_TIMEOUT_S = 60.0
MOSQUITTO_PACKAGE = "mosquitto"
POSTGRES_PACKAGE = "postgresql"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.02)
    raise AssertionError(f"not listening on {port} after {READY_TIMEOUT_S} s:\n{_tail(log)}")


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3_000:]
    except FileNotFoundError:
        return "(no log)"


# ---- Mosquitto --------------------------------------------------------------------------------


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if found is None:
        pytest.fail(
            f"the MQTT tests need the Mosquitto broker: apt-get install {MOSQUITTO_PACKAGE}",
            pytrace=False,
        )
    return found


@dataclass
class Broker:
    """A running Mosquitto (``persistence true``: queued messages survive its restart)."""

    directory: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def log(self) -> str:
        return _tail(self.directory / "mosquitto.log")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def start_mosquitto(directory: Path) -> Broker:
    binary = mosquitto_binary()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "mosquitto.log"
    for _attempt in range(5):
        port = free_port()
        config = directory / "mosquitto.conf"
        lines = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {directory}/",
            # The intake's guarantee needs every message queued while it is down: Mosquitto's
            # default (1,000 per client) drops the rest after acknowledging them to the sender.
            "max_queued_messages 0",
            f"log_dest file {log}",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # as root Mosquitto would switch to user mosquitto
        config.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(port, proc, log)
            return Broker(directory, port, proc)
        except AssertionError:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            if "address already in use" not in _tail(log).lower():
                raise
    raise AssertionError(f"mosquitto found no free port:\n{_tail(log)}")


@pytest.fixture(name="mosquitto")
def mosquitto_fixture(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own (import ``mosquitto_fixture``; use it as ``mosquitto``)."""
    broker = start_mosquitto(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        broker.stop()


# ---- PostgreSQL -------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The directory of initdb and pg_ctl: on PATH, else Debian's newest /usr/lib/postgresql."""
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("pg_ctl") is not None:
        return Path(on_path).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if not versions:
        pytest.fail(
            f"the PostgreSQL tests need initdb and pg_ctl: apt-get install {POSTGRES_PACKAGE}",
            pytrace=False,
        )
    return Path(versions[-1]).parent


@dataclass
class PostgresServer:
    directory: Path
    port: int
    bin_dir: Path
    run_as: pwd.struct_passwd | None
    _databases: itertools.count[int]

    @property
    def admin_url(self) -> str:
        return f"postgresql://reco2@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh empty database; returns its URL."""
        name = f"reco2_test_{next(self._databases)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://reco2@127.0.0.1:{self.port}/{name}"

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run_as(
            self.run_as,
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.directory / "data"), *args],
            self.directory,
        )

    def start(self) -> subprocess.CompletedProcess[str]:
        """Start the server on its port (again, after ``stop``)."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.directory} -c max_connections=50"
        )
        log = str(self.directory / "postgres.log")
        return self.pg_ctl("-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self.pg_ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _run_as(
    user: pwd.struct_passwd | None, argv: list[str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool, as ``user`` when given (from a directory that user can enter)."""
    options: dict[str, Any] = {}
    if user is not None:
        options = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "HOME": str(cwd)}
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
        **options,
    )


def start_postgres() -> PostgresServer:
    bin_dir = postgres_bin_dir()
    run_as = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="reco2-postgres-"))
    if run_as is not None:
        os.chown(directory, run_as.pw_uid, run_as.pw_gid)
    data = directory / "data"
    init = _run_as(
        run_as,
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "reco2",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        directory,
    )
    if init.returncode != 0:
        raise AssertionError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    for _attempt in range(5):
        port = free_port()
        server = PostgresServer(directory, port, bin_dir, run_as, itertools.count(1))
        started = server.start()
        if started.returncode == 0:
            return server
        if "could not bind" not in _tail(directory / "postgres.log"):
            break
    raise AssertionError(
        f"PostgreSQL did not start:\n{started.stdout}\n{started.stderr}\n"
        f"{_tail(directory / 'postgres.log')}"
    )


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """One server for the session (import ``postgres_server_fixture`` beside ``postgres_url``)."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(name="postgres_url")
def postgres_url_fixture(postgres_server: PostgresServer) -> str:
    """The URL of a fresh database on the session's PostgreSQL server."""
    return postgres_server.new_database()
