"""The node's HTTP interface (FastAPI): submit signed transactions, read status, nonces and
state with proofs. Transactions are the raw signed bytes (application/octet-stream); the
response comes once the transaction's block is on disk."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from reco2.ledger import merkle
from reco2.node.embedded import Node, Receipt

MAX_BODY_BYTES = 65_536


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "tx_hash": receipt.tx_hash.hex(),
        "code": receipt.code,
        "height": receipt.height,
        "index": receipt.index,
        "events": list(receipt.events),
    }


def state_json(node: Node, key: str) -> dict[str, Any]:
    """A state key's value (base64) with its proof against the last block's state root."""
    result = node.query(key.encode())
    return {
        "key": key,
        "value": None if result.value is None else base64.b64encode(result.value).decode(),
        "proof_ops": merkle.proof_ops_to_json(result.proof_ops),
        "height": result.height,
        "state_root": result.state_root.hex(),
    }


def create_app(node: Node) -> FastAPI:
    app = FastAPI(title="ReCO2 node", version="0.1.0")

    @app.post("/v1/txs")
    async def submit_tx(request: Request) -> JSONResponse:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise HTTPException(413, "transaction too large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise HTTPException(413, "transaction too large")
        # Decoding and the signature check run on a worker thread, off the event loop.
        pending = await run_in_threadpool(node.submit, bytes(body))
        receipt = await asyncio.wrap_future(pending)
        status = 200 if receipt.height is not None else 422
        return JSONResponse(receipt_json(receipt), status_code=status)

    @app.get("/v1/status")
    def status() -> dict[str, Any]:
        # What is on disk: the last durable block (the node may be applying the next one).
        return {
            "chain_id": node.app.chain_id,
            "height": node.durable_height,
            "tip_hash": node.durable_hash.hex(),
            "state_root": node.durable_state_root.hex(),
        }

    @app.get("/v1/nonce/{participant_id}")
    def nonce(participant_id: str) -> dict[str, Any]:
        try:
            return {"participant_id": participant_id, "next_nonce": node.next_nonce(participant_id)}
        except KeyError:
            raise HTTPException(404, "unknown participant") from None

    @app.get("/v1/state")
    def state(key: str) -> dict[str, Any]:
        return state_json(node, key)

    return app
