"""RegisterDevice: an owner (or its aggregator) registers a meter-equipped device; it waits
for the authority's approval before it can issue value (DESIGN.md section 4)."""

from __future__ import annotations

from reco2.ledger.calendar import parse_iso_date
from reco2.ledger.kinds.common import Context, has_role, text_ok, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.places import is_known_municipality, is_prefecture_code
from reco2.ledger.state import State, device_key
from reco2.ledger.tx import PUBLIC_KEY_BYTES, RegisterDevice
from reco2.ledger.types import Device, DeviceStatus, Role

MAX_CAPACITY_W = 10_000_000  # 10 MW: beyond self-consumption scale
MAX_SCHEMES = 16


def stateless(action: RegisterDevice) -> Outcome:
    if not (valid_id(action.device_id) and valid_id(action.owner) and valid_id(action.aggregator)):
        return Outcome.invalid_id
    if not 0 < action.capacity_w <= MAX_CAPACITY_W:
        return Outcome.capacity_must_be_positive
    if not is_prefecture_code(action.prefecture_code):
        return Outcome.invalid_place_code
    if not is_known_municipality(action.municipality_code):
        return Outcome.invalid_place_code
    if action.municipality_code[:2] != action.prefecture_code:
        return Outcome.invalid_place_code
    # Japan lies within 20-46 N, 122-154 E; coordinates are in hundredths of a degree.
    if not (2_000 <= action.latitude_e2 <= 4_600 and 12_200 <= action.longitude_e2 <= 15_400):
        return Outcome.invalid_location
    if parse_iso_date(action.commissioned_on) is None:
        return Outcome.invalid_date
    if len(action.meter_public_key) != PUBLIC_KEY_BYTES:
        return Outcome.invalid_public_key
    if len(action.other_schemes) > MAX_SCHEMES:
        return Outcome.text_too_long
    for enrollment in action.other_schemes:
        if not enrollment.scheme:
            return Outcome.text_required
        if not text_ok(enrollment.scheme, 64):
            return Outcome.text_too_long
        if enrollment.end_s <= enrollment.start_s:
            return Outcome.invalid_period
    if not text_ok(action.utility, 16):
        return Outcome.text_too_long
    return Outcome.ok


def check(state: State, ctx: Context, action: RegisterDevice) -> Outcome:
    signer = ctx.signer.participant_id
    if signer not in (action.owner, action.aggregator):
        return Outcome.not_device_owner_or_aggregator
    owner = state.participant(action.owner)
    if owner is None:
        return Outcome.unknown_participant
    if not has_role(owner, Role.prosumer):
        return Outcome.owner_not_prosumer
    aggregator = state.participant(action.aggregator)
    if aggregator is None:
        return Outcome.unknown_participant
    if not has_role(aggregator, Role.aggregator):
        return Outcome.aggregator_not_aggregator
    if state.device(action.device_id) is not None:
        return Outcome.device_exists
    if state.device_by_meter_key(action.meter_public_key) is not None:
        return Outcome.meter_key_in_use
    return Outcome.ok


def apply(state: State, ctx: Context, action: RegisterDevice) -> tuple[str, ...]:
    state.put(
        device_key(action.device_id),
        Device(
            device_id=action.device_id,
            owner=action.owner,
            aggregator=action.aggregator,
            source=action.source,
            capacity_w=action.capacity_w,
            prefecture_code=action.prefecture_code,
            municipality_code=action.municipality_code,
            latitude_e2=action.latitude_e2,
            longitude_e2=action.longitude_e2,
            commissioned_on=action.commissioned_on,
            grid_contract=action.grid_contract,
            utility=action.utility,
            other_schemes=sorted(action.other_schemes, key=lambda e: (e.start_s, e.scheme)),
            meter_public_key=action.meter_public_key,
            status=DeviceStatus.pending,
            carry_mg=0,
            registered_height=ctx.height,
        ),
    )
    return (f"device/{action.device_id}",)
