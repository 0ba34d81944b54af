"""「監査証跡」 The audit trail page of any batch (logged-in users; undisclosed participants, and
those who sold from the batch with their name hidden, are shown as 非公表 to everyone but
themselves). The checks are in ``audit``."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from reco2.ledger import tx
from reco2.ledger.state import State
from reco2.views import market
from reco2.web import audit
from reco2.web.kit import PageKit


def install(app: FastAPI, kit: PageKit) -> None:
    web = kit.web

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_index(request: Request, batch_id: str = "") -> Response:
        kit.require_page(request)
        if batch_id:
            return RedirectResponse(f"/audit/{batch_id}", status_code=303)
        return kit.render(request, "audit.html", trail=None, batch_id="")

    @app.get("/audit/{batch_id}", response_class=HTMLResponse, include_in_schema=False)
    async def audit_page(request: Request, batch_id: str, reading: int = 0) -> HTMLResponse:
        session = kit.require_page(request)
        try:
            trail = await run_in_threadpool(
                audit.build_trail, web.node, web.config.data_dir, batch_id, reading
            )
        except LookupError:
            raise HTTPException(404, "no such batch") from None
        viewer = session.participant_id

        def names(state: State) -> dict[str, str]:
            ids = {trail.batch.owner, trail.batch.aggregator}
            ids |= {e.signer for e in trail.events}
            ids |= {t.buyer for t in trail.trades} | {t.seller for t in trail.trades}
            ids |= {r.holder for r in trail.retirements}
            # who sold here with the name hidden stays 非公表, even if disclosed elsewhere
            hidden = {t.seller for t in trail.trades if not t.seller_public}
            hidden |= {
                e.signer
                for e in trail.events
                if isinstance(e.action, tx.PlaceSellOrder | tx.SetSellRule)
                and not e.action.name_public
            }
            shown = {}
            for pid in ids:
                participant = state.participant(pid)
                public = participant is not None and participant.name_public and pid not in hidden
                if participant is not None and (public or pid == viewer):
                    shown[pid] = f"{participant.display_name} ({pid})"
            return shown

        shown = web.read(names)

        def key_shown(key: str, undisclosed: str) -> str:
            """A holding's key names its holder: shown only when the holder's name is."""
            table, _, rest = key.partition("/")
            batch, _, holder = rest.rpartition("/")
            if table == "holding" and holder and holder not in shown:
                return f"{table}/{batch}/{undisclosed}"
            return key

        return kit.render(
            request,
            "audit.html",
            trail=trail,
            batch_id=batch_id,
            names=shown,
            key_shown=key_shown,
            place=market.place_name(trail.batch.municipality_code),
            describe=audit.describe,
            source_ja=market.SOURCE_JA,
        )
