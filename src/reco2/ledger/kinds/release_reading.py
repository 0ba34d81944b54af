"""ReleaseReading: the registry authority releases one reading the anomaly model flagged, so
that it may count as measured in its device-day's issuance (DESIGN.md section 4: rejected or
suspicious intervals never issue value; issue 5: "unless an authorised reviewer releases them
on the ledger").

The release names the reading (device and interval start: its reading id), the SHA-256 of the
reading's signed envelope and the version of the model that flagged it. It is kept in state
under ``release/<device>/<interval start>/<model version>``: the issuer looks that key up (and
can prove it against the state root) and counts the flagged reading only when the release names
exactly the bytes it holds and the model that flagged them. Another model's flag of the same
reading needs a release of its own.

Who may release: the registry authority alone. The aggregator runs the validation, the anomaly
model among its steps, and signs the device's issuances (DESIGN.md section 1): if it could
release its own flags, the model would only advise the party whose output it checks. Deciding
that something may create value is the authority's job already (it approves devices and
publishes the emission factors), so a release is too; the aggregator asks for one with its
evidence. Flags are rare (the model's false-positive rate is at most 1 % of intervals), so the
authority's review is not a bottleneck.

Refused: a device that is not active (a pending device has no accepted readings; a deactivated
one never issues again), an interval not yet over at block time, a reading already released
for the model, and a reading whose interval already lies in an issued period (the release
could never count: periods of a device never overlap).
"""

from __future__ import annotations

from reco2.ledger.calendar import INTERVAL_S, NS_PER_S, on_grid
from reco2.ledger.kinds.common import Context, has_role, text_ok, valid_id
from reco2.ledger.kinds.issue_value import LAST_PERIOD_END_S
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, release_key
from reco2.ledger.tx import ReleaseReading
from reco2.ledger.types import DeviceStatus, ReadingRelease, Role

HASH_BYTES = 32


def stateless(action: ReleaseReading) -> Outcome:
    if not (valid_id(action.device_id) and valid_id(action.model_version)):
        return Outcome.invalid_id
    if not 0 <= action.interval_start_s <= LAST_PERIOD_END_S - INTERVAL_S:
        return Outcome.invalid_period
    if not on_grid(action.interval_start_s):
        return Outcome.period_not_on_grid
    if len(action.reading_hash) != HASH_BYTES:
        return Outcome.invalid_reading_hash
    return Outcome.ok if text_ok(action.note) else Outcome.text_too_long


def check(state: State, ctx: Context, action: ReleaseReading) -> Outcome:
    if not has_role(ctx.signer, Role.authority):
        return Outcome.role_not_allowed
    device = state.device(action.device_id)
    if device is None:
        return Outcome.unknown_device
    if device.status is not DeviceStatus.active:
        return Outcome.device_not_active
    start_s = action.interval_start_s
    if (start_s + INTERVAL_S) * NS_PER_S > ctx.time_ns:
        return Outcome.reading_in_future
    if state.release(action.device_id, start_s, action.model_version) is not None:
        return Outcome.reading_already_released
    if state.period_overlaps(action.device_id, start_s, start_s + INTERVAL_S):
        return Outcome.reading_already_issued
    return Outcome.ok


def apply(state: State, ctx: Context, action: ReleaseReading) -> tuple[str, ...]:
    key = release_key(action.device_id, action.interval_start_s, action.model_version)
    state.put(
        key,
        ReadingRelease(
            device_id=action.device_id,
            interval_start_s=action.interval_start_s,
            reading_hash=action.reading_hash,
            model_version=action.model_version,
            reviewer=ctx.signer.participant_id,
            note=action.note,
            height=ctx.height,
            time_ns=ctx.time_ns,
            tx_hash=ctx.tx_hash,
        ),
    )
    return (key.decode(),)
