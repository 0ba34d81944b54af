"""TransferValue: a holder gives tradable value of one batch to another participant.

Setup: b1 holds 4,177 g issued to maekawa (9,876 Wh at 423 mg/Wh).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import Case, Ledger, holding_of, issue_action, world

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import Purpose


def b1(ledger: Ledger) -> None:
    ledger.ok("mrv", issue_action("b1", wh=9_876))


def buyer_holds_1000(ledger: Ledger) -> None:
    b1(ledger)
    ledger.ok("maekawa", tx.TransferValue("b1", "buyer", 1_000))


def maekawa_retired_4000(ledger: Ledger) -> None:
    b1(ledger)
    ledger.ok("maekawa", tx.RetireValue("r1", "b1", 4_000, "maekawa", Purpose.offset, "FY2025", ""))


def holdings(**expected: tuple[int, int, int] | None) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        for holder, amounts in expected.items():
            assert holding_of(ledger, "b1", holder) == amounts, holder

    return then


def run(case: Case) -> Ledger:
    ledger = world()
    b1(ledger) if case.setup is None else case.setup(ledger)
    ledger.attempt(case.signer, case.action, case.expected)
    if case.then is not None:
        case.then(ledger)
    return ledger


UNCHANGED = holdings(maekawa=(4_177, 0, 0), buyer=None)

CASES = [
    Case(
        "ok",
        "maekawa",
        tx.TransferValue("b1", "buyer", 1_000),
        Outcome.ok,
        then=holdings(maekawa=(3_177, 0, 0), buyer=(1_000, 0, 0)),
    ),
    Case(
        "ok everything",
        "maekawa",
        tx.TransferValue("b1", "buyer", 4_177),
        Outcome.ok,
        then=holdings(maekawa=(0, 0, 0), buyer=(4_177, 0, 0)),
    ),
    Case(
        "ok one gram",
        "maekawa",
        tx.TransferValue("b1", "bank", 1),
        Outcome.ok,
        then=holdings(maekawa=(4_176, 0, 0), bank=(1, 0, 0)),
    ),
    Case(
        "ok to an existing holding",
        "maekawa",
        tx.TransferValue("b1", "buyer", 77),
        Outcome.ok,
        setup=buyer_holds_1000,
        then=holdings(maekawa=(3_100, 0, 0), buyer=(1_077, 0, 0)),
    ),
    # who may sign: any holder of the batch, whatever its role
    Case(
        "ok onward by a buyer",
        "buyer",
        tx.TransferValue("b1", "bank", 400),
        Outcome.ok,
        setup=buyer_holds_1000,
        then=holdings(buyer=(600, 0, 0), bank=(400, 0, 0)),
    ),
    Case(
        "ok back to the owner",
        "buyer",
        tx.TransferValue("b1", "maekawa", 1_000),
        Outcome.ok,
        setup=buyer_holds_1000,
        then=holdings(maekawa=(4_177, 0, 0), buyer=(0, 0, 0)),
    ),
    Case(
        "signed by a non-holder",
        "buyer",
        tx.TransferValue("b1", "bank", 1),
        Outcome.insufficient_value,
        then=UNCHANGED,
    ),
    Case(
        "signed by the issuing aggregator",
        "mrv",
        tx.TransferValue("b1", "buyer", 1),
        Outcome.insufficient_value,
        then=UNCHANGED,
    ),
    Case(
        "signed by the authority",
        "authority",
        tx.TransferValue("b1", "buyer", 1),
        Outcome.insufficient_value,
        then=UNCHANGED,
    ),
    # amounts
    Case(
        "more than held",
        "maekawa",
        tx.TransferValue("b1", "buyer", 4_178),
        Outcome.insufficient_value,
        then=UNCHANGED,
    ),
    Case(
        "more than the buyer holds",
        "buyer",
        tx.TransferValue("b1", "bank", 1_001),
        Outcome.insufficient_value,
        setup=buyer_holds_1000,
    ),
    Case(
        "retired value does not move",
        "maekawa",
        tx.TransferValue("b1", "buyer", 178),
        Outcome.insufficient_value,
        setup=maekawa_retired_4000,
        then=holdings(maekawa=(177, 0, 4_000), buyer=None),
    ),
    Case(
        "the unretired rest moves",
        "maekawa",
        tx.TransferValue("b1", "buyer", 177),
        Outcome.ok,
        setup=maekawa_retired_4000,
        then=holdings(maekawa=(0, 0, 4_000), buyer=(177, 0, 0)),
    ),
    Case("zero", "maekawa", tx.TransferValue("b1", "buyer", 0), Outcome.quantity_must_be_positive),
    Case(
        "negative",
        "maekawa",
        tx.TransferValue("b1", "buyer", -5),
        Outcome.quantity_must_be_positive,
        then=UNCHANGED,
    ),
    Case(
        "absurd", "maekawa", tx.TransferValue("b1", "buyer", 10**15 + 1), Outcome.amount_too_large
    ),
    # against state
    Case("unknown batch", "maekawa", tx.TransferValue("b9", "buyer", 1), Outcome.unknown_batch),
    Case(
        "unknown recipient",
        "maekawa",
        tx.TransferValue("b1", "nobody", 1),
        Outcome.recipient_unknown,
        then=UNCHANGED,
    ),
    Case(
        "to oneself",
        "maekawa",
        tx.TransferValue("b1", "maekawa", 1),
        Outcome.self_transfer,
        then=UNCHANGED,
    ),
    Case("bad batch id", "maekawa", tx.TransferValue("b 1", "buyer", 1), Outcome.invalid_id),
    Case("bad recipient id", "maekawa", tx.TransferValue("b1", "", 1), Outcome.invalid_id),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_transfer_value(case: Case) -> None:
    run(case)


def test_transfers_conserve_the_batch() -> None:
    ledger = world()
    b1(ledger)
    moves = [
        ("maekawa", "buyer", 2_000),
        ("buyer", "bank", 500),
        ("bank", "maekawa", 499),
        ("maekawa", "bank", 2_676),
        ("buyer", "maekawa", 1_500),
    ]
    for sender, recipient, grams in moves:
        ledger.attempt(sender, tx.TransferValue("b1", recipient, grams), Outcome.ok)
    amounts = {h: holding_of(ledger, "b1", h) for h in ("maekawa", "buyer", "bank")}
    assert amounts == {"maekawa": (1_500, 0, 0), "buyer": (0, 0, 0), "bank": (2_677, 0, 0)}
    assert sum(a[0] for a in amounts.values() if a) == 4_177
    assert ledger.app.state.holdings_of("bank") == ["b1"]
