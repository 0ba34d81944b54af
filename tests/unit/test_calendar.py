"""Time rules (reco2.ledger.calendar): the 30-minute grid and Japanese fiscal years in JST.

JST = UTC+9; a fiscal year starts on April 1 at 00:00 JST = March 31 at 15:00 UTC.
"""

from __future__ import annotations

import datetime as dt

import pytest

from reco2.ledger import calendar


def utc_s(text: str) -> int:
    """An ISO instant with its offset, as UTC seconds."""
    return int(dt.datetime.fromisoformat(text).timestamp())


@pytest.mark.parametrize(
    ("instant", "fiscal_year"),
    [
        ("2026-03-31T15:00:00+00:00", 2026),  # = 2026-04-01 00:00 JST: the first second of FY2026
        ("2026-03-31T14:59:59+00:00", 2025),  # = 2026-03-31 23:59:59 JST: the last of FY2025
        ("2026-04-01T00:00:00+09:00", 2026),
        ("2026-03-31T23:59:59+09:00", 2025),
        ("2026-01-01T00:00:00+09:00", 2025),  # January to March belong to the previous year
        ("2025-12-31T15:00:00+00:00", 2025),
        ("2025-04-01T00:00:00+09:00", 2025),
        ("2025-06-15T12:00:00+00:00", 2025),
        ("2025-03-31T14:59:59+00:00", 2024),
        ("2024-02-29T12:00:00+09:00", 2023),  # a leap day
    ],
)
def test_fiscal_year_in_jst(instant: str, fiscal_year: int) -> None:
    assert calendar.fiscal_year(utc_s(instant)) == fiscal_year


def test_fiscal_year_boundary_is_jst_midnight() -> None:
    start = calendar.jst_midnight_s(dt.date(2026, 4, 1))
    assert start == utc_s("2026-03-31T15:00:00+00:00")
    assert calendar.fiscal_year(start) == 2026
    assert calendar.fiscal_year(start - 1) == 2025


@pytest.mark.parametrize(
    ("instant", "date"),
    [
        ("2026-03-31T15:00:00+00:00", "2026-04-01"),
        ("2026-03-31T14:59:59+00:00", "2026-03-31"),
        ("2025-06-15T00:00:00+09:00", "2025-06-15"),
    ],
)
def test_jst_date(instant: str, date: str) -> None:
    assert calendar.jst_date(utc_s(instant)) == date


def test_jst_midnight() -> None:
    assert calendar.jst_midnight_s(dt.date(2025, 6, 1)) == utc_s("2025-05-31T15:00:00+00:00")
    assert calendar.jst_midnight_s(dt.date(1970, 1, 2)) == 86_400 - 9 * 3_600


@pytest.mark.parametrize(
    ("instant_s", "on_grid"),
    [(0, True), (1_800, True), (3_600, True), (1_799, False), (1_801, False), (900, False)],
)
def test_thirty_minute_grid(instant_s: int, on_grid: bool) -> None:
    assert calendar.on_grid(instant_s) is on_grid


def test_jst_midnight_is_on_the_grid() -> None:
    assert calendar.on_grid(calendar.jst_midnight_s(dt.date(2025, 6, 1)))


@pytest.mark.parametrize("text", ["2025-06-01", "2024-02-29", "1999-12-31"])
def test_parse_iso_date_valid(text: str) -> None:
    assert calendar.parse_iso_date(text) == dt.date.fromisoformat(text)


@pytest.mark.parametrize(
    "text",
    [
        "2025-6-1",
        "2025-02-29",
        "2025-13-01",
        "20250601",
        "2025-06-01T00:00",
        "",
        "2025-06-0x",
        "2025-W01-1",  # an ISO week date: Python 3.11 would read it as 2024-12-30
        "2025060100",  # a basic-format date with a time: Python 3.11 would read it too
        "２０２５-06-01",
    ],
)
def test_parse_iso_date_invalid(text: str) -> None:
    assert calendar.parse_iso_date(text) is None
