"""Time rules of the ledger: the 30-minute grid and Japanese fiscal years, from integers only."""

from __future__ import annotations

import datetime as _dt

INTERVAL_S = 1_800  # the Japanese smart-meter grid: 30 minutes [s]
NS_PER_S = 1_000_000_000
JST_OFFSET_S = 9 * 3_600
_JST = _dt.timezone(_dt.timedelta(hours=9))
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def on_grid(instant_s: int) -> bool:
    return instant_s % INTERVAL_S == 0


def fiscal_year(instant_s: int) -> int:
    """Japanese fiscal year (April-March, JST) containing an instant [UTC s]."""
    local = _dt.datetime.fromtimestamp(instant_s, tz=_JST)
    return local.year if local.month >= 4 else local.year - 1


def jst_date(instant_s: int) -> str:
    """ISO date in JST of an instant [UTC s]."""
    return _dt.datetime.fromtimestamp(instant_s, tz=_JST).date().isoformat()


def parse_iso_date(text: str) -> _dt.date | None:
    """A strict YYYY-MM-DD date, or None."""
    # Python 3.11's fromisoformat also takes week dates ("2025-W01-1") and basic forms.
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.isascii():
        return None
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        return None


def jst_midnight_s(day: _dt.date) -> int:
    """Start of a JST calendar day [UTC s]."""
    start = _dt.datetime(day.year, day.month, day.day, tzinfo=_JST)
    return (start - _EPOCH) // _dt.timedelta(seconds=1)
