"""「注文」 Orders: buy orders with every condition the ledger supports, sell orders placed by
hand, standing sell rules, and cancelling one's own orders.

Every post checks the session, the CSRF token and the role (``PageKit.require_write``) before
the server signs the ledger transaction with the user's custodied key. Dates are Japan's
(JST): a generation period "from" day starts at its midnight, an "until" day ends at the next.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from reco2.ledger import tx
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from reco2.ledger.market import settlement
from reco2.ledger.municipalities import MUNICIPALITY_NAMES, PREFECTURE_NAMES
from reco2.ledger.places import is_known_place, is_prefecture_code, place_contains
from reco2.ledger.state import PARTICIPANT, State
from reco2.ledger.types import BuyConditions, Device, Participant, Role, Source
from reco2.scenario.model import ScenarioError, kg_to_g, yen_to_sen
from reco2.views import market
from reco2.web import i18n_orders
from reco2.web.kit import PageKit, lang_of
from reco2.web.statement import JST

ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_CHOICES = 64  # sellers, places or buyers in one order
LATEST_EXPIRY_S = 4_102_444_800  # 2100-01-01 UTC: keeps the ns within 64 bits
SELLING_ROLES = (Role.prosumer, Role.buyer)  # who may place a sell order (the ledger's rule)


def municipalities_by_prefecture() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(prefecture code, name, [(municipality code, name)]) for the grouped <select>."""
    grouped: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for code, name in sorted(MUNICIPALITY_NAMES.items()):
        grouped[code[:2]].append((code, name))
    return [(p, PREFECTURE_NAMES[p], grouped[p]) for p in sorted(PREFECTURE_NAMES)]


MUNICIPALITY_GROUPS = municipalities_by_prefecture()


def install(app: FastAPI, kit: PageKit) -> None:
    web = kit.web

    @app.get("/orders", response_class=HTMLResponse, include_in_schema=False)
    def orders_page(request: Request) -> HTMLResponse:
        session = kit.require_page(request)
        pid = session.participant_id
        lang = lang_of(request)
        return kit.page(
            request,
            "orders.html",
            **web.read(lambda state: _page_state(state, pid)),
            o=i18n_orders.texts(lang),
            roles=[r.value for r in web.roles(pid)],
            prefectures=sorted(PREFECTURE_NAMES.items()),
            municipality_groups=MUNICIPALITY_GROUPS,
            sources=[s.value for s in Source],
            source_ja=market.SOURCE_JA,
            new_id=f"web-{uuid.uuid4().hex[:16]}",
            result=request.query_params.get("result"),
        )

    @app.post("/orders/buy", summary="Place a buy order (buyer; form fields; CSRF)")
    async def place_buy(request: Request) -> Response:
        session, form = await kit.require_write(request, Role.buyer)
        lists = await _lists(request)
        return kit.done("/orders", await web.act(session, buy_action(form, lists)))

    @app.post("/orders/sell", summary="Place a sell order by hand (prosumer or buyer; CSRF)")
    async def place_sell(request: Request) -> Response:
        session, form = await kit.require_write(request, None)
        if not any(r in SELLING_ROLES for r in web.roles(session.participant_id)):
            raise HTTPException(403, "this needs the prosumer or buyer role")
        lists = await _lists(request)
        return kit.done("/orders", await web.act(session, sell_action(form, lists)))

    @app.post("/orders/{order_id}/cancel", summary="Cancel one of your orders (CSRF)")
    async def cancel(request: Request, order_id: str) -> Response:
        session, _ = await kit.require_write(request, None)

        def owner(state: State) -> str | None:
            order = state.buy_order(order_id) or state.sell_order(order_id)
            return None if order is None else order.owner

        if web.read(owner) != session.participant_id:
            raise HTTPException(404, "no such order of yours")
        return kit.done("/orders", await web.act(session, tx.CancelOrder(order_id)))

    @app.post("/rules", summary="Set a standing sell rule (prosumer; CSRF)")
    async def set_rule(request: Request) -> Response:
        session, form = await kit.require_write(request, Role.prosumer)
        action = tx.SetSellRule(
            _id(form.get("rule_id", "")),
            _id(form.get("device_id", "")),
            _fixed(yen_to_sen, form.get("price_yen_per_kg", "")),
            form.get("name_public") == "on",
            _fixed(kg_to_g, form.get("cap_kg", "")),
            [],
        )
        return kit.done("/orders", await web.act(session, action))


# ---- what the page shows -------------------------------------------------------------------
def _page_state(state: State, pid: str) -> dict[str, Any]:
    buys = [market.buy_view(state, o) for o in state.book.buys.values() if o.owner == pid]
    sells = [market.sell_view(state, o) for o in state.book.sells.values() if o.owner == pid]
    for view in sells:
        order = state.sell_order(view["order_id"])
        view["name_public"] = order is not None and order.name_public
        view["buyers"] = list(order.conditions.buyers) if order is not None else []
    devices = sorted(
        d.device_id
        for _, d in state.records_with_prefix(b"device/")
        if isinstance(d, Device) and d.owner == pid
    )
    others = [
        p
        for _, p in state.records_with_prefix(PARTICIPANT)
        if isinstance(p, Participant) and p.participant_id != pid
    ]
    return {
        "my_buys": sorted(buys, key=lambda v: v["seq"]),
        "my_sells": sorted(sells, key=lambda v: v["seq"]),
        "devices": devices,
        "seller_choices": _choices(o for o in others if _any_role(o, SELLING_ROLES)),
        "buyer_choices": _choices(o for o in others if _any_role(o, (Role.buyer,))),
        "listings": listings(state, pid),
    }


def _any_role(participant: Participant, roles: tuple[Role, ...]) -> bool:
    return any(r in participant.roles for r in roles)


def _choices(participants: Any) -> list[tuple[str, str]]:
    """(id, label) sorted by id; a participant's name only when it is public."""
    return sorted(
        (p.participant_id, f"{p.display_name} ({p.participant_id})")
        if p.name_public
        else (p.participant_id, p.participant_id)
        for p in participants
    )


def listings(state: State, owner: str) -> list[dict[str, Any]]:
    """The (source, place) listings the owner's tradable value allows, each with what it can
    sell: every municipality and prefecture of a batch held."""
    pairs: set[tuple[Source, str]] = set()
    for batch_id in state.holdings_of(owner):
        batch, holding = state.batch(batch_id), state.holding(batch_id, owner)
        if batch is None or holding is None or holding.tradable_g <= 0:
            continue
        pairs.add((batch.source, batch.municipality_code))
        pairs.add((batch.source, batch.municipality_code[:2]))
    out = []
    for source, place in sorted(pairs):
        out.append(
            {
                "value": f"{source.value}/{place}",
                "source": source.value,
                "place": place,
                "place_name": market.place_name(place),
                "sellable_g": settlement.sellable_g(state, owner, source, place),
            }
        )
    return out


# ---- form parsing ---------------------------------------------------------------------------
async def _lists(request: Request) -> dict[str, list[str]]:
    """The form's repeated fields (multi-selects, checkboxes); the form is already parsed."""
    form = await request.form()
    names = ("sellers", "prefecture", "municipality", "sources", "source", "buyers")
    lists = {}
    for name in names:
        values = [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]
        if len(values) > MAX_CHOICES:
            raise HTTPException(422, f"at most {MAX_CHOICES} {name}")
        lists[name] = list(dict.fromkeys(values))
    return lists


def buy_action(form: dict[str, str], lists: dict[str, list[str]]) -> tx.PlaceBuyOrder:
    conditions = BuyConditions(
        [_id(s) for s in lists["sellers"]],
        _places(lists["prefecture"], lists["municipality"]),
        _sources(lists["sources"] + lists["source"]),
        _day_start(form.get("period_from", "")),
        _day_end(form.get("period_to", "")),
        _date(form.get("commissioned_after", "")),
        form.get("exclude_estimated") == "on",
    )
    start, end = conditions.period_from_s, conditions.period_to_s
    if start and end and end <= start:
        raise HTTPException(422, "the generation period ends before it starts")
    return tx.PlaceBuyOrder(
        _id(form.get("order_id", "")),
        _fixed(kg_to_g, form.get("quantity_kg", "")),
        form.get("all_or_none") == "on",
        _fixed(yen_to_sen, form.get("price_yen_per_kg", "")),
        conditions,
        _expiry_ns(form.get("expires_at", "")),
    )


def sell_action(form: dict[str, str], lists: dict[str, list[str]]) -> tx.PlaceSellOrder:
    source_text, _, place = form.get("listing", "").partition("/")
    try:
        source = Source(source_text)
    except ValueError:
        raise HTTPException(422, "choose a source and place of value you hold") from None
    if not is_known_place(place):
        raise HTTPException(422, f"unknown place code {place!r}")
    return tx.PlaceSellOrder(
        _id(form.get("order_id", "")),
        _fixed(kg_to_g, form.get("quantity_kg", "")),
        form.get("all_or_none") == "on",
        _fixed(yen_to_sen, form.get("price_yen_per_kg", "")),
        source,
        place,
        form.get("name_public") == "on",
        [_id(b) for b in lists["buyers"]],
        _expiry_ns(form.get("expires_at", "")),
    )


def _places(prefectures: list[str], municipalities: list[str]) -> list[str]:
    """Chosen municipalities, and the chosen prefectures none of them narrows."""
    for code in prefectures:
        if not is_prefecture_code(code) or not is_known_place(code):
            raise HTTPException(422, f"unknown prefecture code {code!r}")
    for code in municipalities:
        if len(code) != 6 or not is_known_place(code):
            raise HTTPException(422, f"unknown municipality code {code!r}")
    wide = [p for p in prefectures if not any(place_contains(p, m) for m in municipalities)]
    return wide + municipalities


def _sources(values: list[str]) -> list[Source]:
    try:
        return list(dict.fromkeys(Source(v) for v in values))
    except ValueError:
        raise HTTPException(422, "unknown source") from None


def _day(text: str) -> int:
    """JST midnight of an ISO day [UTC s]; 0 for an empty field."""
    if not text.strip():
        return 0
    day = parse_iso_date(text.strip())
    if day is None:
        raise HTTPException(422, "dates are YYYY-MM-DD")
    return jst_midnight_s(day)


def _day_start(text: str) -> int:
    return _day(text)


def _day_end(text: str) -> int:
    """The end of an inclusive JST day: the next midnight [UTC s]; 0 for an empty field."""
    start = _day(text)
    return start + 86_400 if start else 0


def _date(text: str) -> str:
    if not text.strip():
        return ""
    day = parse_iso_date(text.strip())
    if day is None:
        raise HTTPException(422, "dates are YYYY-MM-DD")
    return day.isoformat()


def _expiry_ns(text: str) -> int:
    """A JST date and time (``YYYY-MM-DDTHH:MM``) as UTC ns; 0 (until cancelled) if empty."""
    if not text.strip():
        return 0
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(422, "expiry is YYYY-MM-DDTHH:MM") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=JST)
    seconds = int(moment.timestamp())
    if not 0 < seconds < LATEST_EXPIRY_S:
        raise HTTPException(422, "expiry must be between 1970 and 2100")
    return seconds * 1_000_000_000


def _id(value: str) -> str:
    if not ID_PATTERN.match(value):
        raise HTTPException(422, "ids are 1-64 letters, digits or ._:-")
    return value


def _fixed(parse: Callable[[str], int], value: str) -> int:
    try:
        amount = parse(value.strip())
    except ScenarioError as exc:
        raise HTTPException(422, str(exc)) from None
    if amount <= 0:
        raise HTTPException(422, "amounts must be positive")
    return amount
