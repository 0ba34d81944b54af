"""Crash test: a real node process under a stream of signed transactions over HTTP is killed
with SIGKILL at random moments. After every restart its state root must equal a replay from
genesis (`reco2 audit --json`), and every transaction whose receipt came back with a height
(acknowledged) must be stored exactly once, at that height and index.

The kill moments come from a seeded random generator; the seed is printed and named in every
failure (set RECO2_CRASH_SEED to replay one).
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from reco2.ledger import tx
from reco2.ledger.types import Purpose, Role
from tests.e2e.harness import (
    HTTP_TIMEOUT_S,
    HttpLedger,
    NodeProcess,
    audit_json,
    header_of,
    init_chain,
    populate,
    rows,
    sign,
)
from tests.support import day_start, public_key, seed_of

KILLS = 6
ALL_TXS = "SELECT hash, height, idx, result FROM txs"
FACTOR_VERSION = "moe-meti-r6-results"
HALF_HOUR_S = 1_800
STREAM_START_S = day_start("2025-04-01")  # FY2025: the shipped factor table's year


@dataclass
class Tally:
    """What the senders saw, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: tx hash -> (height, index, code) for every receipt that came back with a height
    acked: dict[bytes, tuple[int, int, str]] = field(default_factory=dict)
    unanswered: int = 0
    errors: list[str] = field(default_factory=list)
    serials: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def serial(self) -> int:
        with self.lock:
            return next(self.serials)


def next_action(who: str, rng: random.Random, tally: Tally) -> tx.Action:
    """One transaction of each participant's usual business (ids never repeat)."""
    n = tally.serial()
    if who == "authority":
        pid = f"p-{n}"
        return tx.RegisterParticipant(pid, public_key(pid), [Role.buyer], pid, True)
    if who == "maekawa":
        return tx.TransferValue("b1", "buyer", rng.randint(1, 3))
    if who == "mrv":  # one half-hour batch per serial: periods never overlap
        start = STREAM_START_S + n * HALF_HOUR_S
        return tx.IssueValue(
            f"s-{n}",
            "pv-1",
            start,
            start + HALF_HOUR_S,
            rng.randint(0, 2_000),
            1,
            0,
            0,
            bytes(32),
            FACTOR_VERSION,
        )
    if who == "bank":
        return tx.DepositYen("buyer", rng.randint(1, 10_000), f"dep-{n}")
    assert who == "buyer"
    choice = rng.randrange(3)
    if choice == 0:
        return tx.RetireValue(f"ret-{n}", "b1", 1, "buyer", Purpose.offset, "FY2025", "")
    if choice == 1:
        return tx.WithdrawYen(rng.randint(1, 500), "bank", f"wd-{n}")
    return tx.TransferValue("b1", "maekawa", 1)


def sender(
    url: str,
    chain_id: str,
    who: str,
    seed: bytes,
    rng: random.Random,
    tally: Tally,
    stop: threading.Event,
) -> None:
    """Send one transaction at a time, with the right nonce, until stopped or the node dies."""
    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S) as client:
        try:
            nonce = int(client.get(f"/v1/nonce/{who}").raise_for_status().json()["next_nonce"])
        except httpx.TransportError:
            return
        while not stop.is_set():
            raw = sign(chain_id, who, nonce, next_action(who, rng, tally), seed)
            try:
                response = client.post(
                    "/v1/txs", content=raw, headers={"content-type": "application/octet-stream"}
                )
            except httpx.TransportError:  # the node was killed under us
                with tally.lock:
                    tally.unanswered += 1
                return
            data = response.json() if response.status_code in (200, 422) else {}
            if response.status_code != 200 or data.get("height") is None:
                with tally.lock:
                    tally.errors.append(
                        f"{who} nonce {nonce}: {response.status_code} {response.text[:200]}"
                    )
                return
            with tally.lock:
                tally.acked[tx.tx_hash(raw)] = (data["height"], data["index"], data["code"])
            nonce += 1


def check_recovered(node: NodeProcess, data_dir: Path, tally: Tally, where: str) -> int:
    """After a restart: the live state root is the replayed one, no acknowledged tx is lost
    or duplicated. Returns the node's height."""
    status = node.status()
    code, report = audit_json(data_dir)
    assert code == 0 and report["ok"], f"{where}: audit failed: {report['problems'][:5]}"
    assert report["tip_hash"] == status["tip_hash"], f"{where}: node tip is not the audited tip"
    replayed_root = header_of(data_dir, bytes.fromhex(report["tip_hash"])).state_root
    assert status["state_root"] == replayed_root.hex(), (
        f"{where}: node state root {status['state_root']} != replayed {replayed_root.hex()}"
    )
    assert report["blocks"] == status["height"] + 1, where

    with tally.lock:
        acked = dict(tally.acked)
    if acked:
        assert max(h for h, _, _ in acked.values()) <= status["height"], (
            f"{where}: an acknowledged block is beyond the restarted node's height"
        )
    stored: dict[bytes, list[tuple[int, int, bytes]]] = {}
    for tx_hash, height, index, result in rows(data_dir, ALL_TXS):
        stored.setdefault(bytes(tx_hash), []).append((int(height), int(index), bytes(result)))
    missing = [h.hex()[:16] for h in acked if h not in stored]
    assert not missing, f"{where}: {len(missing)} acknowledged txs lost, e.g. {missing[:5]}"
    duplicated = [h.hex()[:16] for h, places in stored.items() if len(places) != 1]
    assert not duplicated, f"{where}: txs stored more than once: {duplicated[:5]}"
    moved = [
        (h.hex()[:16], place, stored[h][0][:2])
        for h, place in acked.items()
        if stored[h][0][:2] != place[:2]
    ]
    assert not moved, f"{where}: acknowledged txs stored elsewhere than their receipt: {moved[:5]}"
    return int(status["height"])


def test_node_survives_sigkill_under_load(tmp_path: Path) -> None:
    seed = int(os.environ.get("RECO2_CRASH_SEED", random.SystemRandom().randrange(2**32)))
    print(f"crash test seed: {seed} (replay with RECO2_CRASH_SEED={seed})")
    rng = random.Random(seed)
    data_dir = tmp_path / "chain"
    authority = init_chain(data_dir)
    seeds = {"authority": authority.seed}
    node = NodeProcess(data_dir, tmp_path / "node.log")
    tally = Tally()
    began = time.monotonic()
    try:
        node.start()
        setup = HttpLedger(node.url, seeds)
        chain_id = setup.chain_id
        populate(setup)
        setup.ok(
            "mrv",
            tx.IssueValue(
                "b-big",
                "pv-1",
                day_start("2025-05-01"),
                day_start("2025-05-02"),
                100_000,
                48,
                0,
                0,
                bytes(32),
                FACTOR_VERSION,
            ),
        )
        setup.ok("bank", tx.DepositYen("buyer", 1_000_000, "dep-0"))
        setup.close()
        senders = ("authority", "maekawa", "mrv", "bank", "buyer")
        heights = []
        for kill in range(1, KILLS + 1):
            where = f"seed {seed}, kill {kill}"
            stop = threading.Event()
            threads = [
                threading.Thread(
                    target=sender,
                    args=(
                        node.url,
                        chain_id,
                        who,
                        seeds.get(who) or seed_of(who),
                        random.Random(rng.random()),
                        tally,
                        stop,
                    ),
                    name=f"send-{who}",
                    daemon=True,
                )
                for who in senders
            ]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.3, 1.8))
            node.kill()
            stop.set()
            for thread in threads:
                thread.join(timeout=HTTP_TIMEOUT_S)
                assert not thread.is_alive(), f"{where}: {thread.name} hangs"
            assert not tally.errors, f"{where}: {tally.errors[:5]}\n{node.log()}"
            node.start()
            heights.append(check_recovered(node, data_dir, tally, where))
        node.stop()
        code, report = audit_json(data_dir)
        assert code == 0 and report["ok"], f"seed {seed}: final audit: {report['problems'][:5]}"
    finally:
        node.kill()
    oks = sum(1 for _, _, c in tally.acked.values() if c == "ok")
    print(
        f"{KILLS} kills, heights {heights}, {len(tally.acked)} acknowledged ({oks} ok), "
        f"{tally.unanswered} unanswered, {time.monotonic() - began:.1f} s"
    )
    assert heights == sorted(heights), f"seed {seed}: height went backwards: {heights}"
    assert oks >= KILLS, f"seed {seed}: the stream hardly ran ({oks} ok receipts)"
