"""Submit actions as a participant: sign with its key, pick its next nonce, send to a node.

Two ways in: straight into a data directory (an embedded node started for the call, when no
node is running there) or over HTTP to a running node.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol

import httpx

from reco2.ledger import tx
from reco2.node.embedded import Node, Receipt
from reco2.node.keys import KeyFile


class Submitter(Protocol):
    chain_id: str

    def next_nonce(self, participant_id: str) -> int: ...

    def submit_raw(self, raw: bytes) -> Receipt: ...

    def close(self) -> None: ...


def sign_action(chain_id: str, key: KeyFile, nonce: int, action: tx.Action) -> bytes:
    body = tx.TxBody(chain_id, key.participant_id, nonce, action)  # type: ignore[arg-type]
    return tx.sign(body, key.seed)


def submit(submitter: Submitter, key: KeyFile, action: tx.Action) -> Receipt:
    nonce = submitter.next_nonce(key.participant_id)
    return submitter.submit_raw(sign_action(submitter.chain_id, key, nonce, action))


class EmbeddedSubmitter:
    """Starts an embedded node on a data directory for the duration of the calls."""

    def __init__(self, data_dir: Path, block_interval_ms: int = 1) -> None:
        self.node = Node(
            data_dir, block_interval_ms=block_interval_ms, verify_workers=0, writer_process=False
        ).start()
        self.chain_id = self.node.app.chain_id

    def next_nonce(self, participant_id: str) -> int:
        return self.node.next_nonce(participant_id)

    def submit_raw(self, raw: bytes) -> Receipt:
        return self.node.submit(raw).result()

    def close(self) -> None:
        self.node.stop()

    def __enter__(self) -> EmbeddedSubmitter:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class HttpSubmitter:
    """Talks to a running node's HTTP interface."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)
        self.chain_id = str(self.client.get("/v1/status").raise_for_status().json()["chain_id"])

    def next_nonce(self, participant_id: str) -> int:
        response = self.client.get(f"/v1/nonce/{participant_id}")
        response.raise_for_status()
        return int(response.json()["next_nonce"])

    def submit_raw(self, raw: bytes) -> Receipt:
        response = self.client.post(
            "/v1/txs", content=raw, headers={"content-type": "application/octet-stream"}
        )
        if response.status_code not in (200, 422):
            response.raise_for_status()
        data = response.json()
        return Receipt(
            bytes.fromhex(data["tx_hash"]),
            data["code"],
            data["height"],
            data["index"],
            tuple(data["events"]),
        )

    def close(self) -> None:
        self.client.close()
