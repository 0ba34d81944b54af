"""Where the simulated fleet lives: real Japanese municipalities and their climate.

Facts here, each with its source:

- Coordinates: the municipal office (市役所・区役所) of each place, rounded to 0.01 degree, from
  code4fukui/localgovjp ``localgovjp-utf8.csv`` (commit 059e8e9115265c00910336f4d776f16521a8efb4,
  CC0; its README names 国土地理院 and J-LIS 全国自治体マップ検索 as the sources). Codes are the
  six-digit 全国地方公共団体コード of ``reco2.ledger.municipalities`` (the test checks each one and
  its name).
- Sunshine duration: monthly 平年値 (1991-2020 normals) of the Japan Meteorological Agency at four
  reference stations, rounded to the hour. The monthly values are approximate (they were not
  re-read from the JMA tables while writing this); their annual sums agree within 3 % with the
  1991-2020 annual totals aggregated from JMA daily data by small-circle-fx.com
  ("kishodai1991-2020_nisshojikan_year_ave": 東京 1,933 h, 札幌 1,718 h, 新潟 1,651 h,
  那覇 1,727 h), and Tokyo's monthly pattern (sunny winters, a dull 梅雨 June and autumn) agrees
  with the 1961-2012 Tokyo 旬 sunshine ratios published on okatabi.hill-in-biei.com.
- Air temperature: JMA 1981-2010 normals quoted by 港区 (adeac.jp minato-city: 東京 annual
  15.4 degC, January 5.2 degC, August 26.4 degC) and by JMA's Tokyo office (jma-net.go.jp
  tokyo_kiko: annual 札幌 8.9 degC, 那覇 23.1 degC): about -0.85 degC per degree of latitude.

Modelling assumptions (not facts): each place's climate region, its weight in the fleet (rough
city size), and the mean hub-height wind speed at the windy coastal places.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Region(StrEnum):
    """Climate region: which reference station's sunshine climatology a place follows."""

    hokkaido = "hokkaido"  # 札幌
    sea_of_japan = "sea_of_japan"  # 日本海側: dull, snowy winters (新潟)
    pacific = "pacific"  # 太平洋側 and inland: sunny winters, 梅雨 in June (東京)
    nansei = "nansei"  # 南西諸島: cloudy winters, sunny summers (那覇)


@dataclass(frozen=True, slots=True)
class Station:
    """A reference station: its latitude [deg] and monthly mean sunshine duration [h]."""

    name: str
    latitude_deg: float
    sunshine_h: tuple[float, ...]  # January ... December


#: JMA 平年値 1991-2020, monthly sunshine duration [h] (approximate; see the module docstring).
STATIONS: Final[dict[Region, Station]] = {
    Region.hokkaido: Station(
        "札幌", 43.06, (90, 104, 145, 175, 200, 180, 168, 168, 169, 151, 98, 82)
    ),
    Region.sea_of_japan: Station(
        "新潟", 37.90, (57, 80, 143, 185, 205, 165, 165, 210, 160, 143, 94, 62)
    ),
    Region.pacific: Station(
        "東京", 35.69, (193, 170, 175, 179, 180, 124, 153, 174, 127, 135, 145, 172)
    ),
    Region.nansei: Station(
        "那覇", 26.21, (93, 93, 120, 130, 155, 165, 220, 210, 190, 160, 122, 102)
    ),
}

#: Tokyo's 1981-2010 normals [degC] and the latitude gradient (module docstring).
TOKYO_LATITUDE_DEG: Final = 35.69
TOKYO_MEAN_TEMPERATURE_C: Final = 15.4
TOKYO_TEMPERATURE_AMPLITUDE_C: Final = (26.4 - 5.2) / 2
TEMPERATURE_LAPSE_C_PER_DEG_LAT: Final = -0.85


@dataclass(frozen=True, slots=True)
class Place:
    """A municipality the fleet uses, at its office's coordinates (0.01 degree)."""

    code: str  # 全国地方公共団体コード, six digits
    romaji: str
    latitude_deg: float
    longitude_deg: float
    region: Region
    weight: int  # relative share of the fleet's homes (assumption: rough city size)
    mean_wind_m_per_s: float = 0.0  # > 0: a windy site that hosts small wind turbines

    @property
    def prefecture_code(self) -> str:
        return self.code[:2]


_H, _S, _P, _N = Region.hokkaido, Region.sea_of_japan, Region.pacific, Region.nansei

#: Rooftop-solar places: 46 municipalities from Hokkaido to the Yaeyama islands.
SOLAR_PLACES: Final[tuple[Place, ...]] = (
    Place("011002", "Sapporo", 43.06, 141.35, _H, 3),
    Place("012041", "Asahikawa", 43.77, 142.37, _H, 1),
    Place("012025", "Hakodate", 41.77, 140.73, _H, 1),
    Place("012076", "Obihiro", 42.92, 143.20, _H, 1),
    Place("022012", "Aomori", 40.82, 140.75, _S, 1),
    Place("032018", "Morioka", 39.70, 141.15, _P, 1),
    Place("041009", "Sendai", 38.27, 140.87, _P, 2),
    Place("052019", "Akita", 39.72, 140.10, _S, 1),
    Place("072036", "Koriyama", 37.40, 140.36, _P, 1),
    Place("082015", "Mito", 36.37, 140.47, _P, 1),
    Place("092011", "Utsunomiya", 36.56, 139.88, _P, 1),
    Place("102016", "Maebashi", 36.39, 139.06, _P, 1),
    Place("111007", "Saitama", 35.86, 139.65, _P, 2),
    Place("121002", "Chiba", 35.61, 140.11, _P, 2),
    Place("131121", "Setagaya", 35.65, 139.65, _P, 2),
    Place("131202", "Nerima", 35.74, 139.65, _P, 2),
    Place("132012", "Hachioji", 35.67, 139.32, _P, 1),
    Place("141003", "Yokohama", 35.45, 139.63, _P, 3),
    Place("151009", "Niigata", 37.92, 139.04, _S, 2),
    Place("162019", "Toyama", 36.70, 137.21, _S, 1),
    Place("172014", "Kanazawa", 36.56, 136.66, _S, 1),
    Place("192015", "Kofu", 35.66, 138.57, _P, 1),
    Place("202011", "Nagano", 36.65, 138.19, _P, 1),
    Place("202029", "Matsumoto", 36.24, 137.97, _P, 1),
    Place("221007", "Shizuoka", 34.98, 138.38, _P, 2),
    Place("221309", "Hamamatsu", 34.71, 137.73, _P, 2),
    Place("231002", "Nagoya", 35.18, 136.91, _P, 3),
    Place("232114", "Toyota", 35.08, 137.16, _P, 1),
    Place("242012", "Tsu", 34.72, 136.51, _P, 1),
    Place("261009", "Kyoto", 35.01, 135.77, _P, 2),
    Place("271004", "Osaka", 34.69, 135.50, _P, 3),
    Place("271403", "Sakai", 34.57, 135.48, _P, 2),
    Place("281000", "Kobe", 34.69, 135.20, _P, 2),
    Place("312011", "Tottori", 35.49, 134.22, _S, 1),
    Place("331007", "Okayama", 34.66, 133.92, _P, 2),
    Place("341002", "Hiroshima", 34.39, 132.46, _P, 2),
    Place("372013", "Takamatsu", 34.34, 134.05, _P, 1),
    Place("382019", "Matsuyama", 33.84, 132.77, _P, 1),
    Place("392014", "Kochi", 33.56, 133.53, _P, 1),
    Place("401005", "Kitakyushu", 33.88, 130.88, _P, 2),
    Place("401307", "Fukuoka", 33.59, 130.40, _P, 3),
    Place("431001", "Kumamoto", 32.80, 130.71, _P, 2),
    Place("452017", "Miyazaki", 31.91, 131.42, _P, 1),
    Place("462012", "Kagoshima", 31.60, 130.56, _P, 1),
    Place("472018", "Naha", 26.21, 127.68, _N, 1),
    Place("472077", "Ishigaki", 24.34, 124.19, _N, 1),
)

#: Windy coastal places for small wind turbines (mean hub-height wind speed: an assumption).
WIND_PLACES: Final[tuple[Place, ...]] = (
    Place("012149", "Wakkanai", 45.42, 141.67, _H, 1, 5.5),
    Place("012351", "Ishikari", 43.17, 141.32, _H, 1, 5.0),
    Place("052027", "Noshiro", 40.21, 140.03, _S, 1, 5.0),
    Place("122025", "Choshi", 35.73, 140.83, _P, 1, 5.5),
    Place("472140", "Miyakojima", 24.79, 125.29, _N, 1, 5.0),
)

ALL_PLACES: Final[tuple[Place, ...]] = SOLAR_PLACES + WIND_PLACES
PLACES_BY_CODE: Final[dict[str, Place]] = {place.code: place for place in ALL_PLACES}
