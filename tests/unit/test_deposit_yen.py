"""DepositYen: a settlement agent credits yen it received to a participant's account."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import Case, Ledger, add_participant, run_case

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import deposit_ref_key
from reco2.ledger.types import Reference, Role, YenAccount, YenTotals


def yen(account: str, available: int, deposited: int) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        assert ledger.app.state.yen(account) == YenAccount(available, 0)
        assert ledger.app.state.yen_totals() == YenTotals(deposited, 0)

    return then


def no_yen(ledger: Ledger) -> None:
    assert ledger.app.state.yen("buyer") is None
    assert ledger.app.state.yen_totals() == YenTotals(0, 0)


def first_deposit(ledger: Ledger) -> None:
    ledger.ok("bank", tx.DepositYen("buyer", 1_000_000, "ref-1"))


def recorded(ledger: Ledger) -> None:
    yen("buyer", 1_000_000, 1_000_000)(ledger)
    reference = ledger.app.state.get(deposit_ref_key("ref-1"), Reference)
    assert reference == Reference("buyer", 1_000_000, ledger.app.height)


def second_agent(ledger: Ledger) -> None:
    add_participant(ledger, "bank2", Role.settlement_agent)


def second_agent_after_a_deposit(ledger: Ledger) -> None:
    first_deposit(ledger)
    second_agent(ledger)


CASES = [
    Case("ok", "bank", tx.DepositYen("buyer", 1_000_000, "ref-1"), Outcome.ok, then=recorded),
    Case(
        "ok adds up",
        "bank",
        tx.DepositYen("buyer", 2_345, "ref-2"),
        Outcome.ok,
        setup=first_deposit,
        then=yen("buyer", 1_002_345, 1_002_345),
    ),
    Case(
        "ok for any participant",
        "bank",
        tx.DepositYen("maekawa", 1, "ref-1"),
        Outcome.ok,
        then=yen("maekawa", 1, 1),
    ),
    Case("ok for the agent itself", "bank", tx.DepositYen("bank", 5, "ref-1"), Outcome.ok),
    Case("ok the largest amount", "bank", tx.DepositYen("buyer", 10**15, "ref-1"), Outcome.ok),
    Case(
        "ok by another agent",
        "bank2",
        tx.DepositYen("buyer", 7, "ref-1"),
        Outcome.ok,
        setup=second_agent,
        then=yen("buyer", 7, 7),
    ),
    # who may sign: a settlement agent only
    *(
        Case(
            f"signed by {who}",
            who,
            tx.DepositYen("buyer", 100, "ref-1"),
            Outcome.role_not_allowed,
            then=no_yen,
        )
        for who in ("authority", "maekawa", "mrv", "buyer")
    ),
    # against state
    Case(
        "unknown account",
        "bank",
        tx.DepositYen("nobody", 100, "ref-1"),
        Outcome.account_unknown,
        then=no_yen,
    ),
    Case(
        "reference reused",
        "bank",
        tx.DepositYen("buyer", 1_000_000, "ref-1"),
        Outcome.deposit_reference_reused,
        setup=first_deposit,
        then=yen("buyer", 1_000_000, 1_000_000),
    ),
    Case(
        "reference reused by another agent",
        "bank2",
        tx.DepositYen("maekawa", 5, "ref-1"),
        Outcome.deposit_reference_reused,
        setup=second_agent_after_a_deposit,
    ),
    # fields
    Case("zero", "bank", tx.DepositYen("buyer", 0, "ref-1"), Outcome.amount_must_be_positive),
    Case(
        "negative", "bank", tx.DepositYen("buyer", -100, "ref-1"), Outcome.amount_must_be_positive
    ),
    Case("absurd", "bank", tx.DepositYen("buyer", 10**15 + 1, "ref-1"), Outcome.amount_too_large),
    Case("bad account id", "bank", tx.DepositYen("buy er", 1, "ref-1"), Outcome.invalid_id),
    Case("bad reference", "bank", tx.DepositYen("buyer", 1, ""), Outcome.invalid_id),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_deposit_yen(case: Case) -> None:
    run_case(case)


def test_total_deposits_stay_within_the_encodable_range() -> None:
    """Deposits may not push the ledger's yen past 10**18 sen (MessagePack holds 64 bits)."""
    from tests.support import world

    from reco2.ledger import tx as txm
    from reco2.ledger.kinds.deposit_yen import MAX_TOTAL_SEN

    ledger = world()
    chunk = 10**15
    for i in range(MAX_TOTAL_SEN // chunk):
        ledger.block([ledger.sign("bank", txm.DepositYen("buyer", chunk, f"r{i}"))])
    assert ledger.app.state.yen_totals().deposited_sen == MAX_TOTAL_SEN
    result = ledger.run("bank", txm.DepositYen("buyer", 1, "one-more"))
    assert result.code == "amount_too_large"
    assert ledger.app.state.yen_totals().deposited_sen == MAX_TOTAL_SEN
