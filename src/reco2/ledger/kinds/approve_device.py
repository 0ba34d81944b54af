"""ApproveDevice: the registry authority admits a pending device; it may issue from now on."""

from __future__ import annotations

from reco2.ledger.kinds.common import Context, has_role, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, device_key
from reco2.ledger.tx import ApproveDevice
from reco2.ledger.types import DeviceStatus, Role


def stateless(action: ApproveDevice) -> Outcome:
    return Outcome.ok if valid_id(action.device_id) else Outcome.invalid_id


def check(state: State, ctx: Context, action: ApproveDevice) -> Outcome:
    if not has_role(ctx.signer, Role.authority):
        return Outcome.role_not_allowed
    device = state.device(action.device_id)
    if device is None:
        return Outcome.unknown_device
    if device.status is not DeviceStatus.pending:
        return Outcome.device_not_pending
    return Outcome.ok


def apply(state: State, ctx: Context, action: ApproveDevice) -> tuple[str, ...]:
    device = state.device(action.device_id)
    assert device is not None
    device.status = DeviceStatus.active
    state.touch(device_key(action.device_id))
    return (f"device/{action.device_id}",)
