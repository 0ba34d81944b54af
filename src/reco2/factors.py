"""The emission-factor table shipped with ReCO2 (src/reco2/data/emission_factors.json)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from reco2.ledger import tx


def shipped_table() -> dict[str, Any]:
    text = resources.files("reco2.data").joinpath("emission_factors.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


def publish_action(table: dict[str, Any] | None = None) -> tx.PublishEmissionFactors:
    table = table if table is not None else shipped_table()
    return tx.PublishEmissionFactors(
        version=table["version"],
        rows=[
            tx.FactorRowIn(
                fiscal_year=int(r["fiscal_year"]),
                utility=str(r["utility"]),
                factor_mg_per_wh=int(r["factor_mg_per_wh"]),
                source=str(r["source"]),
                published_on=str(r["published_on"]),
            )
            for r in table["rows"]
        ],
    )
