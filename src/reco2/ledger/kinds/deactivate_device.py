"""DeactivateDevice: the authority or the owner retires a device; it never issues again."""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, has_role, text_ok, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, device_key
from reco2.ledger.tx import DeactivateDevice
from reco2.ledger.types import DeviceStatus, Role


def stateless(action: DeactivateDevice) -> Outcome:
    if not valid_id(action.device_id):
        return Outcome.invalid_id
    return Outcome.ok if text_ok(action.reason) else Outcome.text_too_long


def check(state: State, ctx: Context, action: DeactivateDevice) -> Outcome:
    device = state.device(action.device_id)
    if device is None:
        return Outcome.unknown_device
    if not has_role(ctx.signer, Role.authority) and ctx.signer.participant_id != device.owner:
        # Owners are prosumers: another prosumer is told it does not own this device.
        if has_role(ctx.signer, Role.prosumer):
            return Outcome.not_device_owner
        return Outcome.role_not_allowed
    if device.status is DeviceStatus.deactivated:
        return Outcome.device_already_deactivated
    return Outcome.ok


def apply(state: State, ctx: Context, action: DeactivateDevice) -> tuple[str, ...]:
    device = state.device(action.device_id)
    assert device is not None
    device.status = DeviceStatus.deactivated
    state.touch(device_key(action.device_id))
    return (f"device/{action.device_id}",)
