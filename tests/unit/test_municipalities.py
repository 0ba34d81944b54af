"""The generated table of Japanese local-government codes (reco2.ledger.municipalities).

Check digit (FACTS.md, "Japanese place codes"): weights 6,5,4,3,2 on the first five digits,
r = sum mod 11, check = (11 - r) mod 10. The module is generated from
src/reco2/data/municipalities.csv by scripts/gen_municipalities.py and must stay in step with it.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from reco2.ledger import municipalities, places
from reco2.ledger.municipalities import MUNICIPALITY_CODES, MUNICIPALITY_NAMES, PREFECTURE_NAMES

ROOT = Path(__file__).resolve().parents[2]


def check_digit(jis5: str) -> int:
    remainder = sum(int(d) * w for d, w in zip(jis5, (6, 5, 4, 3, 2), strict=True)) % 11
    return (11 - remainder) % 10


def load_generator() -> ModuleType:
    path = ROOT / "scripts" / "gen_municipalities.py"
    spec = importlib.util.spec_from_file_location("gen_municipalities", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_every_code_is_six_digits_with_a_valid_check_digit() -> None:
    for code in MUNICIPALITY_CODES:
        assert len(code) == 6 and code.isascii() and code.isdigit(), code
        assert check_digit(code[:5]) == int(code[5]), code
        assert places.is_municipality_code(code), code


def test_every_code_starts_with_a_prefecture() -> None:
    for code in MUNICIPALITY_CODES:
        assert 1 <= int(code[:2]) <= 47, code
        assert code[:2] in PREFECTURE_NAMES, code
        assert code[2:5] != "000", f"{code} is a prefecture's own code"


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("011002", "札幌市"),
        ("072036", "郡山市"),
        ("131202", "練馬区"),
        ("131016", "千代田区"),
        ("011011", "札幌市中央区"),  # a designated city's ward, named with its city
        ("012050", "室蘭市"),
        ("473821", "与那国町"),
    ],
)
def test_known_municipalities(code: str, name: str) -> None:
    assert code in MUNICIPALITY_CODES
    assert MUNICIPALITY_NAMES[code] == name


def test_tokyo_has_23_special_wards() -> None:
    wards = [c for c in MUNICIPALITY_CODES if "13101" <= c[:5] <= "13123"]
    assert len(wards) == 23
    assert all(MUNICIPALITY_NAMES[c].endswith("区") for c in wards)


def test_hamamatsu_wards_as_of_2024() -> None:
    """浜松市 went from seven wards to three on 2024-01-01: the table is at least that recent."""
    hamamatsu = {c: n for c, n in MUNICIPALITY_NAMES.items() if "22131" <= c[:5] <= "22149"}
    assert hamamatsu == {
        "221384": "浜松市中央区",
        "221392": "浜松市浜名区",
        "221406": "浜松市天竜区",
    }


def test_count_is_plausible() -> None:
    # 1,741 市町村 and 特別区, the 6 村 of the Northern Territories, 171 designated-city wards.
    assert 1_700 <= len(MUNICIPALITY_CODES) <= 2_000
    assert len(MUNICIPALITY_CODES) == len(MUNICIPALITY_NAMES)
    assert frozenset(MUNICIPALITY_NAMES) == MUNICIPALITY_CODES


def test_all_47_prefectures_named() -> None:
    assert sorted(PREFECTURE_NAMES) == [f"{i:02d}" for i in range(1, 48)]
    assert PREFECTURE_NAMES["01"] == "北海道"
    assert PREFECTURE_NAMES["07"] == "福島県"
    assert PREFECTURE_NAMES["13"] == "東京都"
    assert PREFECTURE_NAMES["47"] == "沖縄県"
    assert all(name.endswith(("都", "道", "府", "県")) for name in PREFECTURE_NAMES.values())
    assert len(set(PREFECTURE_NAMES.values())) == 47
    assert all(any(c[:2] == p for c in MUNICIPALITY_CODES) for p in PREFECTURE_NAMES)


def test_names_are_nonempty_japanese() -> None:
    for code, name in MUNICIPALITY_NAMES.items():
        assert name and name[-1] in "市区町村", (code, name)


def test_csv_is_well_formed() -> None:
    path = ROOT / "src" / "reco2" / "data" / "municipalities.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["code", "prefecture_code", "prefecture_name", "name", "name_romaji"]
    codes = [r[0] for r in rows[1:]]
    assert codes == sorted(codes)
    assert len(set(codes)) == len(codes)
    prefecture_rows = [r for r in rows[1:] if r[0][2:5] == "000"]
    assert {r[1]: r[3] for r in prefecture_rows} == PREFECTURE_NAMES
    assert all(check_digit(r[0][:5]) == int(r[0][5]) for r in prefecture_rows)


def test_module_matches_csv() -> None:
    """The committed module is what scripts/gen_municipalities.py makes of the CSV."""
    gen = load_generator()
    expected = gen.render_module(gen.read_csv())
    module_file = municipalities.__file__
    assert module_file is not None
    assert Path(module_file).read_text(encoding="utf-8") == expected
