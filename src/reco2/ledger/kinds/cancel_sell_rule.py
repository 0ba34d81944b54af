"""CancelSellRule: stop listing new issuance; orders it already listed stay as they are."""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, sell_rule_key
from reco2.ledger.tx import CancelSellRule


def stateless(action: CancelSellRule) -> Outcome:
    return Outcome.ok if valid_id(action.rule_id) else Outcome.invalid_id


def check(state: State, ctx: Context, action: CancelSellRule) -> Outcome:
    rule = state.sell_rule(action.rule_id)
    if rule is None:
        return Outcome.unknown_sell_rule
    if rule.owner != ctx.signer.participant_id:
        return Outcome.not_sell_rule_owner
    if not rule.active:
        return Outcome.sell_rule_inactive
    return Outcome.ok


def apply(state: State, ctx: Context, action: CancelSellRule) -> tuple[str, ...]:
    rule = state.sell_rule(action.rule_id)
    assert rule is not None
    rule.active = False
    state.touch(sell_rule_key(action.rule_id))
    state.forget_rule(rule.device_id)
    return (f"sell_rule/{action.rule_id}",)
