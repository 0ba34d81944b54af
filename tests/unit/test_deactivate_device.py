"""DeactivateDevice: the authority or the owner retires a device; it never issues again."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import (
    Case,
    Ledger,
    add_participant,
    device_action,
    issue_action,
    run_case,
    world,
)

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import DeviceStatus, Role


def deactivated(device_id: str = "pv-1") -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        device = ledger.app.state.device(device_id)
        assert device is not None
        assert device.status is DeviceStatus.deactivated

    return then


def still_active(ledger: Ledger) -> None:
    device = ledger.app.state.device("pv-1")
    assert device is not None
    assert device.status is DeviceStatus.active


def tanaka_prosumer(ledger: Ledger) -> None:
    add_participant(ledger, "tanaka", Role.prosumer)


def pv2_pending(ledger: Ledger) -> None:
    ledger.ok("maekawa", device_action("pv-2"))


def pv1_deactivated(ledger: Ledger) -> None:
    ledger.ok("authority", tx.DeactivateDevice("pv-1", "meter tampering"))


OFF = tx.DeactivateDevice("pv-1", "moved house")

CASES = [
    Case("ok by the authority", "authority", OFF, Outcome.ok, then=deactivated()),
    Case("ok by the owner", "maekawa", OFF, Outcome.ok, then=deactivated()),
    Case(
        "ok a pending device",
        "maekawa",
        tx.DeactivateDevice("pv-2", ""),
        Outcome.ok,
        setup=pv2_pending,
        then=deactivated("pv-2"),
    ),
    Case("ok reason of 256 chars", "maekawa", tx.DeactivateDevice("pv-1", "r" * 256), Outcome.ok),
    # who may sign: the authority or the device's owner
    Case(
        "another prosumer",
        "tanaka",
        OFF,
        Outcome.not_device_owner,
        setup=tanaka_prosumer,
        then=still_active,
    ),
    Case("the device's aggregator", "mrv", OFF, Outcome.role_not_allowed, then=still_active),
    Case("a buyer", "buyer", OFF, Outcome.role_not_allowed, then=still_active),
    Case("the bank", "bank", OFF, Outcome.role_not_allowed, then=still_active),
    Case("unknown device", "authority", tx.DeactivateDevice("pv-404", ""), Outcome.unknown_device),
    Case(
        "already deactivated",
        "maekawa",
        OFF,
        Outcome.device_already_deactivated,
        setup=pv1_deactivated,
    ),
    Case("bad id", "authority", tx.DeactivateDevice("pv/1", ""), Outcome.invalid_id),
    Case(
        "reason too long",
        "authority",
        tx.DeactivateDevice("pv-1", "r" * 257),
        Outcome.text_too_long,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_deactivate_device(case: Case) -> None:
    run_case(case)


def test_a_deactivated_device_never_issues_again() -> None:
    ledger = world()
    ledger.attempt("mrv", issue_action("b1", day="2025-06-01"), Outcome.ok)
    ledger.attempt("maekawa", OFF, Outcome.ok)
    ledger.attempt("mrv", issue_action("b2", day="2025-06-02"), Outcome.device_not_active)
    ledger.attempt("authority", tx.ApproveDevice("pv-1"), Outcome.device_not_pending)
    # what it issued before stays
    batch = ledger.app.state.batch("b1")
    assert batch is not None
    assert batch.co2_g == 4_177
