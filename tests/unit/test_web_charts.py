"""The devices page's bar charts and day rows."""

from __future__ import annotations

import datetime as dt

from reco2.mrv.readings import self_consumed_wh
from reco2.web import charts, demo_readings
from reco2.web.pages_devices import day_rows


def test_nice_top_rounds_up_to_1_2_5() -> None:
    assert [charts.nice_top(v) for v in (0, 0.3, 1, 1.2, 3, 7, 12, 4_999)] == [
        1.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 5_000.0,
    ]  # fmt: skip


def test_bar_chart_one_bar_per_point_tallest_fits() -> None:
    chart = charts.bar_chart("x", "Generation", "kWh", [("05-01", 10.0), ("05-02", 5.0)])
    assert [b.label for b in chart.bars] == ["05-01", "05-02"]
    tall, short = chart.bars
    assert tall.y + tall.height == chart.baseline == short.y + short.height
    assert short.height * 2 == tall.height
    assert chart.ticks[0].value == 0 and chart.ticks[-1].value == 10.0
    assert "05-02 5" in chart.description
    assert charts.bar_chart("e", "T", "u", []).description == "T: no data"


def test_day_rows_union_of_energy_and_value_days() -> None:
    rows = day_rows({"2025-05-01": (10, 6)}, {"2025-05-01": 3, "2025-05-02": 4})
    assert [(r.day, r.generation_wh, r.self_consumed_wh, r.co2_g) for r in rows] == [
        ("2025-05-01", 10, 6, 3),
        ("2025-05-02", 0, 0, 4),
    ]


def test_demo_day_is_on_the_grid_and_self_consumes() -> None:
    readings = demo_readings.day_readings("d", dt.date(2025, 5, 1), 2_000)
    assert len(readings) == 28
    assert all(r.interval_start_s % 1800 == 0 for r in readings)
    assert sum(self_consumed_wh(r) for r in readings) > 0
