"""PublishEmissionFactors: the authority publishes an immutable version of the factor table."""

from __future__ import annotations

import pytest
from tests.support import Case, Ledger, genesis, run_case, world

from reco2 import factors
from reco2.ledger import tx
from reco2.ledger.app import Application
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import FactorRow, FactorTable


def row(
    fiscal_year: int = 2025,
    utility: str = "national",
    factor: int = 423,
    source: str = "MOE/METI",
    published_on: str = "2026-01-09",
) -> tx.FactorRowIn:
    return tx.FactorRowIn(fiscal_year, utility, factor, source, published_on)


def table(*rows: tx.FactorRowIn, version: str = "v2") -> tx.PublishEmissionFactors:
    return tx.PublishEmissionFactors(version, list(rows) if rows else [row()])


def v2_published(ledger: Ledger) -> None:
    assert ledger.app.state.factors("v2") == FactorTable(
        version="v2",
        rows=[  # sorted by (fiscal year, utility)
            FactorRow(2024, "national", 441, "MOE/METI", "2025-01-10"),
            FactorRow(2025, "A0002", 300, "MOE/METI", "2026-01-09"),
            FactorRow(2025, "national", 423, "MOE/METI", "2026-01-09"),
        ],
        published_height=ledger.app.height,
    )
    # the earlier version is untouched
    shipped = ledger.app.state.factors(factors.shipped_table()["version"])
    assert shipped is not None
    assert [(r.fiscal_year, r.utility, r.factor_mg_per_wh) for r in shipped.rows] == [
        (2025, "national", 423),
        (2025, "substitute", 416),
    ]


V2 = table(
    row(2025, "national", 423),
    row(2025, "A0002", 300),
    row(2024, "national", 441, published_on="2025-01-10"),
)

CASES = [
    Case("ok", "authority", V2, Outcome.ok, then=v2_published),
    Case(
        "ok edges",
        "authority",
        table(row(1990, factor=1), row(2200, factor=2_000), row(2025, "U" * 16, source="s" * 256)),
        Outcome.ok,
    ),
    # who may sign: the authority only
    *(
        Case(f"signed by {who}", who, V2, Outcome.role_not_allowed)
        for who in ("maekawa", "mrv", "buyer", "bank")
    ),
    # against state: versions are immutable
    Case("version exists", "authority", factors.publish_action(), Outcome.factor_version_exists),
    # fields
    Case("bad version id", "authority", table(version="v 2"), Outcome.invalid_id),
    Case("no rows", "authority", tx.PublishEmissionFactors("v2", []), Outcome.invalid_factor_table),
    Case("fiscal year 1989", "authority", table(row(1989)), Outcome.invalid_factor_table),
    Case("fiscal year 2201", "authority", table(row(2201)), Outcome.invalid_factor_table),
    Case("zero factor", "authority", table(row(factor=0)), Outcome.invalid_factor_table),
    Case("negative factor", "authority", table(row(factor=-423)), Outcome.invalid_factor_table),
    # 0.423 kg/kWh written as g/Wh x 1000 by mistake: 423,000 mg/Wh
    Case(
        "factor in the wrong unit",
        "authority",
        table(row(factor=423_000)),
        Outcome.invalid_factor_table,
    ),
    Case("factor above 2,000", "authority", table(row(factor=2_001)), Outcome.invalid_factor_table),
    Case("empty utility", "authority", table(row(utility="")), Outcome.invalid_factor_table),
    Case(
        "utility of 17 chars",
        "authority",
        table(row(utility="U" * 17)),
        Outcome.invalid_factor_table,
    ),
    Case(
        "source of 257 chars",
        "authority",
        table(row(source="s" * 257)),
        Outcome.invalid_factor_table,
    ),
    Case(
        "the same year and utility twice",
        "authority",
        table(row(factor=423), row(factor=416)),
        Outcome.invalid_factor_table,
    ),
    Case(
        "bad publication date",
        "authority",
        table(row(published_on="2026-1-9")),
        Outcome.invalid_date,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_publish_emission_factors(case: Case) -> None:
    run_case(case)


def many_rows(count: int) -> tx.PublishEmissionFactors:
    return table(*(row(1990 + i // 10, f"u{i % 10}", source="") for i in range(count)))


@pytest.mark.parametrize(
    ("count", "expected"), [(2_000, Outcome.ok), (2_001, Outcome.invalid_factor_table)]
)
def test_row_limit(count: int, expected: Outcome) -> None:
    """At most 2,000 rows; such a table is larger than the default 16 kB transaction limit, so
    this chain's genesis raises the limit."""
    ledger = world(Ledger(app=Application(genesis(max_tx_bytes=1 << 20))))
    ledger.attempt("authority", many_rows(count), expected)


def test_a_table_of_2000_rows_does_not_fit_the_default_limit() -> None:
    ledger = world()
    ledger.attempt("authority", many_rows(2_000), Outcome.transaction_too_large)
