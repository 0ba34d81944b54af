"""What the benchmarks share: the baseline (a bare PyNaCl verify loop over the very same
signatures) and a small world of funded participants on a fresh embedded chain."""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nacl.bindings

from reco2 import factors
from reco2.ledger import tx
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from reco2.ledger.genesis import Genesis, GenesisParticipant
from reco2.ledger.types import GridContract, Role, Source
from reco2.node.embedded import Node, create_chain

CHAIN_ID = "reco2-bench"
DAY_S = 86_400


def seed(name: str) -> bytes:
    return hashlib.sha256(b"reco2-bench/" + name.encode()).digest()


def signed_messages(raws: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    """(signature + signed message, public key) exactly as the ledger verifies them."""
    out = []
    for raw in raws:
        decoded = tx.decode(raw, 1 << 20)
        assert isinstance(decoded, tx.DecodedTx)
        env = decoded.envelope
        out.append((env.signature + tx.SIGNING_DOMAIN + env.body, env.public_key))
    return out


def verify_loop_s(messages: Sequence[tuple[bytes, bytes]]) -> float:
    """The baseline: one thread, one bare libsodium verification per signature [s]."""
    open_ = nacl.bindings.crypto_sign_open
    start = time.perf_counter()
    for signed, public_key in messages:
        open_(signed, public_key)
    return time.perf_counter() - start


def best_of(runs: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(runs))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def new_world(data_dir: Path, holders: int, value_g_each: int) -> tuple[Node, dict[str, int]]:
    """A chain with an authority, an aggregator, ``holders`` prosumers each holding one batch
    of ``value_g_each`` g (issued from its own device), returned with a started node and the
    next nonce of every participant."""
    authority = "authority"
    create_chain(
        data_dir,
        Genesis(
            CHAIN_ID,
            1_750_000_000 * 10**9,
            [
                GenesisParticipant(
                    authority, tx.public_key_of(seed(authority)), [Role.authority], "Authority"
                )
            ],
        ),
    )
    node = Node(data_dir, block_interval_ms=5, max_block_txs=2_000).start()
    nonces: dict[str, int] = {}

    def sign(signer: str, action: tx.Action) -> bytes:
        nonce = nonces.get(signer, 0)
        nonces[signer] = nonce + 1
        return tx.sign(tx.TxBody(CHAIN_ID, signer, nonce, action), seed(signer))  # type: ignore[arg-type]

    def run(raws: list[bytes]) -> None:
        for receipt in node.submit_batch(raws):
            assert receipt.ok, receipt

    names = [f"h{i:05d}" for i in range(holders)]
    run(
        [
            sign(
                authority,
                tx.RegisterParticipant(
                    "mrv", tx.public_key_of(seed("mrv")), [Role.aggregator], "MRV", True
                ),
            )
        ]
        + [
            sign(
                authority,
                tx.RegisterParticipant(n, tx.public_key_of(seed(n)), [Role.prosumer], n, True),
            )
            for n in names
        ]
        + [sign(authority, factors.publish_action())]
    )
    run(
        [
            sign(
                n,
                tx.RegisterDevice(
                    f"d-{n}",
                    n,
                    "mrv",
                    Source.solar,
                    10_000_000,
                    "13",
                    "131202",
                    3574,
                    13965,
                    "2019-04-01",
                    GridContract.none,
                    "",
                    [],
                    tx.public_key_of(seed("meter-" + n)),
                ),
            )
            for n in names
        ]
    )
    run([sign(authority, tx.ApproveDevice(f"d-{n}")) for n in names])
    day = parse_iso_date("2025-06-01")
    assert day is not None
    start = jst_midnight_s(day)
    wh = value_g_each * 1000 // 423 + 1
    run(
        [
            sign(
                "mrv",
                tx.IssueValue(
                    f"b-{n}",
                    f"d-{n}",
                    start,
                    start + DAY_S,
                    wh,
                    48,
                    0,
                    0,
                    bytes(32),
                    "moe-meti-r6-results",
                ),
            )
            for n in names
        ]
    )
    return node, nonces
