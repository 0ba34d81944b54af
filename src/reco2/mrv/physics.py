"""Physical upper bounds on what a generator can produce in an interval.

The solar bound answers one question: could a PV system of this DC capacity, at this place,
have generated this much energy in this interval, whichever way its panels face and however
clear the sky? A reading above the bound is physically impossible and issues no value
(DESIGN.md section 4). The bound is deliberately generous: refusing an honest reading costs its
owner real value, while the capacity check, the anomaly model and the conservative estimation
catch what a generous bound lets through.

Model chain (pvlib 0.16.1; every step is a pvlib function):

1. Sun position: NREL SPA (Reda and Andreas 2004, 2007) from ``pvlib.spa``. The geocentric part
   (apparent sidereal time, right ascension, declination: ``pvlib.spa.solar_position(...,
   sst=True)``) does not depend on the place, so it is computed once per day and cached; each
   place then needs only ``local_hour_angle``, ``topocentric_elevation_angle_without_atmosphere``,
   ``atmospheric_refraction_correction`` and ``topocentric_azimuth_angle``. The topocentric
   parallax correction (at most 0.0025 degrees) is left out; against
   ``pvlib.solarposition.get_solarposition`` the apparent elevation differs by < 0.003 degrees.
2. Clear-sky irradiance: Ineichen-Perez (``pvlib.clearsky.ineichen``) with relative air mass
   Kasten-Young 1989 (``pvlib.atmosphere.get_relative_airmass``), absolute air mass
   (``get_absolute_airmass``) at the pressure of ``SITE_ALTITUDE_M`` (``alt2pres``) and
   extraterrestrial irradiance by Spencer 1971 (``pvlib.irradiance.get_extra_radiation``).
   The Linke turbidity is a fixed low value (``LINKE_TURBIDITY``), not the SoDa monthly
   climatology: ``pvlib.clearsky.lookup_linke_turbidity`` needs h5py and a data file, and the
   climatology is a monthly *mean*, which a clear day can beat. A lower turbidity means a
   clearer sky and more irradiance, so a fixed low value keeps the bound on the safe side.
3. Best-oriented plane: the irradiance on a plane facing the sun (tilt = solar zenith, azimuth =
   solar azimuth; the most any fixed or tracking plane receives), transposed with the Hay-Davies
   model (``pvlib.irradiance.get_total_irradiance(model="haydavies")``): beam = DNI, sky diffuse
   with its circumsolar part, and ground-reflected irradiance with a snow albedo
   (``ALBEDO_MAX``). On that plane Hay-Davies and Perez agree within 1 %.
4. Energy: the plane irradiance is sampled every ``SAMPLE_STEP_S`` (both ends of the interval
   included) and integrated with the trapezoid rule into irradiation [Wh m-2]. Generation
   [Wh] = capacity [W] x irradiation [Wh m-2] / 1000 [W m-2] (the STC rating), times
   ``TEMPERATURE_ALLOWANCE`` and ``SAFETY_MARGIN``, rounded up to a whole Wh.

Night: while the sun's apparent elevation is below ``TWILIGHT_ELEVATION_DEG`` (civil twilight
ends at -6 degrees) at every sample of an interval, the bound is exactly 0 Wh. Between that and
sunrise the plane irradiance is floored at ``TWILIGHT_IRRADIANCE_W_PER_M2``, a tiny documented
tolerance for the light of the twilight sky and for a meter clock a few minutes off.

Floats stay inside this module: the bound decides whether a reading is plausible and never
enters the ledger, which sees integer Wh only.
"""

from __future__ import annotations

import datetime as _dt
import math
from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray
from pvlib import atmosphere, clearsky, irradiance, spa

from reco2.ledger.calendar import INTERVAL_S, JST_OFFSET_S

FloatArray = NDArray[np.float64]

DAY_S: Final = 86_400
INTERVALS_PER_DAY: Final = DAY_S // INTERVAL_S  # 48
S_PER_H: Final = 3_600
STC_IRRADIANCE_W_PER_M2: Final = 1_000.0  # standard test conditions: capacity_w is rated here

#: Sub-sampling step of the sun within an interval [s]: six steps per 30-minute interval.
SAMPLE_STEP_S: Final = 300

#: Linke turbidity [unitless]. The SoDa monthly climatology shipped with pvlib
#: (LinkeTurbidities.h5, read once while writing this module) gives 1.84-4.5 across Sapporo,
#: Nagano, Tokyo and Naha, lowest in winter in Hokkaido and the mountains; 1.5 is below every
#: month at every one of them, so the modelled sky is clearer than any the climatology expects.
LINKE_TURBIDITY: Final = 1.5

#: Site altitude assumed for every device [m]. Clear-sky irradiance rises with altitude (less air
#: above); 1,500 m is above nearly every home in Japan, so the bound errs high. Devices carry no
#: altitude on the ledger.
SITE_ALTITUDE_M: Final = 1_500.0

#: Ground albedo of the ground-reflected allowance [unitless]: fresh snow (about 0.8), the
#: brightest ground a Japanese site sees.
ALBEDO_MAX: Final = 0.8

#: Temperature and efficiency allowance [unitless, >= 1]. PV power rises as cells get colder than
#: the 25 degC of the rating: with a power temperature coefficient of -0.45 %/K (the steep end of
#: crystalline silicon datasheets) a cell at 0 degC under sun gives 25 K x 0.45 % = 11.25 % more.
TEMPERATURE_ALLOWANCE: Final = 1.12

#: Safety margin [unitless, >= 1], for what a clear-sky model does not describe: over-irradiance
#: at cloud edges (much smaller over a 30-minute mean than in one-minute peaks), the clear-sky
#: model's own error, a positive nameplate tolerance of modules (up to +5 %) and meter accuracy
#: (class 1 or 2 meters, +-1-2 %). About 1.15 x 1.05 x 1.02, rounded up.
SAFETY_MARGIN: Final = 1.25

#: Below this apparent solar elevation at every sample of an interval it is night: bound 0 [deg].
TWILIGHT_ELEVATION_DEG: Final = -6.0

#: Floor of the plane irradiance from the end of civil twilight to sunrise [W m-2]: the twilight
#: sky gives a few W m-2 at most; for 4.5 kW this allows at most about 32 Wh per half hour.
TWILIGHT_IRRADIANCE_W_PER_M2: Final = 10.0

#: NREL SPA parameters: Delta T (TT - UT1) [s] (pvlib's default; an error of a minute moves the
#: sun by 0.25 degrees), standard pressure [mbar] and temperature [degC] for refraction, and the
#: refraction assumed at sunrise [deg] (the SPA default).
DELTA_T_S: Final = 67.0
REFRACTION_PRESSURE_MBAR: Final = 1013.25
REFRACTION_TEMPERATURE_C: Final = 12.0
SUNRISE_REFRACTION_DEG: Final = 0.5667

#: Days and places kept in the caches. A day of sun geometry is 4 arrays of 289 floats (10 KB); a
#: place-day is 48 doubles in an ``array`` (about 0.7 KB with its key and cache entry), so the
#: place cache holds at most about 45 MB. Readings usually arrive interval by interval for the
#: whole fleet: a fleet spread over more 0.01-degree cells than this should be sharded by place.
SUN_CACHE_DAYS: Final = 64
PLACE_CACHE_ENTRIES: Final = 65_536

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
#: Energy [Wh] per W of capacity per Wh m-2 of plane irradiation, allowances included.
_WH_PER_W_PER_WH_PER_M2: Final = TEMPERATURE_ALLOWANCE * SAFETY_MARGIN / STC_IRRADIANCE_W_PER_M2


@dataclass(frozen=True, slots=True)
class _Sun:
    """Place-independent sun geometry at a series of instants (NREL SPA, geocentric)."""

    sidereal_time_deg: FloatArray  # apparent sidereal time at Greenwich
    right_ascension_deg: FloatArray
    declination_deg: FloatArray
    dni_extra_w_per_m2: FloatArray  # extraterrestrial normal irradiance


def _sun_geometry(instants_s: FloatArray) -> _Sun:
    """Geocentric sun at ``instants_s`` [UTC s] (``pvlib.spa.solar_position(..., sst=True)``)."""
    geocentric = np.asarray(
        spa.solar_position(
            instants_s,
            0.0,
            0.0,
            0.0,
            REFRACTION_PRESSURE_MBAR,
            REFRACTION_TEMPERATURE_C,
            DELTA_T_S,
            SUNRISE_REFRACTION_DEG,
            1,
            sst=True,
        ),
        dtype=np.float64,
    )
    dni_extra = np.asarray(irradiance.get_extra_radiation(_day_of_year(instants_s)), np.float64)
    return _Sun(geocentric[0], geocentric[1], geocentric[2], dni_extra)


def _day_of_year(instants_s: FloatArray) -> FloatArray:
    """Fractional day of the year (1 = January 1st 00:00 UTC) of each instant [UTC s]."""
    first = int(instants_s[0])
    year = (_EPOCH + _dt.timedelta(seconds=first)).year
    year_start_s = (_dt.datetime(year, 1, 1, tzinfo=_dt.UTC) - _EPOCH).total_seconds()
    # A run crossing New Year keeps counting past 365: Spencer's formula is periodic in the year.
    return np.asarray(1.0 + (instants_s - year_start_s) / DAY_S, dtype=np.float64)


@lru_cache(maxsize=SUN_CACHE_DAYS)
def _sun_for_day(day_start_s: int) -> _Sun:
    """Sun geometry every ``SAMPLE_STEP_S`` over a day from ``day_start_s``, both ends included."""
    instants = day_start_s + np.arange(0, DAY_S + 1, SAMPLE_STEP_S, dtype=np.float64)
    return _sun_geometry(instants)


def _best_plane_irradiance_w_per_m2(
    latitude_deg: float, longitude_deg: float, sun: _Sun
) -> FloatArray:
    """Plane irradiance bound at each instant of ``sun`` for one place [W m-2].

    Clear-sky Ineichen-Perez irradiance, Hay-Davies transposition onto the sun-facing plane, the
    twilight floor, and 0 at night (see the module docstring).
    """
    hour_angle = spa.local_hour_angle(sun.sidereal_time_deg, longitude_deg, sun.right_ascension_deg)
    elevation_true = spa.topocentric_elevation_angle_without_atmosphere(
        latitude_deg, sun.declination_deg, hour_angle
    )
    refraction = spa.atmospheric_refraction_correction(
        REFRACTION_PRESSURE_MBAR, REFRACTION_TEMPERATURE_C, elevation_true, SUNRISE_REFRACTION_DEG
    )
    elevation = np.asarray(elevation_true + refraction, dtype=np.float64)
    poa = np.zeros_like(elevation)
    poa[elevation > TWILIGHT_ELEVATION_DEG] = TWILIGHT_IRRADIANCE_W_PER_M2
    up = elevation > 0.0
    if not up.any():
        return poa
    zenith = 90.0 - elevation[up]
    azimuth = np.asarray(
        spa.topocentric_azimuth_angle(
            spa.topocentric_astronomers_azimuth(
                hour_angle[up], sun.declination_deg[up], latitude_deg
            )
        ),
        dtype=np.float64,
    )
    dni_extra = sun.dni_extra_w_per_m2[up]
    airmass = atmosphere.get_absolute_airmass(
        atmosphere.get_relative_airmass(zenith, model="kastenyoung1989"),
        atmosphere.alt2pres(SITE_ALTITUDE_M),
    )
    sky = clearsky.ineichen(
        zenith, airmass, LINKE_TURBIDITY, altitude=SITE_ALTITUDE_M, dni_extra=dni_extra
    )
    plane = irradiance.get_total_irradiance(
        surface_tilt=zenith,
        surface_azimuth=azimuth,
        solar_zenith=zenith,
        solar_azimuth=azimuth,
        dni=sky["dni"],
        ghi=sky["ghi"],
        dhi=sky["dhi"],
        dni_extra=dni_extra,
        model="haydavies",
        albedo=ALBEDO_MAX,
    )
    modelled = np.nan_to_num(np.asarray(plane["poa_global"], dtype=np.float64), nan=0.0)
    poa[up] = np.maximum(modelled, TWILIGHT_IRRADIANCE_W_PER_M2)
    return poa


def _integrate_wh_per_m2(poa_w_per_m2: FloatArray, steps: int, step_s: float) -> FloatArray:
    """Trapezoid integral of samples (``steps`` per interval, shared ends) per interval [Wh m-2]."""
    mean_of_ends = (poa_w_per_m2[:-1] + poa_w_per_m2[1:]) / 2.0
    per_interval = mean_of_ends.reshape(-1, steps).sum(axis=1)
    return np.asarray(per_interval * step_s / S_PER_H, dtype=np.float64)


def _check_place(latitude_deg: float, longitude_deg: float) -> None:
    if not -90.0 <= latitude_deg <= 90.0:
        raise ValueError(f"latitude {latitude_deg} is outside -90..90 degrees")
    if not -180.0 <= longitude_deg <= 180.0:
        raise ValueError(f"longitude {longitude_deg} is outside -180..180 degrees")


@lru_cache(maxsize=PLACE_CACHE_ENTRIES)
def _day_irradiation(latitude_e2: int, longitude_e2: int, day_start_s: int) -> array[float]:
    """Cached per-interval irradiation [Wh m-2]; callers only read it (it is shared)."""
    sun = _sun_for_day(day_start_s)
    poa = _best_plane_irradiance_w_per_m2(latitude_e2 / 100.0, longitude_e2 / 100.0, sun)
    irradiation = _integrate_wh_per_m2(poa, INTERVAL_S // SAMPLE_STEP_S, float(SAMPLE_STEP_S))
    return array("d", irradiation.tolist())  # compact, and indexing yields plain floats


def best_plane_irradiation_wh_per_m2(
    latitude_deg: float, longitude_deg: float, day_start_s: int
) -> tuple[float, ...]:
    """Clear-sky irradiation on the best-oriented plane in each 30-minute interval of a day.

    ``day_start_s`` [UTC s] must be on the 30-minute grid; interval ``i`` starts at
    ``day_start_s + i * 1800``. The place is rounded to 0.01 degree (the ledger's precision, at
    most 0.6 km: the sun's timing moves by under 2 s) and the result is cached per place and day.
    Returns 48 values [Wh m-2], including the twilight tolerance.
    """
    return tuple(_cached_day(latitude_deg, longitude_deg, day_start_s))


def _cached_day(latitude_deg: float, longitude_deg: float, day_start_s: int) -> array[float]:
    _check_place(latitude_deg, longitude_deg)
    if day_start_s % INTERVAL_S != 0:
        raise ValueError(f"day start {day_start_s} is not on the {INTERVAL_S} s grid")
    return _day_irradiation(round(latitude_deg * 100), round(longitude_deg * 100), day_start_s)


def generation_wh_max_from_irradiation(capacity_w: int, irradiation_wh_per_m2: float) -> int:
    """Energy bound [Wh] of a PV system of ``capacity_w`` [W, DC at STC] given plane irradiation.

    capacity [W] x irradiation [Wh m-2] / 1000 [W m-2] x temperature allowance x safety margin,
    rounded up (the bound never rounds against the reading).
    """
    if capacity_w < 0:
        raise ValueError(f"capacity {capacity_w} W is negative")
    return math.ceil(capacity_w * irradiation_wh_per_m2 * _WH_PER_W_PER_WH_PER_M2)


def clear_sky_day_generation_wh_max(
    latitude_deg: float, longitude_deg: float, capacity_w: int, day_start_s: int
) -> tuple[int, ...]:
    """Upper bounds [Wh] on solar generation in each of the 48 intervals of a day.

    Vectorised form of :func:`clear_sky_generation_wh_max` for a device-day: one cached array
    of irradiation, one multiplication per interval. ``day_start_s`` [UTC s] is on the 30-minute
    grid (a JST midnight, ``reco2.ledger.calendar.jst_midnight_s``, for an issuance day).
    """
    irradiation = _cached_day(latitude_deg, longitude_deg, day_start_s)
    return tuple(generation_wh_max_from_irradiation(capacity_w, h) for h in irradiation)


def clear_sky_generation_wh_max(
    latitude_deg: float,
    longitude_deg: float,
    capacity_w: int,
    interval_start_s: int,
    interval_s: int = INTERVAL_S,
) -> int:
    """Upper bound [Wh] on what a PV system can generate in one interval at one place.

    ``capacity_w`` [W] is the DC rating at standard test conditions; ``interval_start_s`` [UTC s]
    and ``interval_s`` [s] delimit the interval. The bound is the clear-sky irradiation on the
    best-oriented plane (Ineichen-Perez clear sky, Hay-Davies transposition, snow albedo; see the
    module docstring) times the capacity, ``TEMPERATURE_ALLOWANCE`` and ``SAFETY_MARGIN``. It is 0
    when the sun stays below -6 degrees (civil twilight) for the whole interval.

    Intervals on the 30-minute grid are served from the per-(place, day) cache (the day being the
    JST calendar day containing the interval); any other interval is computed directly.
    """
    if interval_s <= 0:
        raise ValueError(f"interval length {interval_s} s is not positive")
    if interval_s == INTERVAL_S and interval_start_s % INTERVAL_S == 0:
        day_start_s = interval_start_s - (interval_start_s + JST_OFFSET_S) % DAY_S
        irradiation = _cached_day(latitude_deg, longitude_deg, day_start_s)
        index = (interval_start_s - day_start_s) // INTERVAL_S
        return generation_wh_max_from_irradiation(capacity_w, irradiation[index])
    _check_place(latitude_deg, longitude_deg)
    steps = -(-interval_s // SAMPLE_STEP_S)  # ceiling: at most SAMPLE_STEP_S per step
    step_s = interval_s / steps
    instants = interval_start_s + np.arange(steps + 1, dtype=np.float64) * step_s
    poa = _best_plane_irradiance_w_per_m2(latitude_deg, longitude_deg, _sun_geometry(instants))
    irradiation_wh_per_m2 = float(_integrate_wh_per_m2(poa, steps, step_s)[0])
    return generation_wh_max_from_irradiation(capacity_w, irradiation_wh_per_m2)


def wind_generation_wh_max(capacity_w: int, interval_s: int = INTERVAL_S) -> int:
    """Upper bound [Wh] on wind generation: rated power [W] for the whole interval [s].

    capacity x interval / 3600, rounded down: a reading is within it exactly when
    ``energy_wh * 3600 <= capacity_w * interval_s`` (the ledger's capacity rule).
    """
    if capacity_w < 0:
        raise ValueError(f"capacity {capacity_w} W is negative")
    if interval_s <= 0:
        raise ValueError(f"interval length {interval_s} s is not positive")
    return capacity_w * interval_s // S_PER_H


@lru_cache(maxsize=65_536)
def day_bounds_wh(
    latitude_e2: int, longitude_e2: int, capacity_w: int, day_start_s: int
) -> tuple[int, ...]:
    """:func:`clear_sky_day_generation_wh_max` for a device's place in 0.01 degrees, cached per
    place, capacity and day: validation looks one bound up per reading."""
    return clear_sky_day_generation_wh_max(
        latitude_e2 / 100.0, longitude_e2 / 100.0, capacity_w, day_start_s
    )


def cache_clear() -> None:
    """Empty the sun and place caches (for benchmarks that measure a cold start)."""
    _sun_for_day.cache_clear()
    _day_irradiation.cache_clear()
    day_bounds_wh.cache_clear()
