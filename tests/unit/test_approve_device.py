"""ApproveDevice: the registry authority admits a pending device."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import Case, Ledger, device_action, run_case

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import DeviceStatus


def pv2_pending(ledger: Ledger) -> None:
    ledger.ok("maekawa", device_action("pv-2"))


def pv2_deactivated(ledger: Ledger) -> None:
    pv2_pending(ledger)
    ledger.ok("maekawa", tx.DeactivateDevice("pv-2", "sold"))


def status_is(device_id: str, status: DeviceStatus) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        device = ledger.app.state.device(device_id)
        assert device is not None
        assert device.status is status

    return then


CASES = [
    Case(
        "ok",
        "authority",
        tx.ApproveDevice("pv-2"),
        Outcome.ok,
        setup=pv2_pending,
        then=status_is("pv-2", DeviceStatus.active),
    ),
    # who may sign: the authority only (not even the owner or its aggregator)
    *(
        Case(
            f"signed by {who}",
            who,
            tx.ApproveDevice("pv-2"),
            Outcome.role_not_allowed,
            setup=pv2_pending,
        )
        for who in ("maekawa", "mrv", "buyer", "bank")
    ),
    Case("unknown device", "authority", tx.ApproveDevice("pv-404"), Outcome.unknown_device),
    Case("already active", "authority", tx.ApproveDevice("pv-1"), Outcome.device_not_pending),
    Case(
        "deactivated",
        "authority",
        tx.ApproveDevice("pv-2"),
        Outcome.device_not_pending,
        setup=pv2_deactivated,
        then=status_is("pv-2", DeviceStatus.deactivated),
    ),
    Case("bad id", "authority", tx.ApproveDevice("pv 2"), Outcome.invalid_id),
    Case("empty id", "authority", tx.ApproveDevice(""), Outcome.invalid_id),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_approve_device(case: Case) -> None:
    run_case(case)
