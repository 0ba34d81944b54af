"""RetireValue (償却): a holder retires tradable value for a claim; retired value never moves.

Setup: b1 holds 4,177 g issued to maekawa; the buyer has 1,000 g of it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import Case, Ledger, holding_of, issue_action, world

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import Purpose, Retirement


def retire(
    quantity_g: int = 300,
    retirement_id: str = "r1",
    batch_id: str = "b1",
    beneficiary: str = "株式会社 例",
    purpose: Purpose = Purpose.ghg_report,
    claimed_period: str = "FY2025",
    note: str = "温対法 報告",
) -> tx.RetireValue:
    return tx.RetireValue(
        retirement_id, batch_id, quantity_g, beneficiary, purpose, claimed_period, note
    )


def setup(ledger: Ledger) -> None:
    ledger.ok("mrv", issue_action("b1", wh=9_876))
    ledger.ok("maekawa", tx.TransferValue("b1", "buyer", 1_000))


def r1_taken(ledger: Ledger) -> None:
    setup(ledger)
    ledger.ok("buyer", retire(100))


def buyer_has(amounts: tuple[int, int, int] | None) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        assert holding_of(ledger, "b1", "buyer") == amounts
        assert holding_of(ledger, "b1", "maekawa") == (3_177, 0, 0)

    return then


def r1_recorded(ledger: Ledger) -> None:
    buyer_has((700, 0, 300))(ledger)
    record = ledger.app.state.retirement("r1")
    assert record is not None
    assert record == Retirement(
        retirement_id="r1",
        holder="buyer",
        batch_id="b1",
        quantity_g=300,
        beneficiary="株式会社 例",
        purpose=Purpose.ghg_report,
        claimed_period="FY2025",
        note="温対法 報告",
        height=ledger.app.height,
        time_ns=ledger.time_ns,
        tx_hash=record.tx_hash,
    )
    assert len(record.tx_hash) == 32


CASES = [
    Case("ok", "buyer", retire(300), Outcome.ok, then=r1_recorded),
    Case("ok everything", "buyer", retire(1_000), Outcome.ok, then=buyer_has((0, 0, 1_000))),
    Case("ok by the owner", "maekawa", retire(3_177, purpose=Purpose.re100), Outcome.ok),
    Case(
        "ok longest texts",
        "buyer",
        retire(1, beneficiary="b" * 256, claimed_period="p" * 64, note="n" * 1_024),
        Outcome.ok,
    ),
    Case("ok empty note and period", "buyer", retire(1, claimed_period="", note=""), Outcome.ok),
    *(Case(f"ok purpose {p.value}", "buyer", retire(1, purpose=p), Outcome.ok) for p in Purpose),
    # who may sign: a holder, for what it holds
    Case("signed by a non-holder", "bank", retire(1), Outcome.insufficient_value),
    Case("signed by the aggregator", "mrv", retire(1), Outcome.insufficient_value),
    Case("signed by the authority", "authority", retire(1), Outcome.insufficient_value),
    # amounts
    Case(
        "more than held",
        "buyer",
        retire(1_001),
        Outcome.insufficient_value,
        then=buyer_has((1_000, 0, 0)),
    ),
    Case(
        "retired value is not retired twice",
        "buyer",
        retire(901, "r2"),
        Outcome.insufficient_value,
        setup=r1_taken,
        then=buyer_has((900, 0, 100)),
    ),
    Case("zero", "buyer", retire(0), Outcome.quantity_must_be_positive),
    Case("negative", "buyer", retire(-1), Outcome.quantity_must_be_positive),
    Case("absurd", "buyer", retire(10**15 + 1), Outcome.amount_too_large),
    # against state
    Case(
        "retirement id taken",
        "buyer",
        retire(1),
        Outcome.retirement_exists,
        setup=r1_taken,
        then=buyer_has((900, 0, 100)),
    ),
    Case(
        "retirement id taken by another holder",
        "maekawa",
        retire(1),
        Outcome.retirement_exists,
        setup=r1_taken,
    ),
    Case("unknown batch", "buyer", retire(1, batch_id="b9"), Outcome.unknown_batch),
    # fields
    Case("bad retirement id", "buyer", retire(1, "r 1"), Outcome.invalid_id),
    Case("bad batch id", "buyer", retire(1, batch_id="b/1"), Outcome.invalid_id),
    Case("no beneficiary", "buyer", retire(1, beneficiary=""), Outcome.text_required),
    Case("beneficiary too long", "buyer", retire(1, beneficiary="b" * 257), Outcome.text_too_long),
    Case(
        "claimed period too long",
        "buyer",
        retire(1, claimed_period="p" * 65),
        Outcome.text_too_long,
    ),
    Case("note too long", "buyer", retire(1, note="n" * 1_025), Outcome.text_too_long),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_retire_value(case: Case) -> None:
    ledger = world()
    (case.setup or setup)(ledger)
    ledger.attempt(case.signer, case.action, case.expected)
    if case.then is not None:
        case.then(ledger)


def test_retired_value_never_moves_again() -> None:
    ledger = world()
    setup(ledger)
    ledger.attempt("buyer", retire(1_000), Outcome.ok)
    ledger.attempt("buyer", tx.TransferValue("b1", "maekawa", 1), Outcome.insufficient_value)
    ledger.attempt("buyer", retire(1, "r2"), Outcome.insufficient_value)
    assert holding_of(ledger, "b1", "buyer") == (0, 0, 1_000)
    # more value received later can be retired under a new id
    ledger.attempt("maekawa", tx.TransferValue("b1", "buyer", 10), Outcome.ok)
    ledger.attempt("buyer", retire(10, "r2"), Outcome.ok)
    assert holding_of(ledger, "b1", "buyer") == (0, 0, 1_010)
