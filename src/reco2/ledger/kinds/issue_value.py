"""IssueValue: a device's aggregator turns a validated period of self-consumed energy into
one value batch, owned by the device's owner (DESIGN.md section 4).

Refused when the period overlaps an earlier issuance of the device, when the device is
enrolled in another scheme (J-Credit, non-fossil certificates...) for any part of the period,
or when the energy exceeds what the device's capacity can produce in the period.
"""

from __future__ import annotations

from reco2.ledger import units
from reco2.ledger.calendar import (
    INTERVAL_S,
    NS_PER_S,
    fiscal_year,
    jst_midnight_s,
    on_grid,
    parse_iso_date,
)
from reco2.ledger.kinds import place_sell_order
from reco2.ledger.kinds.common import MAX_AMOUNT, Context, has_role, valid_id
from reco2.ledger.market import rules, settlement
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import (
    State,
    batch_key,
    device_key,
    holding_key,
    issued_key,
    sell_rule_key,
)
from reco2.ledger.tx import IssueValue
from reco2.ledger.types import (
    DeviceStatus,
    FactorRow,
    Holding,
    IssuedPeriod,
    OrderStatus,
    Role,
    SellConditions,
    SellOrder,
    ValueBatch,
)

MAX_PERIOD_S = 31 * 86_400
#: 2200-01-01T00:00Z [UTC s], the end of the factor tables' fiscal years: no period ends later
#: (and past year 9999 the calendar could not even name a fiscal year: it would raise).
LAST_PERIOD_END_S = 7_258_118_400
ROOT_BYTES = 32
NATIONAL = "national"
S_PER_H = 3_600


def stateless(action: IssueValue) -> Outcome:
    if not (valid_id(action.batch_id) and valid_id(action.device_id)):
        return Outcome.invalid_id
    if action.period_start_s < 0 or action.period_end_s > LAST_PERIOD_END_S:
        return Outcome.invalid_period
    if not 0 < action.period_end_s - action.period_start_s <= MAX_PERIOD_S:
        return Outcome.invalid_period
    if not (on_grid(action.period_start_s) and on_grid(action.period_end_s)):
        return Outcome.period_not_on_grid
    if fiscal_year(action.period_start_s) != fiscal_year(action.period_end_s - 1):
        return Outcome.period_spans_fiscal_years
    intervals = (action.period_end_s - action.period_start_s) // INTERVAL_S
    if action.measured_intervals < 0 or action.estimated_intervals < 0:
        return Outcome.invalid_interval_counts
    if action.measured_intervals + action.estimated_intervals > intervals:
        return Outcome.invalid_interval_counts
    if action.self_consumed_wh < 0 or action.estimated_wh < 0:
        return Outcome.energy_must_not_be_negative
    if action.self_consumed_wh > MAX_AMOUNT:
        return Outcome.amount_too_large
    if action.estimated_wh > action.self_consumed_wh:
        return Outcome.invalid_interval_counts
    if action.estimated_intervals == 0 and action.estimated_wh != 0:
        return Outcome.invalid_interval_counts
    if len(action.readings_root) != ROOT_BYTES:
        return Outcome.invalid_merkle_root
    if not valid_id(action.factor_version):
        return Outcome.invalid_id
    return Outcome.ok


def factor_for(rows: list[FactorRow], fiscal_year_: int, utility: str) -> FactorRow | None:
    """The device utility's factor for the fiscal year, else the national average."""
    national = None
    for row in rows:
        if row.fiscal_year != fiscal_year_:
            continue
        if utility and row.utility == utility:
            return row
        if row.utility == NATIONAL:
            national = row
    return national


def check(state: State, ctx: Context, action: IssueValue) -> Outcome:
    if not has_role(ctx.signer, Role.aggregator):
        return Outcome.role_not_allowed
    device = state.device(action.device_id)
    if device is None:
        return Outcome.unknown_device
    if device.status is not DeviceStatus.active:
        return Outcome.device_not_active
    if ctx.signer.participant_id != device.aggregator:
        return Outcome.not_device_aggregator
    if state.batch(action.batch_id) is not None:
        return Outcome.batch_exists
    if action.period_end_s * NS_PER_S > ctx.time_ns:
        return Outcome.issuance_in_future
    commissioned = parse_iso_date(device.commissioned_on)
    assert commissioned is not None, "dates are checked at registration"
    if action.period_start_s < jst_midnight_s(commissioned):
        return Outcome.issuance_before_commissioning
    if state.period_overlaps(device.device_id, action.period_start_s, action.period_end_s):
        return Outcome.issuance_period_overlaps
    for enrollment in device.other_schemes:
        if enrollment.start_s < action.period_end_s and action.period_start_s < enrollment.end_s:
            return Outcome.device_enrolled_elsewhere
    period_s = action.period_end_s - action.period_start_s
    if action.self_consumed_wh * S_PER_H > device.capacity_w * period_s:
        return Outcome.energy_exceeds_capacity
    table = state.factors(action.factor_version)
    if table is None:
        return Outcome.unknown_factor_version
    if factor_for(table.rows, fiscal_year(action.period_start_s), device.utility) is None:
        return Outcome.no_factor_for_period
    return Outcome.ok


def apply(state: State, ctx: Context, action: IssueValue) -> tuple[str, ...]:
    device = state.device(action.device_id)
    table = state.factors(action.factor_version)
    assert device is not None and table is not None, "check() ran first"
    factor = factor_for(table.rows, fiscal_year(action.period_start_s), device.utility)
    assert factor is not None
    co2_g, carried_out_mg = units.issued_value_g(
        action.self_consumed_wh, factor.factor_mg_per_wh, device.carry_mg
    )
    batch = ValueBatch(
        batch_id=action.batch_id,
        device_id=device.device_id,
        owner=device.owner,
        aggregator=device.aggregator,
        source=device.source,
        prefecture_code=device.prefecture_code,
        municipality_code=device.municipality_code,
        period_start_s=action.period_start_s,
        period_end_s=action.period_end_s,
        self_consumed_wh=action.self_consumed_wh,
        measured_intervals=action.measured_intervals,
        estimated_intervals=action.estimated_intervals,
        estimated_wh=action.estimated_wh,
        factor_version=action.factor_version,
        factor_fiscal_year=factor.fiscal_year,
        factor_utility=factor.utility,
        factor_mg_per_wh=factor.factor_mg_per_wh,
        carried_in_mg=device.carry_mg,
        carried_out_mg=carried_out_mg,
        co2_g=co2_g,
        readings_root=action.readings_root,
        issued_height=ctx.height,
        issued_time_ns=ctx.time_ns,
        issue_tx=ctx.tx_hash,
    )
    state.put(batch_key(batch.batch_id), batch)
    state.put(holding_key(batch.batch_id, device.owner), Holding(co2_g, 0, 0))
    state.put(
        issued_key(device.device_id, action.period_start_s),
        IssuedPeriod(batch.batch_id, action.period_end_s),
    )
    device.carry_mg = carried_out_mg
    state.touch(device_key(device.device_id))
    events = (f"batch/{batch.batch_id}", f"device/{device.device_id}")
    return events + _list_by_rule(state, ctx, batch)


def _list_by_rule(state: State, ctx: Context, batch: ValueBatch) -> tuple[str, ...]:
    """New value meets the owner's standing sell rule: list it at once, up to the rule's cap."""
    rule = state.sell_rule_of_device(batch.device_id)
    if rule is None:
        return ()
    quantity_g = min(batch.co2_g, rule.cap_g - rule.listed_g)
    if quantity_g <= 0:
        return ()
    rule.listed_g += quantity_g
    state.touch(sell_rule_key(rule.rule_id))
    order = SellOrder(
        order_id=rules.rule_order_id(rule.rule_id, batch.batch_id),
        owner=batch.owner,
        quantity_g=quantity_g,
        remaining_g=quantity_g,
        all_or_none=False,
        price_sen_per_kg=rule.price_sen_per_kg,
        expires_at_ns=0,
        seq=0,
        placed_height=ctx.height,
        source=batch.source,
        place=batch.municipality_code,
        name_public=rule.name_public,
        conditions=SellConditions(list(rule.conditions.buyers)),
        lots=settlement.escrow_value(state, batch.owner, [batch], quantity_g),
        rule_id=rule.rule_id,
        status=OrderStatus.open,
    )
    return (f"sell_rule/{rule.rule_id}", *place_sell_order.list_value(state, ctx, order))
