"""Japanese place codes (reco2.ledger.places): prefectures, municipality check digits, and the
hierarchical match used by buy conditions."""

from __future__ import annotations

import pytest

from reco2.ledger import places


@pytest.mark.parametrize("code", ["01", "07", "13", "47"])
def test_prefecture_codes_valid(code: str) -> None:
    assert places.is_prefecture_code(code)


@pytest.mark.parametrize("code", ["00", "48", "99", "1", "013", "", "ab", "１３", " 1"])
def test_prefecture_codes_invalid(code: str) -> None:
    assert not places.is_prefecture_code(code)


@pytest.mark.parametrize(
    ("jis5", "check"),
    [
        ("01100", 2),  # 札幌市: 0*6+1*5+1*4+0*3+0*2 = 9, 11-9 = 2
        ("07203", 6),  # 郡山市: 35+8+6 = 49, 49 mod 11 = 5, 11-5 = 6
        ("13120", 2),  # 練馬区: 6+15+4+6 = 31, 31 mod 11 = 9, 11-9 = 2
        ("01205", 0),  # 室蘭市: 23 mod 11 = 1, (11-1) mod 10 = 0
        ("01230", 1),  # 登別市: 22 mod 11 = 0, (11-0) mod 10 = 1
        ("01204", 1),  # 旭川市: 21 mod 11 = 10, 11-10 = 1
    ],
)
def test_municipality_check_digit(jis5: str, check: int) -> None:
    assert places.municipality_check_digit(jis5) == check


@pytest.mark.parametrize("code", ["011002", "072036", "131202", "012050", "012301", "131016"])
def test_municipality_codes_valid(code: str) -> None:
    assert places.is_municipality_code(code)


@pytest.mark.parametrize(
    "code",
    [
        "011003",  # 札幌市 with a wrong check digit
        "072035",
        "131201",
        "131200",
        "13120",  # five digits: the check digit is required
        "1312020",
        "481000",  # no prefecture 48
        "001009",  # no prefecture 00 (even with a matching check digit)
        "13120a",
        "１３１２０２",  # full-width digits
        "",
    ],
)
def test_municipality_codes_invalid(code: str) -> None:
    assert not places.is_municipality_code(code)


def test_every_wrong_check_digit_is_refused() -> None:
    for jis5 in ("01100", "07203", "13120"):
        right = places.municipality_check_digit(jis5)
        for digit in range(10):
            assert places.is_municipality_code(f"{jis5}{digit}") is (digit == right)


@pytest.mark.parametrize(
    ("outer", "inner", "contains"),
    [
        ("07", "072036", True),  # a prefecture contains its municipalities
        ("07", "07203", True),
        ("13", "072036", False),
        ("072036", "072036", True),  # a code contains itself
        ("07203", "072036", True),  # five and six digits name the same place
        ("072036", "07203", True),
        ("072036", "072044", False),  # another municipality of the same prefecture
        ("131202", "07", False),  # a municipality does not contain its prefecture
        ("07", "07", True),
    ],
)
def test_place_contains(outer: str, inner: str, contains: bool) -> None:
    assert places.place_contains(outer, inner) is contains
