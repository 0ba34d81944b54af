"""PublishEmissionFactors: the authority publishes a version of the emission-factor table.

A version is immutable once published; each issuance names the version it used.
"""

from __future__ import annotations

from reco2.ledger.calendar import parse_iso_date
from reco2.ledger.kinds.common import Context, has_role, text_ok, valid_id
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import State, factors_key
from reco2.ledger.tx import PublishEmissionFactors
from reco2.ledger.types import FactorRow, FactorTable, Role

MAX_ROWS = 2_000
#: 2,000 mg/Wh = 2 t-CO2/MWh: above any grid's average factor; guards against unit slips.
MAX_FACTOR_MG_PER_WH = 2_000


def stateless(action: PublishEmissionFactors) -> Outcome:
    if not valid_id(action.version):
        return Outcome.invalid_id
    if not action.rows or len(action.rows) > MAX_ROWS:
        return Outcome.invalid_factor_table
    seen: set[tuple[int, str]] = set()
    for row in action.rows:
        if not 1990 <= row.fiscal_year <= 2200:
            return Outcome.invalid_factor_table
        if not 0 < row.factor_mg_per_wh <= MAX_FACTOR_MG_PER_WH:
            return Outcome.invalid_factor_table
        if not row.utility or not text_ok(row.utility, 16) or not text_ok(row.source):
            return Outcome.invalid_factor_table
        if parse_iso_date(row.published_on) is None:
            return Outcome.invalid_date
        if (row.fiscal_year, row.utility) in seen:
            return Outcome.invalid_factor_table
        seen.add((row.fiscal_year, row.utility))
    return Outcome.ok


def check(state: State, ctx: Context, action: PublishEmissionFactors) -> Outcome:
    if not has_role(ctx.signer, Role.authority):
        return Outcome.role_not_allowed
    if state.factors(action.version) is not None:
        return Outcome.factor_version_exists
    return Outcome.ok


def apply(state: State, ctx: Context, action: PublishEmissionFactors) -> tuple[str, ...]:
    rows = sorted(
        (
            FactorRow(r.fiscal_year, r.utility, r.factor_mg_per_wh, r.source, r.published_on)
            for r in action.rows
        ),
        key=lambda r: (r.fiscal_year, r.utility),
    )
    state.put(factors_key(action.version), FactorTable(action.version, rows, ctx.height))
    return (f"factors/{action.version}",)
