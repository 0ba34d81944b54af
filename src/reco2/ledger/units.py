"""Integer units and every rounding rule of the ledger, written once.

Units (DESIGN.md section 2):
- energy: Wh; CO2 value: g-CO2 (shown as kg with three decimals);
- emission factor: mg-CO2 per Wh (0.000423 t-CO2/kWh = 423 mg/Wh);
- money: sen (1/100 yen); prices: sen per kg-CO2 (shown as yen per kg).

No floats anywhere: amounts are Python ints with their unit at the end of the name.
"""

from __future__ import annotations

MG_PER_G = 1_000
G_PER_KG = 1_000
SEN_PER_YEN = 100


def issued_value_g(
    self_consumed_wh: int, factor_mg_per_wh: int, carried_in_mg: int
) -> tuple[int, int]:
    """Value created by an issuance, and the remainder carried to the device's next one.

    Rule: issued g = floor((self-consumed [Wh] x factor [mg/Wh] + carried-in [mg]) / 1000).
    The part below one gram [mg] is carried forward per device: never lost, never rounded up.

    Returns (issued [g], carried out [mg]).
    """
    assert self_consumed_wh >= 0, "energy is never negative"
    assert factor_mg_per_wh >= 0, "an emission factor is never negative"
    assert 0 <= carried_in_mg < MG_PER_G, "the carry is always below one gram"
    total_mg = self_consumed_wh * factor_mg_per_wh + carried_in_mg
    return total_mg // MG_PER_G, total_mg % MG_PER_G


def trade_value_sen(quantity_g: int, price_sen_per_kg: int) -> int:
    """Money that changes hands for a trade [sen].

    Rule: floor(quantity [g] x price [sen/kg] / 1000). The same integer leaves the buyer
    and reaches the seller, so rounding never creates or destroys money.
    """
    assert quantity_g >= 0
    assert price_sen_per_kg >= 0
    return quantity_g * price_sen_per_kg // G_PER_KG


def format_kg(co2_g: int) -> str:
    """Show a g-CO2 amount as kg with three decimals, exactly ("1234 g" -> "1.234")."""
    sign = "-" if co2_g < 0 else ""
    whole, part = divmod(abs(co2_g), G_PER_KG)
    return f"{sign}{whole}.{part:03d}"


def format_yen(amount_sen: int) -> str:
    """Show a sen amount as yen with two decimals, exactly."""
    sign = "-" if amount_sen < 0 else ""
    whole, part = divmod(abs(amount_sen), SEN_PER_YEN)
    return f"{sign}{whole:,}.{part:02d}"
