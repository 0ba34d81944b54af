"""What the page modules (orders, devices, audit) take from ``app.create_app``: the shared
``Web`` and the request helpers, so each page lives in its own module and installs its routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from reco2.ledger.types import Role
from reco2.node.embedded import Receipt
from reco2.web.accounts import Session

if TYPE_CHECKING:
    from reco2.web.app import Web


@dataclass(frozen=True, slots=True)
class PageKit:
    web: Web
    page: Callable[..., HTMLResponse]  # (request, template, status=200, **context)
    require_page: Callable[[Request], Session]  # a session, or a redirect to the login
    require_write: Callable[[Request, Role | None], Awaitable[tuple[Session, dict[str, str]]]]
    done: Callable[[str, Receipt], RedirectResponse]

    def texts(self, request: Request) -> dict[str, str]:
        """The texts of the page modules (``i18n_pages``) in the request's language."""
        from reco2.web import i18n_pages

        return i18n_pages.texts(lang_of(request))

    def render(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """``page`` with the page modules' texts as ``p`` beside the app's ``t``."""
        return self.page(request, name, status, p=self.texts(request), **context)


def lang_of(request: Request) -> str:
    """The page language, as ``app.create_app`` chooses it (query, then cookie, then ja)."""
    from reco2.web import i18n

    lang = request.query_params.get("lang") or request.cookies.get("lang") or i18n.DEFAULT
    return lang if lang in i18n.LANGS else i18n.DEFAULT
