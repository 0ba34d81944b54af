"""WithdrawYen: a participant asks its settlement agent to pay out available yen.

Setup: the bank has deposited 100,000 sen (1,000 yen) for the buyer.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import Case, Ledger, run_case

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import withdrawal_ref_key
from reco2.ledger.types import Reference, YenAccount, YenTotals


def deposited(ledger: Ledger) -> None:
    ledger.ok("bank", tx.DepositYen("buyer", 100_000, "dep-1"))


def first_withdrawal(ledger: Ledger) -> None:
    deposited(ledger)
    ledger.ok("buyer", tx.WithdrawYen(10_000, "bank", "wd-1"))


def buyer_yen(available: int, withdrawn: int) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        assert ledger.app.state.yen("buyer") == YenAccount(available, 0)
        assert ledger.app.state.yen_totals() == YenTotals(100_000, withdrawn)

    return then


UNCHANGED = buyer_yen(100_000, 0)


def recorded(ledger: Ledger) -> None:
    buyer_yen(60_000, 40_000)(ledger)
    reference = ledger.app.state.get(withdrawal_ref_key("wd-1"), Reference)
    assert reference == Reference("buyer", 40_000, ledger.app.height)


def case(
    name: str,
    signer: str,
    action: tx.WithdrawYen,
    expected: Outcome,
    setup: Callable[[Ledger], None] = deposited,
    then: Callable[[Ledger], None] | None = None,
) -> Case:
    return Case(name, signer, action, expected, setup=setup, then=then)


CASES = [
    case("ok", "buyer", tx.WithdrawYen(40_000, "bank", "wd-1"), Outcome.ok, then=recorded),
    case(
        "ok everything",
        "buyer",
        tx.WithdrawYen(100_000, "bank", "wd-1"),
        Outcome.ok,
        then=buyer_yen(0, 100_000),
    ),
    case(
        "ok a second time",
        "buyer",
        tx.WithdrawYen(90_000, "bank", "wd-2"),
        Outcome.ok,
        setup=first_withdrawal,
        then=buyer_yen(0, 100_000),
    ),
    # who may sign: the account's holder (nobody else can take its money)
    case(
        "the bank for the buyer",
        "bank",
        tx.WithdrawYen(1, "bank", "wd-1"),
        Outcome.insufficient_yen,
        then=UNCHANGED,
    ),
    case(
        "a participant without an account",
        "maekawa",
        tx.WithdrawYen(1, "bank", "wd-1"),
        Outcome.insufficient_yen,
        then=UNCHANGED,
    ),
    case("the authority", "authority", tx.WithdrawYen(1, "bank", "wd-1"), Outcome.insufficient_yen),
    # the agent named must be a settlement agent
    case(
        "agent is a buyer",
        "buyer",
        tx.WithdrawYen(1, "buyer", "wd-1"),
        Outcome.not_settlement_agent,
        then=UNCHANGED,
    ),
    case(
        "agent is the authority",
        "buyer",
        tx.WithdrawYen(1, "authority", "wd-1"),
        Outcome.not_settlement_agent,
    ),
    case(
        "agent unknown", "buyer", tx.WithdrawYen(1, "nobody", "wd-1"), Outcome.not_settlement_agent
    ),
    # against state
    case(
        "more than available",
        "buyer",
        tx.WithdrawYen(100_001, "bank", "wd-1"),
        Outcome.insufficient_yen,
        then=UNCHANGED,
    ),
    case(
        "more than left",
        "buyer",
        tx.WithdrawYen(90_001, "bank", "wd-2"),
        Outcome.insufficient_yen,
        setup=first_withdrawal,
        then=buyer_yen(90_000, 10_000),
    ),
    case(
        "reference reused",
        "buyer",
        tx.WithdrawYen(1, "bank", "wd-1"),
        Outcome.withdrawal_reference_reused,
        setup=first_withdrawal,
        then=buyer_yen(90_000, 10_000),
    ),
    # fields
    case("zero", "buyer", tx.WithdrawYen(0, "bank", "wd-1"), Outcome.amount_must_be_positive),
    case("negative", "buyer", tx.WithdrawYen(-1, "bank", "wd-1"), Outcome.amount_must_be_positive),
    case("absurd", "buyer", tx.WithdrawYen(10**15 + 1, "bank", "wd-1"), Outcome.amount_too_large),
    case("bad agent id", "buyer", tx.WithdrawYen(1, "ba nk", "wd-1"), Outcome.invalid_id),
    case("bad reference", "buyer", tx.WithdrawYen(1, "bank", "w" * 65), Outcome.invalid_id),
]


@pytest.mark.parametrize("c", CASES, ids=str)
def test_withdraw_yen(c: Case) -> None:
    run_case(c)
