"""SetSellRule: a device's owner lists every new issuance of the device at a minimum price,
name shown or hidden, up to a cap. The listing happens inside the issuing transaction, so new
value meets the resting buys in the same block it is created."""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, positive_amount, valid_id
from reco2.ledger.market import rules
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, sell_rule_key
from reco2.ledger.tx import SetSellRule
from reco2.ledger.types import DeviceStatus, SellConditions, SellRule


def stateless(action: SetSellRule) -> Outcome:
    if not (valid_id(action.rule_id) and valid_id(action.device_id)):
        return Outcome.invalid_id
    outcome = rules.quantity_and_price(1, action.price_sen_per_kg)
    if outcome is not Outcome.ok:
        return outcome
    outcome = positive_amount(action.cap_g, Outcome.quantity_must_be_positive)
    if outcome is not Outcome.ok:
        return outcome
    return rules.participant_list(action.buyers)


def check(state: State, ctx: Context, action: SetSellRule) -> Outcome:
    device = state.device(action.device_id)
    if device is None:
        return Outcome.unknown_device
    if device.owner != ctx.signer.participant_id:
        return Outcome.not_device_owner
    if device.status is DeviceStatus.deactivated:  # it never issues again: nothing to list
        return Outcome.device_not_active
    if state.sell_rule(action.rule_id) is not None:
        return Outcome.sell_rule_exists
    if state.sell_rule_of_device(action.device_id) is not None:
        return Outcome.device_has_sell_rule
    return Outcome.ok


def apply(state: State, ctx: Context, action: SetSellRule) -> tuple[str, ...]:
    state.put(
        sell_rule_key(action.rule_id),
        SellRule(
            rule_id=action.rule_id,
            owner=ctx.signer.participant_id,
            device_id=action.device_id,
            price_sen_per_kg=action.price_sen_per_kg,
            name_public=action.name_public,
            conditions=SellConditions(sorted(action.buyers)),
            cap_g=action.cap_g,
            listed_g=0,
            active=True,
        ),
    )
    return (f"sell_rule/{action.rule_id}", f"device/{action.device_id}")
