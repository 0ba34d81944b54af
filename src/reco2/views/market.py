"""The public market: the book's two sides and the trades, with hidden sellers undisclosed.

Shapes are plain dicts (JSON-ready); ``render`` draws the seed's board (売り場 / 買い場 / 約定).
"""

from __future__ import annotations

from typing import Any

from reco2.ledger import units
from reco2.ledger.municipalities import MUNICIPALITY_NAMES, PREFECTURE_NAMES
from reco2.ledger.state import TRADE, State
from reco2.ledger.types import BuyOrder, SellOrder, Source, Trade

UNDISCLOSED = "undisclosed"
SOURCE_JA = {
    Source.solar: "太陽光",
    Source.wind: "風力",
    Source.hydro: "水力",
    Source.biomass: "バイオマス",
    Source.geothermal: "地熱",
}


def place_name(code: str) -> str:
    """Japanese name of a place code ("13" -> 東京都, "072036" -> 福島県郡山市)."""
    if len(code) == 2:
        return PREFECTURE_NAMES.get(code, code)
    return PREFECTURE_NAMES.get(code[:2], "") + MUNICIPALITY_NAMES.get(code, code)


def display_name(state: State, participant_id: str) -> str:
    participant = state.participant(participant_id)
    return participant.display_name if participant else participant_id


def sell_view(state: State, order: SellOrder) -> dict[str, Any]:
    seller = order.owner if order.name_public else UNDISCLOSED
    return {
        "order_id": order.order_id,
        "seller": seller,
        "seller_name": display_name(state, order.owner) if order.name_public else "非公表",
        "quantity_g": order.remaining_g,
        "all_or_none": order.all_or_none,
        "price_sen_per_kg": order.price_sen_per_kg,
        "place": order.place,
        "place_name": place_name(order.place),
        "source": order.source.value,
        "expires_at_ns": order.expires_at_ns,
        "seq": order.seq,
    }


def buy_view(state: State, order: BuyOrder) -> dict[str, Any]:
    c = order.conditions
    return {
        "order_id": order.order_id,
        "buyer": order.owner,
        "quantity_g": order.remaining_g,
        "all_or_none": order.all_or_none,
        "price_sen_per_kg": order.price_sen_per_kg,
        "sellers": list(c.sellers),
        "seller_names": [display_name(state, s) for s in c.sellers],
        "places": list(c.places),
        "place_names": [place_name(p) for p in c.places],
        "sources": [s.value for s in c.sources],
        "period_from_s": c.period_from_s,
        "period_to_s": c.period_to_s,
        "commissioned_after": c.commissioned_after,
        "exclude_estimated": c.exclude_estimated,
        "expires_at_ns": order.expires_at_ns,
        "seq": order.seq,
    }


def trade_view(state: State, trade: Trade) -> dict[str, Any]:
    return {
        "trade_seq": trade.trade_seq,
        "height": trade.height,
        "time_ns": trade.time_ns,
        "buy_order": trade.buy_order,
        "sell_order": trade.sell_order,
        "buyer": trade.buyer,
        "seller": trade.seller if trade.seller_public else UNDISCLOSED,
        "quantity_g": trade.quantity_g,
        "price_sen_per_kg": trade.price_sen_per_kg,
        "value_sen": trade.value_sen,
        "batches": [[d.batch_id, d.quantity_g] for d in trade.lots],
        "tx_hash": trade.tx_hash.hex(),
    }


def book(state: State) -> dict[str, list[dict[str, Any]]]:
    """Both sides in priority order: sells cheapest first, buys dearest first."""
    sells = sorted(state.book.sells.values(), key=lambda o: (o.price_sen_per_kg, o.seq))
    buys = sorted(state.book.buys.values(), key=lambda o: (-o.price_sen_per_kg, o.seq))
    return {
        "sell": [sell_view(state, o) for o in sells],
        "buy": [buy_view(state, o) for o in buys],
    }


def trades(state: State) -> list[dict[str, Any]]:
    return [
        trade_view(state, record)
        for _, record in state.records_with_prefix(TRADE)
        if isinstance(record, Trade)
    ]


def _kg(quantity_g: int, all_or_none: bool) -> str:
    text = units.format_kg(quantity_g).rstrip("0").rstrip(".")
    return text if all_or_none else f"{text}まで"


def _yen(price_sen_per_kg: int) -> str:
    return units.format_yen(price_sen_per_kg).removesuffix(".00")


def board_rows(state: State) -> dict[str, list[list[str]]]:
    """The board as text rows with the seed's Japanese labels."""
    view = book(state)
    sell_rows = [
        [
            o["order_id"],
            _kg(o["quantity_g"], o["all_or_none"]),
            _yen(o["price_sen_per_kg"]),
            o["seller_name"],
            o["place_name"],
            SOURCE_JA[Source(o["source"])],
        ]
        for o in view["sell"]
    ]
    buy_rows = [
        [
            o["order_id"],
            _kg(o["quantity_g"], o["all_or_none"]),
            _yen(o["price_sen_per_kg"]),
            "・".join(o["seller_names"]) or "不問",
            "・".join(o["place_names"]) or "不問",
            "・".join(SOURCE_JA[Source(s)] for s in o["sources"]) or "不問",
        ]
        for o in view["buy"]
    ]
    trade_rows = [
        [t["buy_order"], t["sell_order"], _kg(t["quantity_g"], True), _yen(t["price_sen_per_kg"])]
        for t in trades(state)
    ]
    return {"sell": sell_rows, "buy": buy_rows, "trades": trade_rows}
