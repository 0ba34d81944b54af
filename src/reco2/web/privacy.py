"""Who a raw view of the ledger would name against their choice.

The market's views (``views.market``) show ``undisclosed`` for a hidden seller (and leave out
what would lead to it: ``Redactor``), but raw records
and signed transactions name the true participant: a sell order or sell rule placed with the
name hidden, a trade whose seller is hidden, a holding or batch of a participant who does not
disclose their name at all. A batch's history (its transactions and state with proofs) can
only be shown whole, so it is public only when it names none of them; otherwise it goes to
those who know them already (see ``may_see_history``). Raw state reads are for the registry
authority alone (``app``): any key may name anyone.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from reco2.ledger import tx
from reco2.ledger.market.rules import RULE_ORDER_SEPARATOR
from reco2.ledger.state import HOLDING, SELL_ORDER, TRADE, State
from reco2.ledger.types import Role, SellOrder, Trade
from reco2.views import market
from reco2.views.market import UNDISCLOSED


class Redactor:
    """Public views of the book and the trades with nothing that leads to a hidden seller.

    Besides the seller (``undisclosed`` already), a hidden sale must not say which batch it
    drew from, since a batch names its device and owner: a trade then shows no batches and no
    transaction hash (a rule's sale happens in the batch's issuing transaction), and an order
    a standing rule listed, whose id is ``<rule id>~<batch id>``, is shown under a stable
    alias ``<rule id>~<keyed digest>`` (the owner sees the real id among its orders).
    """

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"reco2 public order alias", hashlib.sha256).digest()

    def order_id(self, order_id: str) -> str:
        rule_id, sep, _ = order_id.partition(RULE_ORDER_SEPARATOR)
        if not sep:
            return order_id  # chosen by the seller, not derived from a batch
        digest = hmac.new(self._key, order_id.encode(), hashlib.sha256).hexdigest()[:16]
        return f"{rule_id}{sep}{digest}"

    def book(self, state: State) -> dict[str, list[dict[str, Any]]]:
        """The public book; a buy order that names a seller who does not disclose their
        name among the sellers it accepts shows that one as ``undisclosed`` too."""
        view = market.book(state)
        sells = [
            o | {"order_id": self.order_id(o["order_id"])} if o["seller"] == UNDISCLOSED else o
            for o in view["sell"]
        ]
        buys = []
        for o in view["buy"]:
            shown = [disclosed(state, s) for s in o["sellers"]]
            if not all(shown):
                pairs = list(zip(o["sellers"], o["seller_names"], shown, strict=True))
                o = o | {
                    "sellers": [s if ok else UNDISCLOSED for s, _, ok in pairs],
                    "seller_names": [n if ok else "非公表" for _, n, ok in pairs],
                }
            buys.append(o)
        return {"sell": sells, "buy": buys}

    def trades(self, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            v | {"batches": [], "tx_hash": "", "sell_order": self.order_id(v["sell_order"])}
            if v["seller"] == UNDISCLOSED
            else v
            for v in views
        ]


def disclosed(state: State, participant_id: str) -> bool:
    participant = state.participant(participant_id)
    return participant is not None and participant.name_public


def hidden_in_history(state: State, batch_id: str, txs: list[bytes]) -> set[str]:
    """The participants a batch's history (its signed transactions ``txs`` and the records
    of the batch, its holdings and trades) names who chose not to be named there."""
    batch = state.batch(batch_id)
    if batch is None:
        return set()
    hidden: set[str] = set()
    if not disclosed(state, batch.owner):
        hidden.add(batch.owner)
    prefix = HOLDING + batch_id.encode() + b"/"
    for key, _ in state.records_with_prefix(prefix):
        holder = key[len(prefix) :].decode()
        if not disclosed(state, holder):
            hidden.add(holder)
    for _, order in state.records_with_prefix(SELL_ORDER):
        if (
            isinstance(order, SellOrder)
            and not order.name_public
            and any(lot.batch_id == batch_id for lot in order.lots)
        ):
            hidden.add(order.owner)
    for _, trade in state.records_with_prefix(TRADE):
        if (
            isinstance(trade, Trade)
            and not trade.seller_public
            and any(lot.batch_id == batch_id for lot in trade.lots)
        ):
            hidden.add(trade.seller)
    for raw in txs:
        decoded = tx.decode(raw, len(raw))
        if not isinstance(decoded, tx.DecodedTx):
            continue  # the history's own check refuses it
        signer, action = decoded.body.signer, decoded.body.action
        named_hidden = isinstance(action, tx.PlaceSellOrder | tx.SetSellRule) and not (
            action.name_public
        )
        if named_hidden or not disclosed(state, signer):
            hidden.add(signer)
    return hidden


def may_see_history(state: State, batch_id: str, txs: list[bytes], viewer: str | None) -> bool:
    """Whether ``viewer`` (a participant id, None for the public) may see the whole history:
    anyone when it names no hidden participant; else the authority, or a viewer who knows
    every hidden one already (itself; the owner, for the batch's aggregator)."""
    hidden = hidden_in_history(state, batch_id, txs)
    if not hidden:
        return True
    if viewer is None:
        return False
    participant = state.participant(viewer)
    if participant is not None and Role.authority in participant.roles:
        return True
    batch = state.batch(batch_id)
    known = {viewer}
    if batch is not None and viewer == batch.aggregator:
        known.add(batch.owner)
    return hidden <= known
