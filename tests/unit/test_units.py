"""Rounding rules of DESIGN.md section 2 (reco2.ledger.units): integers only, floor, carry."""

from __future__ import annotations

import pytest

from reco2.ledger import units


@pytest.mark.parametrize(
    ("wh", "factor_mg_per_wh", "carried_in_mg", "issued_g", "carried_out_mg"),
    [
        (9_876, 423, 0, 4_177, 548),  # 4,177,548 mg
        (8_765, 423, 548, 3_708, 143),  # 3,707,595 + 548 = 3,708,143 mg
        (8_765, 423, 0, 3_707, 595),  # the same energy without a carry
        (0, 423, 0, 0, 0),
        (0, 423, 999, 0, 999),  # a carry alone never rounds up to a gram
        (1, 423, 576, 0, 999),  # 423 + 576 = 999 mg: still below a gram
        (1, 423, 577, 1, 0),  # exactly one gram
        (2, 500, 0, 1, 0),
        (1, 999, 0, 0, 999),
        (10**15, 2_000, 999, 2 * 10**15, 999),  # large values stay exact (no floats)
    ],
)
def test_issued_value_floors_and_carries(
    wh: int, factor_mg_per_wh: int, carried_in_mg: int, issued_g: int, carried_out_mg: int
) -> None:
    assert units.issued_value_g(wh, factor_mg_per_wh, carried_in_mg) == (issued_g, carried_out_mg)


def test_issued_value_loses_nothing_over_many_issuances() -> None:
    """Summed issuance with its carry equals the one-shot total: never lost, never rounded up."""
    carry = 0
    total_g = 0
    energies = [1, 7, 333, 9_876, 8_765, 2, 1_001, 0, 45]
    for wh in energies:
        issued, carry = units.issued_value_g(wh, 423, carry)
        total_g += issued
        assert 0 <= carry < 1_000
    total_mg = sum(energies) * 423
    assert total_g == total_mg // 1_000
    assert carry == total_mg % 1_000


@pytest.mark.parametrize(
    ("wh", "factor", "carry"),
    [(-1, 423, 0), (1, -1, 0), (1, 423, -1), (1, 423, 1_000)],
)
def test_issued_value_refuses_impossible_inputs(wh: int, factor: int, carry: int) -> None:
    with pytest.raises(AssertionError):
        units.issued_value_g(wh, factor, carry)


@pytest.mark.parametrize(
    ("quantity_g", "price_sen_per_kg", "sen"),
    [
        (1_000, 300, 300),  # 1 kg at 3.00 yen/kg
        (1, 300, 0),  # 0.3 sen floors to 0
        (3, 333, 0),  # 0.999 sen
        (4, 250, 1),  # exactly 1 sen
        (1_234, 1_550, 1_912),  # 1,912.7 sen floors
        (999, 1_001, 999),  # 999.999 sen floors
        (0, 5_000, 0),
        (5_000, 0, 0),
        (10**15, 10**6, 10**18),
    ],
)
def test_trade_value_floors(quantity_g: int, price_sen_per_kg: int, sen: int) -> None:
    assert units.trade_value_sen(quantity_g, price_sen_per_kg) == sen


def test_trade_value_refuses_negative_inputs() -> None:
    with pytest.raises(AssertionError):
        units.trade_value_sen(-1, 100)
    with pytest.raises(AssertionError):
        units.trade_value_sen(1, -100)


@pytest.mark.parametrize(
    ("co2_g", "shown"),
    [(0, "0.000"), (1, "0.001"), (1_234, "1.234"), (4_177, "4.177"), (-1_500, "-1.500")],
)
def test_format_kg(co2_g: int, shown: str) -> None:
    assert units.format_kg(co2_g) == shown


@pytest.mark.parametrize(
    ("sen", "shown"), [(0, "0.00"), (5, "0.05"), (123_456, "1,234.56"), (-250, "-2.50")]
)
def test_format_yen(sen: int, shown: str) -> None:
    assert units.format_yen(sen) == shown
