"""What the end-to-end tests share: the real `reco2` command in subprocesses, a real node
process (`reco2 node run`) on a free local port, a small HTTP client that signs as named
participants, and read-only looks into a data directory's SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nacl.bindings

from reco2 import factors
from reco2.ledger import block, tx
from reco2.ledger.types import Role
from reco2.node.keys import KeyFile, key_path
from tests.support import device_action, issue_action, public_key, seed_of

#: The `reco2` console script of the environment running the tests.
RECO2 = Path(sys.executable).with_name("reco2")
CLI_TIMEOUT_S = 180.0
READY_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 120.0
DB_FILE = "ledger.sqlite"


# ---- the command line -------------------------------------------------------------------
def issue_days(
    data_dir: Path,
    store_url: str,
    *extra: object,
    until_day: str | None = None,
    key: str = "mrv",
    timeout: float = CLI_TIMEOUT_S,
) -> dict[str, Any]:
    """`reco2 issue-days --json` over a readings store, signed by ``key``; its parsed answer."""
    until = ("--until-day", until_day) if until_day is not None else ()
    proc = run_cli(
        "issue-days",
        "-d",
        data_dir,
        "--store",
        store_url,
        "--key",
        key,
        *until,
        "--json",
        *extra,
        timeout=timeout,
    )
    answer: dict[str, Any] = json.loads(proc.stdout)
    return answer


def train_anomaly_model(out: Path, devices: int, days: int, timeout: float) -> None:
    """`reco2 mrv train`: a small model trained on seed 11 and calibrated on seed 17, with
    copied, replayed and other faults but no drift (what the screening tests need)."""
    run_cli(
        "mrv",
        "train",
        "--out",
        out,
        "--seeds",
        "11",
        "--devices",
        devices,
        "--days",
        days,
        "--fault-rate",
        "0.1",
        "--drifts",
        "0",
        "--calibration-seed",
        "17",
        timeout=timeout,
    )


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RECO2_DATA_DIR", None)
    # rich wraps at 80 columns when not on a terminal; keep each message on one line.
    env.update(COLUMNS="400", NO_COLOR="1", TERM="dumb", PYTHONUNBUFFERED="1")
    return env


def run_cli(
    *args: object, expect: int | None = 0, timeout: float = CLI_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run `reco2 ARGS`; with ``expect`` set, assert its exit code (showing its output)."""
    argv = [str(RECO2), *(str(a) for a in args)]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=cli_env(), timeout=timeout, check=False
    )
    if expect is not None:
        assert proc.returncode == expect, (
            f"`reco2 {' '.join(argv[1:])}` exited {proc.returncode}, expected {expect}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def cli_json(*args: object, expect: int | None = 0) -> Any:
    proc = run_cli(*args, expect=expect)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"`reco2 {' '.join(map(str, args))}` printed no JSON:\n{proc.stdout}\n{proc.stderr}"
        ) from exc


def one_line(text: str) -> str:
    """Collapse whitespace, so assertions do not depend on how the console wrapped a line."""
    return " ".join(text.split())


def audit_json(data_dir: Path) -> tuple[int, dict[str, Any]]:
    """`reco2 audit --json`: (exit code, report)."""
    proc = run_cli("audit", "-d", data_dir, "--json", expect=None)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"audit printed no JSON:\n{proc.stdout}\n{proc.stderr}") from exc


def init_chain(data_dir: Path, chain_id: str = "reco2-e2e") -> KeyFile:
    """`reco2 init`; returns the registry authority's key it wrote."""
    run_cli("init", "-d", data_dir, "--chain-id", chain_id)
    return KeyFile.load(key_path(data_dir, "authority"))


# ---- a node process ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NodeProcess:
    """`reco2 node run` on 127.0.0.1 and a free port, its output kept in a log file."""

    def __init__(self, data_dir: Path, log_path: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4_000:]
        except FileNotFoundError:
            return ""

    def start(self) -> dict[str, Any]:
        """Start the node and wait until it answers /v1/status; returns that status."""
        assert self.proc is None or self.proc.poll() is not None, "node already running"
        for _attempt in range(5):
            self.port = free_port()
            self.starts += 1
            with self.log_path.open("ab") as log:
                log.write(f"\n--- start {self.starts} on port {self.port}\n".encode())
                self.proc = subprocess.Popen(
                    [
                        str(RECO2),
                        "node",
                        "run",
                        "-d",
                        str(self.data_dir),
                        "--port",
                        str(self.port),
                        *self.extra,
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=cli_env(),
                )
            status = self._wait_ready()
            if status is not None:
                return status
            if "address already in use" not in self.log().lower():
                break
        raise AssertionError(f"node did not start:\n{self.log()}")

    def _wait_ready(self) -> dict[str, Any] | None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return None
            try:
                response = httpx.get(f"{self.url}/v1/status", timeout=5.0)
                if response.status_code == 200:
                    return dict(response.json())
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"node not ready after {READY_TIMEOUT_S} s:\n{self.log()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/status", timeout=HTTP_TIMEOUT_S)
        response.raise_for_status()
        return dict(response.json())

    def kill(self) -> None:
        """SIGKILL: no shutdown code of the node runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        """A graceful stop (SIGTERM), falling back to SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> NodeProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- signing ----------------------------------------------------------------------------
def sign_body(body: bytes, seed: bytes) -> bytes:
    """An envelope around arbitrary body bytes, correctly signed with ``seed``."""
    public, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
    signed = nacl.bindings.crypto_sign(tx.SIGNING_DOMAIN + body, secret)
    return tx.encode(tx.SignedTx(body, public, signed[: tx.SIGNATURE_BYTES]))


def sign(chain_id: str, signer: str, nonce: int, action: tx.Action, seed: bytes) -> bytes:
    return tx.sign(tx.TxBody(chain_id, signer, nonce, action), seed)  # type: ignore[arg-type]


class HttpLedger:
    """Signs as named participants and posts raw transactions to a node over HTTP."""

    def __init__(self, url: str, seeds: dict[str, bytes] | None = None) -> None:
        self.client = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S)
        self.seeds = dict(seeds or {})
        self.chain_id = str(self.status()["chain_id"])

    def close(self) -> None:
        self.client.close()

    def status(self) -> dict[str, Any]:
        response = self.client.get("/v1/status")
        response.raise_for_status()
        return dict(response.json())

    def nonce(self, participant_id: str) -> int:
        response = self.client.get(f"/v1/nonce/{participant_id}")
        response.raise_for_status()
        return int(response.json()["next_nonce"])

    def seed(self, participant_id: str) -> bytes:
        return self.seeds.get(participant_id) or seed_of(participant_id)

    def sign(self, signer: str, action: tx.Action, nonce: int | None = None) -> bytes:
        nonce = self.nonce(signer) if nonce is None else nonce
        return sign(self.chain_id, signer, nonce, action, self.seed(signer))

    def post(self, raw: bytes) -> httpx.Response:
        return self.client.post(
            "/v1/txs", content=raw, headers={"content-type": "application/octet-stream"}
        )

    def submit(self, signer: str, action: tx.Action) -> dict[str, Any]:
        response = self.post(self.sign(signer, action))
        assert response.status_code in (200, 422), response.text
        return dict(response.json())

    def ok(self, signer: str, action: tx.Action) -> dict[str, Any]:
        receipt = self.submit(signer, action)
        assert receipt["code"] == "ok" and receipt["height"] is not None, (signer, receipt)
        return receipt


WORLD_ROLES = (
    ("maekawa", Role.prosumer),
    ("mrv", Role.aggregator),
    ("buyer", Role.buyer),
    ("bank", Role.settlement_agent),
)


def populate(ledger: HttpLedger) -> None:
    """The world of tests/support.py over HTTP: four participants, device pv-1 (approved),
    the shipped factor table, batch b1 (4,177 g) and 100 g of it given to the buyer."""
    for pid, role in WORLD_ROLES:
        ledger.ok("authority", tx.RegisterParticipant(pid, public_key(pid), [role], pid, True))
    ledger.ok("maekawa", device_action())
    ledger.ok("authority", tx.ApproveDevice("pv-1"))
    ledger.ok("authority", factors.publish_action())
    ledger.ok("mrv", issue_action("b1"))
    ledger.ok("maekawa", tx.TransferValue("b1", "buyer", 100))


# ---- read-only looks into the SQLite file -----------------------------------------------
def connect_ro(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True, timeout=60)


def rows(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = connect_ro(data_dir)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def snapshot(data_dir: Path) -> dict[str, Any]:
    """Every stored block, transaction and state row, in one read transaction."""
    conn = connect_ro(data_dir)
    try:
        conn.execute("BEGIN")
        blocks = conn.execute("SELECT height, hash, header FROM blocks ORDER BY height").fetchall()
        txs = conn.execute(
            "SELECT height, idx, hash, tx, result FROM txs ORDER BY height, idx"
        ).fetchall()
        state = dict(conn.execute("SELECT key, value FROM state").fetchall())
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {
        "blocks": {int(h): (bytes(a), bytes(b)) for h, a, b in blocks},
        "txs": {(int(h), int(i)): (bytes(a), bytes(t), bytes(r)) for h, i, a, t, r in txs},
        "state": {bytes(k): bytes(v) for k, v in state.items()},
    }


def header_of(data_dir: Path, block_hash: bytes) -> block.BlockHeader:
    found = rows(data_dir, "SELECT header FROM blocks WHERE hash = ?", (block_hash,))
    assert len(found) == 1, f"block {block_hash.hex()} stored {len(found)} times"
    return block.decode_header(bytes(found[0][0]))


def stored_result(data_dir: Path, height: int, index: int) -> block.TxResult:
    found = rows(data_dir, "SELECT result FROM txs WHERE height = ? AND idx = ?", (height, index))
    assert len(found) == 1, (height, index)
    return block.decode_result(bytes(found[0][0]))


def record_dict(record_type: type[msgspec.Struct], values: dict[str, Any]) -> dict[str, Any]:
    """A record printed by `reco2 query`: an object with every field of its struct."""
    names = [f.name for f in msgspec.structs.fields(record_type)]
    assert list(values) == names, (names, values)
    return values


def iter_changed(before: dict[bytes, bytes], after: dict[bytes, bytes]) -> Iterator[bytes]:
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            yield key
