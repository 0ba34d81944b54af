"""The web app and its HTTP API, beside the embedded node.

People log in; every state change they make is a ledger transaction the server signs with
their custodied key, after checking the session, the CSRF token and the participant's role.
Public reads (the board, trades, the SSE feed, verification) never show an undisclosed seller.
The node's own machine API (signed transactions, status, nonces) is mounted at /node; its raw
state read (any record with its proof, true owners included) answers the authority only.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reco2.ingest import contract
from reco2.ingest.engine import IntakeEngine
from reco2.ledger import tx
from reco2.ledger.state import State
from reco2.ledger.types import Purpose, Retirement, Role, Trade
from reco2.node.embedded import Node, Receipt
from reco2.node.server import create_app as create_node_app
from reco2.node.server import state_json
from reco2.scenario.model import ScenarioError, kg_to_g
from reco2.views import market
from reco2.web import (
    i18n,
    pages_audit,
    pages_devices,
    pages_docs,
    pages_orders,
    privacy,
    security,
    statement,
)
from reco2.web.accounts import Accounts, Session
from reco2.web.api import create_api
from reco2.web.feed import MarketFeed
from reco2.web.kit import PageKit
from reco2.web.statement import JST

HERE = Path(__file__).parent
SESSION_COOKIE = "reco2_session"
LOGIN_CSRF_COOKIE = "reco2_login_csrf"
LANG_COOKIE = "lang"
MAX_BODY_BYTES = 65_536
MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # a statement PDF on /verify
READINGS_PATH = "/api/v1/readings"
#: Larger bodies than the default, where a route needs them.
BODY_LIMITS = {"/verify": MAX_UPLOAD_BYTES, READINGS_PATH: contract.MAX_BATCH_BYTES}
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
}
T = TypeVar("T")


class BodyLimit:
    """Refuse a request body over the limit with 413, before the route reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = BODY_LIMITS.get(scope["path"], MAX_BODY_BYTES)
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _too_large(send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"detail":"request body too large"}'})


@dataclass
class WebConfig:
    data_dir: Path
    secure_cookies: bool = True


class Web:
    """What the routes share: the node, the accounts, the readings intake (when attached),
    the feed and one lock per signer."""

    def __init__(
        self,
        node: Node,
        accounts: Accounts,
        config: WebConfig,
        intake: IntakeEngine | None = None,
    ) -> None:
        self.node = node
        self.accounts = accounts
        self.config = config
        self.intake = intake
        self.redact = privacy.Redactor(security.load_or_create_secret(config.data_dir))
        self.feed = MarketFeed(node)
        self._signer_locks: dict[str, asyncio.Lock] = {}

    def read(self, fn: Callable[[State], T]) -> T:
        """Read the node's state with the sequencer held back (the node has no public read
        lock yet; blocks applied but not yet on disk are visible here)."""
        with self.node._app_lock:
            return fn(self.node.app.state)

    def roles(self, participant_id: str) -> list[Role]:
        participant = self.node.app.state.participant(participant_id)
        return list(participant.roles) if participant else []

    async def act(self, session: Session, action: tx.Action) -> Receipt:
        """Sign with the user's custodied key and wait until the block is on disk."""
        pid = session.participant_id
        lock = self._signer_locks.setdefault(pid, asyncio.Lock())
        seed = await run_in_threadpool(self.accounts.seed_of, session.username)
        async with lock:  # one nonce at a time per signer
            nonce = self.node.next_nonce(pid)
            body = tx.TxBody(self.node.app.chain_id, pid, nonce, action)  # type: ignore[arg-type]
            pending = self.node.submit(tx.sign(body, seed))
        return await asyncio.wrap_future(pending)


def create_app(
    node: Node, accounts: Accounts, config: WebConfig, intake: IntakeEngine | None = None
) -> FastAPI:
    web = Web(node, accounts, config, intake)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        web.feed.attach(asyncio.get_running_loop())
        yield
        web.feed.close()

    app = FastAPI(
        title="ReCO2 web market",
        version="0.1.0",
        lifespan=lifespan,
        description="Market board, orders, value and retirement statements (issue 6).",
        docs_url=None,  # Swagger UI and ReDoc need a CDN and inline scripts: see pages_docs
        redoc_url=None,
    )
    app.state.web = web
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["jst"] = _jst
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(create_api(web))
    app.add_middleware(BodyLimit)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # ---- helpers ----------------------------------------------------------------------
    def lang_of(request: Request) -> str:
        lang = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "ja"
        return lang if lang in i18n.LANGS else i18n.DEFAULT

    def session_of(request: Request) -> tuple[str, Session] | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        found = accounts.session(token)
        return None if found is None else (token, found)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        lang = lang_of(request)
        found = session_of(request)
        response = templates.TemplateResponse(
            request,
            name,
            {
                "t": i18n.texts(lang),
                "lang": lang,
                "session": found[1] if found else None,
                **context,
            },
            status_code=status,
        )
        if request.query_params.get("lang") == lang:
            response.set_cookie(LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400)
        return response

    def require_page(request: Request) -> Session:
        found = session_of(request)
        if found is None:
            raise _Redirect(f"/login?next={request.url.path}")
        return found[1]

    async def require_write(request: Request, role: Role | None) -> tuple[Session, dict[str, str]]:
        """Session, CSRF and role checks of a form post; returns the form fields."""
        found = session_of(request)
        if found is None:
            raise HTTPException(401, "log in first")
        session = found[1]
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        sent = request.headers.get("x-csrf-token") or form.get("csrf_token", "")
        if not sent or not _same(sent, session.csrf_token):
            raise HTTPException(403, "CSRF token missing or wrong")
        if role is not None and role not in web.roles(session.participant_id):
            raise HTTPException(403, f"this needs the {role.value} role")
        return session, form

    def done(path: str, receipt: Receipt) -> RedirectResponse:
        status = "ok" if receipt.ok else receipt.code
        return RedirectResponse(f"{path}?result={status}", status_code=303)

    kit = PageKit(web, page, require_page, require_write, done)
    pages_devices.install(app, kit)
    pages_audit.install(app, kit)
    pages_orders.install(app, kit)
    pages_docs.install(app, kit)

    # ---- public pages -----------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/board", status_code=303)

    def board_context() -> dict[str, Any]:
        def snapshot(state: State) -> dict[str, Any]:
            return {
                "book": web.redact.book(state),
                "trades": list(reversed(web.redact.trades(market.trades(state)))),
                "height": web.node.height,
            }

        return web.read(snapshot)

    @app.get("/board", response_class=HTMLResponse, summary="The market board (売り場/買い場/約定)")
    def board(request: Request) -> HTMLResponse:
        return page(request, "board.html", **board_context(), source_ja=market.SOURCE_JA)

    @app.get("/fragments/board", response_class=HTMLResponse, include_in_schema=False)
    def board_fragment(request: Request) -> HTMLResponse:
        return page(request, "_board.html", **board_context(), source_ja=market.SOURCE_JA)

    @app.get("/events", summary="Server-sent events: one per block that moved the market")
    async def events() -> StreamingResponse:
        return StreamingResponse(
            web.feed.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/book", summary="The public book (hidden sellers undisclosed)")
    def api_book() -> dict[str, Any]:
        return web.read(web.redact.book)

    @app.get("/api/trades", summary="Every trade (hidden sellers undisclosed)")
    def api_trades() -> list[dict[str, Any]]:
        return web.redact.trades(web.read(market.trades))

    # ---- login ------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/board") -> HTMLResponse:
        token = accounts_token()
        response = page(request, "login.html", login_csrf=token, next=_local(next))
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            secure=config.secure_cookies,
            samesite="strict",
            max_age=3600,
        )
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not _same(cookie, form.get("csrf_token", "")):
            raise HTTPException(403, "CSRF token missing or wrong")
        found = await run_in_threadpool(
            accounts.login, form.get("username", ""), form.get("password", "")
        )
        if found is None:
            return page(
                request,
                "login.html",
                status=401,
                login_csrf=cookie,
                next=_local(form.get("next", "/board")),
                error=True,
            )
        token, _ = found
        response = RedirectResponse(_local(form.get("next", "/board")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            secure=config.secure_cookies,
            samesite="strict",
            max_age=8 * 3600,
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        await require_write(request, None)
        accounts.logout(request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/board", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/api/me", summary="Who is logged in")
    def me(request: Request) -> dict[str, Any]:
        found = session_of(request)
        if found is None:
            raise HTTPException(401, "log in first")
        session = found[1]
        return {
            "username": session.username,
            "participant_id": session.participant_id,
            "roles": [r.value for r in web.roles(session.participant_id)],
            "csrf_token": session.csrf_token,
        }

    # ---- my value, retirement and statements --------------------------------------------
    @app.get("/value", response_class=HTMLResponse, include_in_schema=False)
    def value_page(request: Request) -> HTMLResponse:
        session = require_page(request)
        pid = session.participant_id

        def mine(state: State) -> dict[str, Any]:
            rows = []
            for batch_id in state.holdings_of(pid):
                batch, holding = state.batch(batch_id), state.holding(batch_id, pid)
                if batch is None or holding is None:
                    continue
                owner = state.participant(batch.owner)
                public = owner is not None and owner.name_public
                rows.append(
                    {
                        "batch": batch,
                        "holding": holding,
                        "who": owner.display_name if owner is not None and public else None,
                        "where": market.place_name(batch.municipality_code),
                    }
                )
            retirements = [
                r
                for _, r in state.records_with_prefix(b"retirement/")
                if isinstance(r, Retirement) and r.holder == pid
            ]
            trades = [
                market.trade_view(state, t)
                for _, t in state.records_with_prefix(b"trade/")
                if isinstance(t, Trade) and pid in (t.buyer, t.seller)
            ]
            yen = state.yen(pid)
            return {"rows": rows, "retirements": retirements, "trades": trades, "yen": yen}

        return page(
            request,
            "value.html",
            **web.read(mine),
            purposes=[p.value for p in Purpose],
            new_id=f"ret-{uuid.uuid4().hex[:16]}",
            result=request.query_params.get("result"),
            source_ja=market.SOURCE_JA,
        )

    @app.post("/retire", summary="Retire value you hold (CSRF)")
    async def retire(request: Request) -> Response:
        session, form = await require_write(request, None)
        try:
            purpose = Purpose(form.get("purpose", ""))
        except ValueError:
            raise HTTPException(422, "unknown purpose") from None
        action = tx.RetireValue(
            _id(form.get("retirement_id", "")),
            _id(form.get("batch_id", "")),
            _fixed(kg_to_g, form.get("quantity_kg", "")),
            _text(form.get("beneficiary", ""), 200, required=True),
            purpose,
            _text(form.get("claimed_period", ""), 40),
            _text(form.get("note", ""), 500),
        )
        return done("/value", await web.act(session, action))

    def own_retirement(request: Request, retirement_id: str) -> None:
        found = session_of(request)
        if found is None:
            raise HTTPException(401, "log in first")
        retirement = web.read(lambda state: state.retirement(retirement_id))
        if retirement is None or retirement.holder != found[1].participant_id:
            raise HTTPException(404, "no such retirement of yours")

    @app.get("/statements/{retirement_id}.pdf", summary="A retirement statement (holder only)")
    async def statement_pdf(request: Request, retirement_id: str) -> Response:
        own_retirement(request, retirement_id)
        doc = await run_in_threadpool(statement.build, config.data_dir, retirement_id)
        pdf = await run_in_threadpool(statement.to_pdf, doc)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="statement-{retirement_id}.pdf"'
            },
        )

    @app.get("/statements/{retirement_id}", response_class=HTMLResponse, include_in_schema=False)
    async def statement_page(request: Request, retirement_id: str) -> HTMLResponse:
        """The statement as a page (what the PDF says), with the PDF to download."""
        own_retirement(request, retirement_id)
        doc = await run_in_threadpool(statement.build, config.data_dir, retirement_id)
        return page(
            request,
            "statement.html",
            rows=statement.rows(doc),
            retirement_id=retirement_id,
            transactions=len(doc["history"]["transactions"]),
            states=len(doc["history"]["state"]),
        )

    # ---- verification (public; changes nothing) -----------------------------------------
    @app.get("/verify", response_class=HTMLResponse, include_in_schema=False)
    def verify_page(request: Request) -> HTMLResponse:
        return page(request, "verify.html")

    @app.post("/verify", summary="Verify a statement PDF against this ledger (multipart 'file')")
    async def verify(request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "send the statement PDF as the 'file' field")
        data = await upload.read()
        try:
            doc = statement.from_pdf(data)
            result = await run_in_threadpool(statement.verify_against_ledger, doc, config.data_dir)
        except statement.StatementError as exc:
            outcome: dict[str, Any] = {"ok": False, "error": str(exc)}
        else:
            outcome = {
                "ok": True,
                "retirement_id": result.retirement_id,
                "batch_id": result.batch_id,
                "quantity_g": result.quantity_g,
                "height": result.height,
                "block_hash": result.block_hash.hex(),
                "tip_height": result.tip_height,
                "tip_hash": result.tip_hash.hex(),
            }
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(outcome, status_code=200 if outcome["ok"] else 422)
        return page(request, "verify.html", outcome=outcome, status=200 if outcome["ok"] else 422)

    # ---- the node's machine API -------------------------------------------------------
    @app.get(
        "/node/v1/state",
        summary="A raw ledger record with its Merkle proof (the registry authority only)",
        description=(
            "Raw records name the true participants, hidden sellers too, and any key may be "
            "asked for; so this read needs the session of a participant with the authority "
            "role. The public reads the market through /api/v1, and a batch's history with "
            "proofs at /api/v1/batches/{batch_id}/history."
        ),
        responses={
            401: {"description": "No session."},
            403: {"description": "Not the authority."},
        },
    )
    def raw_state(
        request: Request, key: Annotated[str, Query(min_length=1, max_length=512)]
    ) -> dict[str, Any]:
        found = session_of(request)
        if found is None:
            raise HTTPException(401, "raw state is for the registry authority: log in")
        if Role.authority not in web.roles(found[1].participant_id):
            raise HTTPException(
                403, "raw state names hidden sellers: only the registry authority may read it"
            )
        return state_json(node, key)

    # After every route of its own: /node/v1/state above answers before the node's.
    app.mount("/node", create_node_app(node))

    @app.exception_handler(_Redirect)
    async def redirect(_: Request, exc: _Redirect) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    return app


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


def accounts_token() -> str:
    return security.new_token()


def _same(a: str, b: str) -> bool:
    return security.same_token(a, b)


def _jst(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, UTC).astimezone(JST).strftime("%Y-%m-%d %H:%M")


def _local(path: str) -> str:
    """Only same-site paths after login (no open redirect)."""
    return path if path.startswith("/") and not path.startswith("//") else "/board"


def _id(value: str) -> str:
    if not ID_PATTERN.match(value):
        raise HTTPException(422, "ids are 1-64 letters, digits or ._:-")
    return value


def _text(value: str, limit: int, required: bool = False) -> str:
    value = value.strip()
    if len(value) > limit or (required and not value):
        raise HTTPException(422, f"text must be {'1' if required else '0'}-{limit} characters")
    return value


def _fixed(parse: Callable[[str], int], value: str) -> int:
    try:
        amount = parse(value.strip())
    except ScenarioError as exc:
        raise HTTPException(422, str(exc)) from None
    if amount <= 0:
        raise HTTPException(422, "amounts must be positive")
    return amount
