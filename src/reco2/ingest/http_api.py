"""The HTTP side of the intake: ``POST /v1/readings`` (the batch endpoint) and a status page.

The contract is in ``contract``. The body is read with a size limit before anything is decoded;
the answer is sent only after the engine has committed every reading of the body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from reco2.ingest import contract
from reco2.ingest.engine import IntakeEngine
from reco2.mrv.store import Recorded

ACCEPTED_TYPES = frozenset(
    {contract.CONTENT_TYPE, "application/x-msgpack", "application/vnd.msgpack"}
)
_json = msgspec.json.Encoder()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def answers_json(answers: list[Recorded]) -> bytes:
    return _json.encode(
        {
            "results": [
                {"reading_id": a.reading_id, "status": a.status.value, "reasons": list(a.reasons)}
                for a in answers
            ]
        }
    )


def create_app(engine: IntakeEngine, status: Callable[[], dict[str, Any]] | None = None) -> FastAPI:
    """The intake's HTTP interface over an engine; ``status`` adds to ``GET /v1/status``."""
    app = FastAPI(title="ReCO2 intake", version="0.1.0")

    @app.post(contract.HTTP_PATH)
    async def post_readings(request: Request) -> Response:
        """Store a batch of signed readings; answers once they are durably stored."""
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type and media_type not in ACCEPTED_TYPES:
            return _error(415, f"send {contract.CONTENT_TYPE}, not {media_type}")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > contract.MAX_BATCH_BYTES:
            return _error(413, f"the body is over {contract.MAX_BATCH_BYTES} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > contract.MAX_BATCH_BYTES:
                return _error(413, f"the body is over {contract.MAX_BATCH_BYTES} bytes")
        try:
            raws = contract.decode_batch(bytes(body))
        except contract.BatchError as exc:
            return _error(400, str(exc))
        if len(raws) > contract.MAX_BATCH_READINGS:
            return _error(
                413, f"{len(raws)} readings: at most {contract.MAX_BATCH_READINGS} per request"
            )
        if not raws:
            return Response(answers_json([]), media_type="application/json")
        try:
            answers = await asyncio.wrap_future(engine.submit_future(raws))
        except Exception as exc:
            return _error(503, f"the readings were not stored ({exc}); send them again")
        return Response(answers_json(answers), media_type="application/json")

    @app.get("/v1/status")
    def get_status() -> dict[str, Any]:
        """What the intake did since it started, and its connections."""
        out: dict[str, Any] = {"store": engine.store.display_url, "engine": engine.stats.as_dict()}
        if status is not None:
            out.update(status())
        return out

    return app
