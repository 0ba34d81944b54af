"""Field rules shared by the market's transaction kinds."""

from __future__ import annotations

from reco2.ledger.calendar import parse_iso_date
from reco2.ledger.kinds.common import MAX_AMOUNT, positive_amount, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.places import is_known_place
from reco2.ledger.types import BuyConditions

MAX_LIST = 32
#: 10,000,000 sen/kg = 100,000 yen per kg-CO2: far above any market; refuses unit slips.
MAX_PRICE_SEN_PER_KG = 10_000_000


RULE_ORDER_SEPARATOR = "~"  # rule-listed orders are "<rule id>~<batch id>"


def rule_order_id(rule_id: str, batch_id: str) -> str:
    return f"{rule_id}{RULE_ORDER_SEPARATOR}{batch_id}"


def valid_order_ref(order_id: str) -> bool:
    """A client-chosen order id, or the id of an order a standing sell rule listed."""
    parts = order_id.split(RULE_ORDER_SEPARATOR)
    return len(parts) <= 2 and all(valid_id(p) for p in parts)


def valid_place(code: str) -> bool:
    """A prefecture code or a municipality in the shipped list (unknown codes are refused)."""
    return is_known_place(code)


def quantity_and_price(quantity_g: int, price_sen_per_kg: int) -> Outcome:
    outcome = positive_amount(quantity_g, Outcome.quantity_must_be_positive)
    if outcome is not Outcome.ok:
        return outcome
    if price_sen_per_kg <= 0:
        return Outcome.price_must_be_positive
    if price_sen_per_kg > MAX_PRICE_SEN_PER_KG or quantity_g > MAX_AMOUNT:
        return Outcome.amount_too_large
    return Outcome.ok


def participant_list(ids: list[str]) -> Outcome:
    if len(ids) > MAX_LIST or len(set(ids)) != len(ids):
        return Outcome.invalid_conditions
    return Outcome.ok if all(valid_id(i) for i in ids) else Outcome.invalid_id


def buy_conditions(conditions: BuyConditions) -> Outcome:
    outcome = participant_list(conditions.sellers)
    if outcome is not Outcome.ok:
        return outcome
    if len(conditions.places) > MAX_LIST or len(set(conditions.places)) != len(conditions.places):
        return Outcome.invalid_conditions
    if not all(valid_place(p) for p in conditions.places):
        return Outcome.invalid_place_code
    if len(set(conditions.sources)) != len(conditions.sources):
        return Outcome.invalid_conditions
    if conditions.period_from_s < 0 or conditions.period_to_s < 0:
        return Outcome.invalid_period
    both = conditions.period_from_s and conditions.period_to_s
    if both and conditions.period_to_s <= conditions.period_from_s:
        return Outcome.invalid_period
    if conditions.commissioned_after and parse_iso_date(conditions.commissioned_after) is None:
        return Outcome.invalid_date
    return Outcome.ok
