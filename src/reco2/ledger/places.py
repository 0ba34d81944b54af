"""Japanese place codes (FACTS.md, "Japanese place codes").

- Prefecture: JIS X 0401, two digits 01 (北海道) ... 47 (沖縄県).
- Municipality: 全国地方公共団体コード, six digits = the five-digit JIS X 0402 code + a check digit.
  Check digit (総務省, soumu.go.jp/denshijiti/code.html): weights 6,5,4,3,2 on the first five
  digits, r = sum mod 11, check = (11 - r) mod 10. Examples: 011002 札幌市, 072036 郡山市,
  131202 練馬区. The first two digits are the prefecture.
"""

from __future__ import annotations

from reco2.ledger.municipalities import MUNICIPALITY_CODES

_WEIGHTS = (6, 5, 4, 3, 2)


def is_prefecture_code(code: str) -> bool:
    return len(code) == 2 and code.isascii() and code.isdigit() and 1 <= int(code) <= 47


def municipality_check_digit(jis5: str) -> int:
    """Check digit of a five-digit JIS X 0402 code."""
    assert len(jis5) == 5 and jis5.isdigit()
    remainder = sum(int(d) * w for d, w in zip(jis5, _WEIGHTS, strict=True)) % 11
    return (11 - remainder) % 10


def is_municipality_code(code: str) -> bool:
    """Six digits, a valid prefecture prefix and a correct check digit."""
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return False
    if not is_prefecture_code(code[:2]):
        return False
    return municipality_check_digit(code[:5]) == int(code[5])


def is_known_municipality(code: str) -> bool:
    """A municipality in the shipped 総務省 list (see data/municipalities.SOURCE.md)."""
    return code in MUNICIPALITY_CODES


def is_known_place(code: str) -> bool:
    """A prefecture code or a known municipality code."""
    return is_prefecture_code(code) or is_known_municipality(code)


def place_contains(outer: str, inner: str) -> bool:
    """Hierarchical place match: "07" contains "072036"; a code contains itself.

    Five-digit JIS codes and six-digit codes with check digit name the same place.
    """
    if len(outer) == 2:
        return inner[:2] == outer
    return inner[:5] == outer[:5]
