"""The JSON API under /api/v1: typed reads of the ledger and writes for logged-in people.

Reads are public and never name an undisclosed seller: orders and trades go through
``views.market``; batches and devices of a participant who does not disclose their name show
``"undisclosed"`` as the owner, and only participants who disclose their names are listed.
A batch's history carries signed transactions and raw records (which name the true
participants), so it is public only when it names no hidden one (``privacy``), and otherwise
shown to the authority and to those who know them already.

Writes need the session cookie and the session's CSRF token in ``X-CSRF-Token``; each checks the
participant's role before the server signs the transaction with the custodied key, and answers
with the ledger's receipt once the block is on disk (200 when applied, 409 when the ledger
refused it). Machines sign their own transactions and send them to ``/node/v1/txs``, and
their meters' signed readings to ``/api/v1/readings``.

(No ``from __future__ import annotations`` here: FastAPI resolves the routes' annotations,
which name dependencies defined inside ``create_api``.)
"""

import asyncio
import base64
import pathlib
import sqlite3
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.security import APIKeyCookie, APIKeyHeader
from pydantic import AfterValidator, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from reco2.ingest import contract
from reco2.ledger import tx
from reco2.ledger.places import is_known_place
from reco2.ledger.state import (
    DEVICE,
    FACTORS,
    PARTICIPANT,
    RETIREMENT,
    State,
)
from reco2.ledger.types import (
    BuyConditions,
    Device,
    DeviceStatus,
    FactorTable,
    GridContract,
    Participant,
    Purpose,
    Retirement,
    Role,
    Source,
    ValueBatch,
)
from reco2.node import history
from reco2.node.audit import audit
from reco2.node.embedded import Receipt
from reco2.node.store import DB_FILE
from reco2.views import market
from reco2.web import privacy, security
from reco2.web.accounts import Session

if TYPE_CHECKING:
    from reco2.web.app import Web

PREFIX = "/api/v1"
SESSION_COOKIE = "reco2_session"  # the app's session cookie (see reco2.web.app)
CSRF_HEADER = "X-CSRF-Token"
ID_RE = r"^[A-Za-z0-9._:-]{1,64}$"
PLACE_RE = r"^[0-9]{2}([0-9]{4})?$"
DATE_RE = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$"
MAX_QUANTITY_G = 10**12  # a million tonnes
MAX_PRICE_SEN_PER_KG = 10**9
MAX_TIME_NS = 2**62
MAX_TIME_S = 2**40
PAGE_MAX = 1_000
AUDIT_EVERY_S = 10
MSGPACK_TYPES = frozenset(
    {contract.CONTENT_TYPE, "application/x-msgpack", "application/vnd.msgpack"}
)


def _utf8(value: str) -> str:
    """Text the ledger can encode (JSON may carry lone surrogates, which UTF-8 cannot)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode") from None
    return value


def _place(code: str) -> str:
    if not is_known_place(code):
        raise ValueError(f"unknown place code {code!r}")
    return code


Id = Annotated[str, Field(pattern=ID_RE)]
Place = Annotated[
    str,
    Field(pattern=PLACE_RE, description="A prefecture or a known municipality code."),
    AfterValidator(_place),
]
Text = Annotated[str, AfterValidator(_utf8)]
PathId = Annotated[str, Path(pattern=ID_RE)]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="At most this many rows.")]
Offset = Annotated[int, Query(ge=0, le=2**31, description="Skip this many rows first.")]

# ---- response models ---------------------------------------------------------------------


class ErrorOut(BaseModel):
    detail: Any = Field(description="Why the request was refused.")


class ReceiptOut(BaseModel):
    ok: bool
    code: str = Field(description='The ledger\'s outcome: "ok" or why it was refused.')
    tx_hash: str
    height: int | None = Field(description="Block height; null when refused at the door.")
    index: int | None
    events: list[str]


class MeOut(BaseModel):
    username: str
    participant_id: str
    roles: list[Role]
    csrf_token: str


class ParticipantOut(BaseModel):
    participant_id: str
    display_name: str
    roles: list[Role]
    registered_height: int


class DeviceOut(BaseModel):
    device_id: str
    owner: str = Field(description='The owner, or "undisclosed".')
    aggregator: str
    source: Source
    capacity_w: int
    prefecture_code: str
    municipality_code: str
    place_name: str
    commissioned_on: str
    grid_contract: GridContract
    status: DeviceStatus
    registered_height: int


class SellOut(BaseModel):
    order_id: str
    seller: str = Field(description='The seller, or "undisclosed".')
    seller_name: str
    quantity_g: int = Field(description="What is left to sell [g CO2].")
    all_or_none: bool
    price_sen_per_kg: int
    place: str
    place_name: str
    source: Source
    expires_at_ns: int
    seq: int


class BuyOut(BaseModel):
    order_id: str
    buyer: str
    quantity_g: int = Field(description="What is left to buy [g CO2].")
    all_or_none: bool
    price_sen_per_kg: int
    sellers: list[str]
    seller_names: list[str]
    places: list[str]
    place_names: list[str]
    sources: list[Source]
    period_from_s: int
    period_to_s: int
    commissioned_after: str
    exclude_estimated: bool
    expires_at_ns: int
    seq: int


class BookOut(BaseModel):
    sell: list[SellOut] = Field(description="Cheapest first.")
    buy: list[BuyOut] = Field(description="Dearest first.")


class MyOrdersOut(BaseModel):
    sell: list[SellOut]
    buy: list[BuyOut]


class TradeOut(BaseModel):
    trade_seq: int
    height: int
    time_ns: int
    buy_order: str
    sell_order: str
    buyer: str
    seller: str = Field(description='The seller, or "undisclosed".')
    quantity_g: int
    price_sen_per_kg: int
    value_sen: int
    batches: list[tuple[str, int]] = Field(
        description="(batch_id, quantity_g) drawn; empty when the seller is undisclosed."
    )
    tx_hash: str = Field(description='The transaction; "" when the seller is undisclosed.')


class BatchOut(BaseModel):
    """One issuance with its provenance: who, where, when, which source, and how."""

    batch_id: str
    device_id: str
    owner: str = Field(description='The generator, or "undisclosed".')
    owner_name: str
    aggregator: str
    source: Source
    prefecture_code: str
    municipality_code: str
    place_name: str
    period_start_s: int
    period_end_s: int
    self_consumed_wh: int
    measured_intervals: int
    estimated_intervals: int
    estimated_wh: int
    co2_g: int
    factor_version: str
    factor_fiscal_year: int
    factor_utility: str
    factor_mg_per_wh: int
    carried_in_mg: int
    carried_out_mg: int
    readings_root: str
    issued_height: int
    issued_time_ns: int
    issue_tx: str


class ProofOut(BaseModel):
    total: int
    index: int
    leaf_hash: str
    aunts: list[str]


class HistoryTxOut(BaseModel):
    height: int
    index: int
    tx: str = Field(description="The signed transaction, base64.")
    result: str
    tx_proof: ProofOut
    result_proof: ProofOut


class ProofOpOut(BaseModel):
    type: str
    key: str
    data: str


class ProofOpsOut(BaseModel):
    ops: list[ProofOpOut]


class HistoryStateOut(BaseModel):
    key: str
    value: str
    proof_ops: ProofOpsOut


class HistoryOut(BaseModel):
    """The batch's verifiable history: headers, transactions and state with Merkle proofs
    against the last block on disk (check it with ``reco2 verify-proof``)."""

    format: str
    chain_id: str
    batch_id: str
    tip_height: int
    tip_hash: str
    headers: list[str]
    transactions: list[HistoryTxOut]
    state: list[HistoryStateOut]


class RetirementOut(BaseModel):
    retirement_id: str
    holder: str
    batch_id: str
    quantity_g: int
    beneficiary: str
    purpose: Purpose
    claimed_period: str
    note: str
    height: int
    time_ns: int
    tx_hash: str


class FactorRowOut(BaseModel):
    fiscal_year: int
    utility: str
    factor_mg_per_wh: int
    source: str
    published_on: str


class FactorTableOut(BaseModel):
    version: str
    rows: list[FactorRowOut]
    published_height: int


class AuditRunOut(BaseModel):
    """A full audit (every signature, link, root, and the state replayed from genesis) of a
    consistent snapshot of the ledger taken when it began."""

    ok: bool
    blocks: int
    txs: int
    state_rows: int
    tip_height: int
    tip_hash: str
    problems: list[str] = Field(description="The first problems found (empty when ok).")
    started_ns: int
    duration_s: float


class AuditOut(BaseModel):
    """What a client needs to audit or verify against this node: the last block on disk, and
    the last audit this server ran (POST /api/v1/audit), if any."""

    chain_id: str
    height: int = Field(description="The last block on disk.")
    tip_hash: str
    state_root: str
    applied_height: int = Field(description="The last block applied (may not be on disk yet).")
    pending_blocks: int
    audit_command: str
    last_audit: AuditRunOut | None


class ReadingOut(BaseModel):
    reading_id: str | None = Field(description="null when the bytes do not decode.")
    status: Literal["accepted", "duplicate", "rejected"]
    reasons: list[str] = Field(description="Why it was rejected, e.g. bad_signature.")


class ReadingsOut(BaseModel):
    results: list[ReadingOut]


# ---- request models ----------------------------------------------------------------------


class _In(BaseModel):
    model_config = {"extra": "forbid"}


class BuyOrderIn(_In):
    order_id: Id
    quantity_g: int = Field(ge=1, le=MAX_QUANTITY_G)
    price_sen_per_kg: int = Field(ge=1, le=MAX_PRICE_SEN_PER_KG, description="The limit.")
    all_or_none: bool = False
    sellers: list[Id] = Field(default=[], max_length=32)
    places: list[Place] = Field(default=[], max_length=32)
    sources: list[Source] = Field(default=[], max_length=5)
    period_from_s: int = Field(default=0, ge=0, le=MAX_TIME_S)
    period_to_s: int = Field(default=0, ge=0, le=MAX_TIME_S)
    commissioned_after: str = Field(default="", pattern=DATE_RE)
    exclude_estimated: bool = False
    expires_at_ns: int = Field(default=0, ge=0, le=MAX_TIME_NS, description="0: until cancelled.")


class SellOrderIn(_In):
    order_id: Id
    quantity_g: int = Field(ge=1, le=MAX_QUANTITY_G)
    price_sen_per_kg: int = Field(ge=1, le=MAX_PRICE_SEN_PER_KG, description="The minimum.")
    source: Source
    place: Place
    all_or_none: bool = False
    name_public: bool = True
    buyers: list[Id] = Field(default=[], max_length=32)
    expires_at_ns: int = Field(default=0, ge=0, le=MAX_TIME_NS, description="0: until cancelled.")


class SellRuleIn(_In):
    rule_id: Id
    device_id: Id
    price_sen_per_kg: int = Field(ge=1, le=MAX_PRICE_SEN_PER_KG)
    cap_g: int = Field(ge=1, le=MAX_QUANTITY_G, description="List at most this much in all.")
    name_public: bool = True
    buyers: list[Id] = Field(default=[], max_length=32)


class RetireIn(_In):
    retirement_id: Id
    batch_id: Id
    quantity_g: int = Field(ge=1, le=MAX_QUANTITY_G)
    beneficiary: Annotated[Text, Field(min_length=1, max_length=200)]
    purpose: Purpose
    claimed_period: Annotated[Text, Field(max_length=40)] = ""
    note: Annotated[Text, Field(max_length=500)] = ""


# ---- conversions -------------------------------------------------------------------------


def _public(state: State, participant_id: str) -> bool:
    participant = state.participant(participant_id)
    return participant is not None and participant.name_public


def _device_out(state: State, d: Device) -> DeviceOut:
    return DeviceOut(
        device_id=d.device_id,
        owner=d.owner if _public(state, d.owner) else market.UNDISCLOSED,
        aggregator=d.aggregator,
        source=d.source,
        capacity_w=d.capacity_w,
        prefecture_code=d.prefecture_code,
        municipality_code=d.municipality_code,
        place_name=market.place_name(d.municipality_code),
        commissioned_on=d.commissioned_on,
        grid_contract=d.grid_contract,
        status=d.status,
        registered_height=d.registered_height,
    )


def _batch_out(state: State, b: ValueBatch) -> BatchOut:
    public = _public(state, b.owner)
    return BatchOut(
        batch_id=b.batch_id,
        device_id=b.device_id,
        owner=b.owner if public else market.UNDISCLOSED,
        owner_name=market.display_name(state, b.owner) if public else "非公表",
        aggregator=b.aggregator,
        source=b.source,
        prefecture_code=b.prefecture_code,
        municipality_code=b.municipality_code,
        place_name=market.place_name(b.municipality_code),
        period_start_s=b.period_start_s,
        period_end_s=b.period_end_s,
        self_consumed_wh=b.self_consumed_wh,
        measured_intervals=b.measured_intervals,
        estimated_intervals=b.estimated_intervals,
        estimated_wh=b.estimated_wh,
        co2_g=b.co2_g,
        factor_version=b.factor_version,
        factor_fiscal_year=b.factor_fiscal_year,
        factor_utility=b.factor_utility,
        factor_mg_per_wh=b.factor_mg_per_wh,
        carried_in_mg=b.carried_in_mg,
        carried_out_mg=b.carried_out_mg,
        readings_root=b.readings_root.hex(),
        issued_height=b.issued_height,
        issued_time_ns=b.issued_time_ns,
        issue_tx=b.issue_tx.hex(),
    )


def _retirement_out(r: Retirement) -> RetirementOut:
    return RetirementOut(
        retirement_id=r.retirement_id,
        holder=r.holder,
        batch_id=r.batch_id,
        quantity_g=r.quantity_g,
        beneficiary=r.beneficiary,
        purpose=r.purpose,
        claimed_period=r.claimed_period,
        note=r.note,
        height=r.height,
        time_ns=r.time_ns,
        tx_hash=r.tx_hash.hex(),
    )


def _factors_out(t: FactorTable) -> FactorTableOut:
    rows = [
        FactorRowOut(
            fiscal_year=r.fiscal_year,
            utility=r.utility,
            factor_mg_per_wh=r.factor_mg_per_wh,
            source=r.source,
            published_on=r.published_on,
        )
        for r in t.rows
    ]
    return FactorTableOut(version=t.version, rows=rows, published_height=t.published_height)


def _receipt_out(receipt: Receipt) -> ReceiptOut:
    return ReceiptOut(
        ok=receipt.ok,
        code=receipt.code,
        tx_hash=receipt.tx_hash.hex(),
        height=receipt.height,
        index=receipt.index,
        events=list(receipt.events),
    )


def _page(rows: list[Any], limit: int, offset: int) -> list[Any]:
    return rows[offset : offset + limit]


# ---- the router --------------------------------------------------------------------------

_session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="The session cookie set by POST /login.",
)
_csrf_header = APIKeyHeader(
    name=CSRF_HEADER,
    auto_error=False,
    description="The session's CSRF token (GET /api/v1/me), on every write.",
)
_REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not JSON."},
    401: {"model": ErrorOut, "description": "No session."},
    403: {"model": ErrorOut, "description": "Wrong or missing CSRF token, or the wrong role."},
    409: {"model": ReceiptOut, "description": "The ledger refused the transaction."},
    413: {"model": ErrorOut, "description": "The body is over 64 KiB."},
}


def create_api(web: "Web") -> APIRouter:
    """The /api/v1 routes over the web app's node and accounts."""
    router = APIRouter(prefix=PREFIX, tags=["api v1"])
    audits = _Audits()

    def session_of(token: str | None) -> Session | None:
        return web.accounts.session(token) if token else None

    def signed_in(
        token: Annotated[str | None, Depends(_session_cookie)],
    ) -> Session:
        session = session_of(token)
        if session is None:
            raise HTTPException(401, "log in first")
        return session

    def writer(
        token: Annotated[str | None, Depends(_session_cookie)],
        csrf: Annotated[str | None, Depends(_csrf_header)],
    ) -> Session:
        session = signed_in(token)
        if not csrf or not _same(csrf, session.csrf_token):
            raise HTTPException(403, "CSRF token missing or wrong")
        return session

    def need(session: Session, *roles: Role) -> None:
        held = web.roles(session.participant_id)
        if not any(role in held for role in roles):
            names = " or ".join(r.value for r in roles)
            raise HTTPException(403, f"this needs the {names} role")

    async def act(session: Session, action: tx.Action, response: Response) -> ReceiptOut:
        receipt = await web.act(session, action)
        if not receipt.ok:
            response.status_code = 409
        return _receipt_out(receipt)

    # ---- reads ---------------------------------------------------------------------------
    @router.get("/participants", summary="Participants who disclose their names")
    def participants(limit: Limit = 100, offset: Offset = 0) -> list[ParticipantOut]:
        def rows(state: State) -> list[ParticipantOut]:
            return [
                ParticipantOut(
                    participant_id=p.participant_id,
                    display_name=p.display_name,
                    roles=list(p.roles),
                    registered_height=p.registered_height,
                )
                for _, p in state.records_with_prefix(PARTICIPANT)
                if isinstance(p, Participant) and p.name_public
            ]

        return _page(web.read(rows), limit, offset)

    @router.get("/devices", summary="Registered devices (undisclosed owners hidden)")
    def devices(limit: Limit = 100, offset: Offset = 0) -> list[DeviceOut]:
        def rows(state: State) -> list[DeviceOut]:
            return [
                _device_out(state, d)
                for _, d in state.records_with_prefix(DEVICE)
                if isinstance(d, Device)
            ]

        return _page(web.read(rows), limit, offset)

    @router.get(
        "/devices/{device_id}",
        summary="One device",
        responses={404: {"model": ErrorOut, "description": "No such device."}},
    )
    def device(device_id: PathId) -> DeviceOut:
        def one(state: State) -> DeviceOut | None:
            d = state.device(device_id)
            return None if d is None else _device_out(state, d)

        found: DeviceOut | None = web.read(one)
        if found is None:
            raise HTTPException(404, "no such device")
        return found

    @router.get("/book", summary="The order book: 売り場 and 買い場 (undisclosed sellers hidden)")
    def book(limit: Limit = PAGE_MAX) -> BookOut:
        view = web.read(web.redact.book)
        return BookOut.model_validate({"sell": view["sell"][:limit], "buy": view["buy"][:limit]})

    @router.get("/trades", summary="Trades, oldest first (undisclosed sellers hidden)")
    def trades(limit: Limit = 100, offset: Offset = 0) -> list[TradeOut]:
        rows = web.redact.trades(_page(web.read(market.trades), limit, offset))
        return [TradeOut.model_validate(t) for t in rows]

    @router.get("/batches", summary="Issued value with its provenance")
    def batches(limit: Limit = 100, offset: Offset = 0) -> list[BatchOut]:
        def rows(state: State) -> list[BatchOut]:
            return [
                _batch_out(state, b)
                for _, b in state.records_with_prefix(b"batch/")
                if isinstance(b, ValueBatch)
            ]

        return _page(web.read(rows), limit, offset)

    @router.get(
        "/batches/{batch_id}",
        summary="One batch with its provenance",
        responses={404: {"model": ErrorOut, "description": "No such batch."}},
    )
    def batch(batch_id: PathId) -> BatchOut:
        def one(state: State) -> BatchOut | None:
            b = state.batch(batch_id)
            return None if b is None else _batch_out(state, b)

        found: BatchOut | None = web.read(one)
        if found is None:
            raise HTTPException(404, "no such batch")
        return found

    @router.get(
        "/batches/{batch_id}/history",
        summary="A batch's history from issuance to retirement, with Merkle proofs",
        responses={
            403: {
                "model": ErrorOut,
                "description": "The history names an undisclosed participant; log in.",
            },
            404: {"model": ErrorOut, "description": "No such batch on disk yet."},
        },
    )
    async def batch_history(
        batch_id: PathId, token: Annotated[str | None, Depends(_session_cookie)] = None
    ) -> HistoryOut:
        session = session_of(token)
        viewer = None if session is None else session.participant_id
        if web.read(lambda state: state.batch(batch_id)) is None:
            raise HTTPException(404, "no such batch")
        try:
            bundle = await run_in_threadpool(history.build, web.config.data_dir, batch_id)
        except LookupError:
            raise HTTPException(404, "the batch is not on disk yet; try again") from None
        txs = [base64.b64decode(entry["tx"]) for entry in bundle["transactions"]]
        if not web.read(lambda state: privacy.may_see_history(state, batch_id, txs, viewer)):
            raise HTTPException(
                403,
                "this history names a participant who does not disclose their name (the owner, "
                "a holder or a seller): it is shown to the authority and to those who know them",
            )
        return HistoryOut.model_validate(bundle)

    @router.get("/retirements", summary="Retirements (償却): who retired what, for whom and why")
    def retirements(limit: Limit = 100, offset: Offset = 0) -> list[RetirementOut]:
        def rows(state: State) -> list[RetirementOut]:
            return [
                _retirement_out(r)
                for _, r in state.records_with_prefix(RETIREMENT)
                if isinstance(r, Retirement)
            ]

        return _page(web.read(rows), limit, offset)

    @router.get("/factors", summary="Published emission-factor tables")
    def factor_tables() -> list[FactorTableOut]:
        def rows(state: State) -> list[FactorTableOut]:
            return [
                _factors_out(t)
                for _, t in state.records_with_prefix(FACTORS)
                if isinstance(t, FactorTable)
            ]

        result: list[FactorTableOut] = web.read(rows)
        return result

    @router.get("/audit", summary="Audit status: the chain's tip on disk, to audit or verify")
    def audit_status() -> AuditOut:
        node = web.node
        height, hash_, root = node.durable_height, node.durable_hash, node.durable_state_root
        applied = node.height
        return AuditOut(
            chain_id=node.app.chain_id,
            height=height,
            tip_hash=hash_.hex(),
            state_root=root.hex(),
            applied_height=applied,
            pending_blocks=max(0, applied - height),
            audit_command=f"reco2 audit -d DATA_DIR --trusted-hash {hash_.hex()}",
            last_audit=audits.last,
        )

    @router.post(
        "/audit",
        summary="Audit a snapshot of the ledger now (logged in; changes nothing)",
        description=(
            "Replays the chain from genesis and checks every signature, hash link, Merkle root "
            "and the stored state. An audit begun in the last 10 s is answered instead."
        ),
        responses={
            401: {"model": ErrorOut, "description": "No session."},
            403: {"model": ErrorOut, "description": "Wrong or missing CSRF token."},
            409: {"model": ErrorOut, "description": "An audit is running already."},
        },
    )
    async def run_audit(session: Annotated[Session, Depends(writer)]) -> AuditRunOut:
        last = audits.last
        if last is not None and time.time_ns() - last.started_ns < AUDIT_EVERY_S * 10**9:
            return last  # audits are costly: at most one every AUDIT_EVERY_S seconds
        if not audits.lock.acquire(blocking=False):
            raise HTTPException(409, "an audit is running already; see GET /api/v1/audit")
        try:
            audits.last = await run_in_threadpool(_audit_snapshot, web.config.data_dir)
        finally:
            audits.lock.release()
        return audits.last

    @router.post(
        "/readings",
        summary="Readings intake: a MessagePack batch of signed readings (machines)",
        description=(
            "The body is a MessagePack array of byte strings, each one signed reading "
            f"(at most {contract.MAX_BATCH_READINGS} readings and {contract.MAX_BATCH_BYTES} "
            "bytes). The answer comes once every reading is durably stored, one result per "
            "reading in body order: `accepted`, `duplicate` (the same signed bytes were "
            "accepted before: sending a batch again is safe) or `rejected` with the reasons. "
            "The meter's signature is the credential: no session is needed."
        ),
        responses={
            400: {"model": ErrorOut, "description": "The body is not a batch of readings."},
            413: {"model": ErrorOut, "description": "Too many readings or bytes."},
            415: {"model": ErrorOut, "description": "Not application/msgpack."},
            503: {"model": ErrorOut, "description": "No intake here, or the store failed."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    contract.CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def readings(request: Request) -> ReadingsOut:
        engine = web.intake
        if engine is None:
            raise HTTPException(
                503,
                "no readings intake on this server (started with --no-intake): send readings "
                "to the intake service (reco2 intake)",
            )
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in MSGPACK_TYPES:
            raise HTTPException(415, f"send {contract.CONTENT_TYPE}, not {media_type or 'nothing'}")
        try:
            raws = contract.decode_batch(await request.body())
        except contract.BatchError as exc:
            raise HTTPException(400, str(exc)) from None
        if len(raws) > contract.MAX_BATCH_READINGS:
            raise HTTPException(
                413, f"{len(raws)} readings: at most {contract.MAX_BATCH_READINGS} a request"
            )
        if not raws:
            return ReadingsOut(results=[])
        try:
            answers = await asyncio.wrap_future(engine.submit_future(raws))
        except Exception as exc:
            raise HTTPException(503, f"the readings were not stored ({exc}); send again") from None
        return ReadingsOut(
            results=[
                ReadingOut(reading_id=a.reading_id, status=a.status.value, reasons=list(a.reasons))
                for a in answers
            ]
        )

    # ---- the logged-in person --------------------------------------------------------------
    @router.get(
        "/me",
        summary="Who is logged in, with the CSRF token for writes",
        responses={401: {"model": ErrorOut, "description": "No session."}},
    )
    def me(session: Annotated[Session, Depends(signed_in)]) -> MeOut:
        return MeOut(
            username=session.username,
            participant_id=session.participant_id,
            roles=web.roles(session.participant_id),
            csrf_token=session.csrf_token,
        )

    @router.get(
        "/me/orders",
        summary="My open orders (both sides)",
        responses={401: {"model": ErrorOut, "description": "No session."}},
    )
    def my_orders(session: Annotated[Session, Depends(signed_in)]) -> MyOrdersOut:
        pid = session.participant_id

        def mine(state: State) -> dict[str, list[dict[str, Any]]]:
            return {
                "sell": [
                    market.sell_view(state, o) | {"seller": pid}
                    for o in state.book.sells.values()
                    if o.owner == pid
                ],
                "buy": [
                    market.buy_view(state, o) for o in state.book.buys.values() if o.owner == pid
                ],
            }

        return MyOrdersOut.model_validate(web.read(mine))

    # ---- writes ----------------------------------------------------------------------------
    Writer = Annotated[Session, Depends(writer)]

    @router.post("/orders/buy", summary="Place a buy order (buyer)", responses=_REFUSED)
    async def place_buy(body: BuyOrderIn, session: Writer, response: Response) -> ReceiptOut:
        need(session, Role.buyer)
        conditions = BuyConditions(
            list(body.sellers),
            list(body.places),
            list(body.sources),
            body.period_from_s,
            body.period_to_s,
            body.commissioned_after,
            body.exclude_estimated,
        )
        action = tx.PlaceBuyOrder(
            body.order_id,
            body.quantity_g,
            body.all_or_none,
            body.price_sen_per_kg,
            conditions,
            body.expires_at_ns,
        )
        return await act(session, action, response)

    @router.post(
        "/orders/sell", summary="Place a sell order (prosumer or buyer)", responses=_REFUSED
    )
    async def place_sell(body: SellOrderIn, session: Writer, response: Response) -> ReceiptOut:
        need(session, Role.prosumer, Role.buyer)
        action = tx.PlaceSellOrder(
            body.order_id,
            body.quantity_g,
            body.all_or_none,
            body.price_sen_per_kg,
            body.source,
            body.place,
            body.name_public,
            list(body.buyers),
            body.expires_at_ns,
        )
        return await act(session, action, response)

    @router.delete(
        "/orders/{order_id}",
        summary="Cancel one of my orders",
        responses=_REFUSED | {404: {"model": ErrorOut, "description": "No open order of yours."}},
    )
    async def cancel_order(order_id: PathId, session: Writer, response: Response) -> ReceiptOut:
        def owner(state: State) -> str | None:
            order = state.buy_order(order_id) or state.sell_order(order_id)
            return None if order is None else order.owner

        if web.read(owner) != session.participant_id:
            raise HTTPException(404, "no such order of yours")
        return await act(session, tx.CancelOrder(order_id), response)

    @router.post(
        "/rules", summary="Set a standing sell rule on my device (prosumer)", responses=_REFUSED
    )
    async def set_rule(body: SellRuleIn, session: Writer, response: Response) -> ReceiptOut:
        need(session, Role.prosumer)
        action = tx.SetSellRule(
            body.rule_id,
            body.device_id,
            body.price_sen_per_kg,
            body.name_public,
            body.cap_g,
            list(body.buyers),
        )
        return await act(session, action, response)

    @router.delete(
        "/rules/{rule_id}",
        summary="Cancel one of my standing sell rules (prosumer)",
        responses=_REFUSED | {404: {"model": ErrorOut, "description": "No rule of yours."}},
    )
    async def cancel_rule(rule_id: PathId, session: Writer, response: Response) -> ReceiptOut:
        need(session, Role.prosumer)
        rule = web.read(lambda state: state.sell_rule(rule_id))
        if rule is None or rule.owner != session.participant_id:
            raise HTTPException(404, "no such rule of yours")
        return await act(session, tx.CancelSellRule(rule_id), response)

    @router.post("/retirements", summary="Retire value I hold (償却)", responses=_REFUSED)
    async def retire(body: RetireIn, session: Writer, response: Response) -> ReceiptOut:
        action = tx.RetireValue(
            body.retirement_id,
            body.batch_id,
            body.quantity_g,
            body.beneficiary,
            body.purpose,
            body.claimed_period,
            body.note,
        )
        return await act(session, action, response)

    return router


class _Audits:
    """The last audit this server ran, and the lock that lets one run at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: AuditRunOut | None = None


def _audit_snapshot(data_dir: pathlib.Path) -> AuditRunOut:
    """Audit a consistent copy of the ledger (SQLite's online backup), so blocks the node
    writes meanwhile cannot make the stored state look different from the replay."""
    started_ns, began = time.time_ns(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reco2-audit-") as tmp:
        copy = pathlib.Path(tmp)
        source = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True)
        target = sqlite3.connect(copy / DB_FILE)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        report = audit(copy)
    return AuditRunOut(
        ok=report.ok,
        blocks=report.blocks,
        txs=report.txs,
        state_rows=report.state_rows,
        tip_height=report.blocks - 1,
        tip_hash=report.tip_hash.hex(),
        problems=[str(p) for p in report.problems[:20]],
        started_ns=started_ns,
        duration_s=round(time.perf_counter() - began, 3),
    )


def _same(a: str, b: str) -> bool:
    return security.same_token(a, b)
