"""Every outcome code is produced by some test: a rule without a test of its code is a rule
nobody has seen fail. Runs last in the unit session (see conftest.py) and reads the codes the
other tests asserted through ``tests.support.expect``."""

from __future__ import annotations

import pytest
from tests import support

from reco2.ledger.outcome import Outcome

#: The modules that produce outcome codes: the envelope, the encoding, one per ledger kind and
#: the market's (issue 3).
PRODUCING_MODULES = (
    {"test_app_envelope.py", "test_tx_encoding.py"}
    | {f"test_{kind}.py" for kind in support.LEDGER_KINDS}
    | {
        "test_place_sell_order.py",
        "test_place_buy_order.py",
        "test_cancel_order.py",
        "test_sell_rules.py",
    }
)


def test_every_outcome_is_produced() -> None:
    missing_modules = PRODUCING_MODULES - support.COLLECTED_MODULES
    if missing_modules:
        pytest.skip(f"only part of the unit tests ran (not {sorted(missing_modules)})")
    never = [o.value for o in Outcome if o.value not in support.PRODUCED]
    assert never == [], f"no test produced these outcome codes: {never}"


def test_no_test_claims_a_code_that_does_not_exist() -> None:
    assert {o.value for o in Outcome} >= support.PRODUCED
