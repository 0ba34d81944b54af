"""Order conditions as data, and the eligibility rules that read them (DESIGN.md section 5).

Two levels: a buy's conditions on the *listing* (seller, source, place of the sell order) are
what the book indexes; its conditions on the *value* (place of each batch, generation period,
commissioning date, estimated energy) are checked lot by lot, since one listing can hold
value from several batches. A hidden seller is hidden only from public views: conditions are
always checked against the true identity.
"""

from __future__ import annotations

from reco2.ledger.places import place_contains
from reco2.ledger.types import BuyConditions, BuyOrder, Lot, SellConditions, SellOrder

ANY_BUY = BuyConditions([], [], [], 0, 0, "", False)
ANY_BUYER = SellConditions([])


def places_overlap(a: str, b: str) -> bool:
    """Two place codes overlap when one contains the other ("13" and "131202" do)."""
    return place_contains(a, b) or place_contains(b, a)


def accepts_listing(conditions: BuyConditions, sell: SellOrder) -> bool:
    """Could this sell order hold value the buyer accepts (seller, source, place)?"""
    if conditions.sellers and sell.owner not in conditions.sellers:
        return False
    if conditions.sources and sell.source not in conditions.sources:
        return False
    return not conditions.places or any(places_overlap(p, sell.place) for p in conditions.places)


def accepts_lot(conditions: BuyConditions, lot: Lot) -> bool:
    """Does the buyer accept the value of this lot (where, when, which device, measured)?"""
    if conditions.places and not any(
        place_contains(p, lot.municipality_code) for p in conditions.places
    ):
        return False
    if conditions.period_from_s and lot.period_start_s < conditions.period_from_s:
        return False
    if conditions.period_to_s and lot.period_end_s > conditions.period_to_s:
        return False
    if conditions.commissioned_after and lot.commissioned_on <= conditions.commissioned_after:
        return False
    return not (conditions.exclude_estimated and lot.estimated)


def accepts_any_lot(conditions: BuyConditions) -> bool:
    """True when the buyer sets no condition on the value itself (every lot is accepted)."""
    return not (
        conditions.places
        or conditions.period_from_s
        or conditions.period_to_s
        or conditions.commissioned_after
        or conditions.exclude_estimated
    )


def buyer_allowed(sell: SellOrder, buyer: str) -> bool:
    return not sell.conditions.buyers or buyer in sell.conditions.buyers


def may_trade(buy: BuyOrder, sell: SellOrder) -> bool:
    """Listing-level eligibility both ways, and no self-trade."""
    return (
        buy.owner != sell.owner
        and buyer_allowed(sell, buy.owner)
        and accepts_listing(buy.conditions, sell)
    )
