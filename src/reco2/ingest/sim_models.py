"""The physical models behind the simulated fleet: sky, sun, wind and household demand.

Every function is vectorised with numpy and deterministic given its inputs (random draws come
from the ``numpy.random.Generator`` the caller passes). Floats stay here: the simulator turns
the results into integer Wh.

Solar (per device and 30-minute interval):

    energy [Wh] = capacity [W] x H [Wh m-2] / 1000 [W m-2] x PR x device factor
                  x temperature factor x cloud factor

- H: clear-sky irradiation on the panel's own plane (tilt, azimuth), pvlib 0.16.1: sun position
  (``solarposition.get_solarposition``, NREL SPA), Ineichen-Perez clear sky
  (``clearsky.ineichen``) with a seasonal Linke turbidity, Hay-Davies transposition
  (``irradiance.get_total_irradiance``) with grass albedo 0.2; sampled every 5 minutes and
  integrated with the trapezoid rule, as ``reco2.mrv.physics`` does for its bound.
- PR: inverter 0.96 x wiring, soiling and mismatch 0.93 (typical residential loss assumptions).
- device factor: shading and module spread, and 0.5 %/year ageing since commissioning.
- temperature factor: 1 - 0.004/K x (cell - 25 degC) (crystalline silicon, -0.4 %/K), the cell
  at ambient + 0.03 K m2/W x plane irradiance (Ross model), ambient from the place's seasonal
  normal (``sim_places``) plus a diurnal swing.
- cloud factor (<= 1, never above clear sky): see :func:`daily_clearness` and
  :func:`interval_cloud_factors`.

Every term but H is <= 1.1, and H is computed with a turbidity, altitude and albedo that give
less light than ``reco2.mrv.physics`` assumes on a better plane, so a clean reading stays well
inside the physical bound; the simulator still clamps to the bound.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from numpy.typing import NDArray
from pvlib import atmosphere, clearsky, irradiance, solarposition

from reco2.ingest.sim_places import (
    STATIONS,
    TEMPERATURE_LAPSE_C_PER_DEG_LAT,
    TOKYO_LATITUDE_DEG,
    TOKYO_MEAN_TEMPERATURE_C,
    TOKYO_TEMPERATURE_AMPLITUDE_C,
    Region,
)
from reco2.ledger.calendar import INTERVAL_S, JST_OFFSET_S

FloatArray = NDArray[np.float64]

DAY_S: Final = 86_400
INTERVALS_PER_DAY: Final = DAY_S // INTERVAL_S  # 48
SAMPLE_STEP_S: Final = 300  # 5-minute samples, 6 per interval, as reco2.mrv.physics
SAMPLES_PER_INTERVAL: Final = INTERVAL_S // SAMPLE_STEP_S
S_PER_H: Final = 3_600

SITE_ALTITUDE_M: Final = 50.0  # homes near sea level (the bound assumes 1,500 m)
GROUND_ALBEDO: Final = 0.2  # grass and roofs (the bound assumes fresh snow, 0.8)
INVERTER_EFFICIENCY: Final = 0.96
OTHER_LOSSES: Final = 0.93  # wiring, soiling, mismatch
PERFORMANCE_RATIO: Final = INVERTER_EFFICIENCY * OTHER_LOSSES
TEMPERATURE_COEFFICIENT_PER_K: Final = -0.004
ROSS_K_PER_W_PER_M2: Final = 0.03
DIURNAL_TEMPERATURE_SWING_C: Final = 4.0

#: Ångström-Prescott coefficients and the clear-sky fraction of extraterrestrial radiation
#: (FAO Irrigation and Drainage Paper 56, Allen et al. 1998, eq. 35 a_s = 0.25, b_s = 0.50, and
#: eq. 36-37 R_so = 0.75 R_a near sea level): mean irradiation relative to clear sky is
#: (a_s + b_s n/N) / 0.75, n/N being the sunshine fraction.
ANGSTROM_A: Final = 0.25
ANGSTROM_B: Final = 0.50
CLEAR_SKY_FRACTION: Final = 0.75

#: Day-to-day persistence of the weather (AR(1) coefficient of the daily latent), the share of
#: the daily weather a place shares with its region, and the spread of the daily clearness
#: (logit-normal scale): modelling assumptions giving weather that lasts a few days, neighbours
#: that see the same sky, and clear, mixed and overcast days in realistic proportions.
DAILY_PERSISTENCE: Final = 0.6
REGIONAL_SHARE: Final = 0.7
DAILY_LOGIT_SCALE: Final = 1.6
#: Within a day: AR(1) of the place's cloud field per 30 minutes, its logit spread, and each
#: device's own small deviation (its roof sees a slightly different patch of sky).
INTERVAL_PERSISTENCE: Final = 0.85
INTERVAL_LOGIT_SCALE: Final = 0.9
DEVICE_LOGIT_SCALE: Final = 0.2
MIN_CLOUD_FACTOR: Final = 0.04  # the heaviest overcast still lets some diffuse light through


# ---- sky -----------------------------------------------------------------------------------


def day_of_year(instant_s: int) -> int:
    """Day of the year (1..366) of an instant [UTC s], in JST."""
    return int(pd.Timestamp(instant_s + JST_OFFSET_S, unit="s").day_of_year)


def linke_turbidity(doy: FloatArray) -> FloatArray:
    """Seasonal Linke turbidity for Japan: about 2.5 in winter to 3.9 in the humid summer.

    Within the 1.84-4.5 range the SoDa climatology gives for Japanese sites (see
    ``reco2.mrv.physics``); never below the bound's 1.5.
    """
    return np.asarray(3.2 + 0.7 * np.cos(2 * np.pi * (np.asarray(doy) - 196) / 365.0), np.float64)


def _day_length_h(latitude_deg: float, doy: int) -> float:
    """Astronomical day length N [h] (FAO-56 eq. 24, 25 and 34)."""
    declination = 0.409 * math.sin(2 * math.pi * doy / 365 - 1.39)
    cos_ws = -math.tan(math.radians(latitude_deg)) * math.tan(declination)
    return 24 / math.pi * math.acos(max(-1.0, min(1.0, cos_ws)))


_MID_MONTH_DOY: Final = (15, 46, 74, 105, 135, 166, 196, 227, 258, 288, 319, 349)
_MONTH_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _monthly_clearness(region: Region) -> tuple[float, ...]:
    """Mean irradiation relative to clear sky per month, from sunshine duration."""
    station = STATIONS[region]
    values = []
    for month in range(12):
        possible_h = _day_length_h(station.latitude_deg, _MID_MONTH_DOY[month]) * _MONTH_DAYS[month]
        fraction = min(1.0, station.sunshine_h[month] / possible_h)
        values.append((ANGSTROM_A + ANGSTROM_B * fraction) / CLEAR_SKY_FRACTION)
    return tuple(values)


_CLEARNESS: Final = {region: _monthly_clearness(region) for region in Region}


def mean_clearness(region: Region, doy: int) -> float:
    """Climatological mean cloud factor of a region on a day of the year (monthly values
    interpolated linearly between mid-months, wrapping around the year)."""
    xs = np.array((_MID_MONTH_DOY[-1] - 365, *_MID_MONTH_DOY, _MID_MONTH_DOY[0] + 365), float)
    table = _CLEARNESS[region]
    ys = np.array((table[-1], *table, table[0]), float)
    return float(np.interp(doy, xs, ys))


def _logit(p: FloatArray | float) -> FloatArray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def ar1_series(previous: FloatArray, innovations: FloatArray, rho: float) -> FloatArray:
    """A standard-normal AR(1) process along the last axis, continuing from ``previous``.

    ``innovations`` are standard normal draws (shape (..., T)); returns (..., T) with
    x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t.
    """
    scale = math.sqrt(1 - rho * rho)
    out = np.empty_like(innovations)
    state = previous
    for t in range(innovations.shape[-1]):
        state = rho * state + scale * innovations[..., t]
        out[..., t] = state
    return out


def daily_clearness(mean: FloatArray, latent: FloatArray) -> FloatArray:
    """Daily cloud factor from the climatological mean and a standard-normal latent.

    Logit-normal: sigmoid(mu + s z), with mu set so that its mean is ``mean`` (probit
    approximation of the logistic-normal mean: E = sigmoid(mu / sqrt(1 + pi s^2 / 8))).
    """
    mu = _logit(mean) * math.sqrt(1 + math.pi * DAILY_LOGIT_SCALE**2 / 8)
    return _sigmoid(mu + DAILY_LOGIT_SCALE * latent)


def interval_cloud_factors(
    daily: FloatArray, place_field: FloatArray, device_noise: FloatArray
) -> FloatArray:
    """Cloud factor per interval: the day's clearness moved by the place's cloud field (AR(1)
    per 30 minutes, shared by every roof of the place) and each roof's own noise, in logit
    space (so clear and overcast days vary less than broken-cloud days). Shapes broadcast to
    (devices, intervals); the result is in [MIN_CLOUD_FACTOR, 1]."""
    base = _logit(np.clip(daily, 0.02, 0.98))
    logit = base + INTERVAL_LOGIT_SCALE * place_field + DEVICE_LOGIT_SCALE * device_noise
    return np.clip(_sigmoid(logit), MIN_CLOUD_FACTOR, 1.0)


# ---- sun -----------------------------------------------------------------------------------


def clear_sky_plane_irradiation(
    latitude_deg: float,
    longitude_deg: float,
    tilts_deg: FloatArray,
    azimuths_deg: FloatArray,
    start_s: int,
    days: int,
) -> FloatArray:
    """Clear-sky irradiation on each panel's plane per 30-minute interval [Wh m-2].

    Panels (tilt, azimuth; pvlib convention, 180 = south) share one place. Returns
    (panels, days x 48). Zero while the sun is below the horizon.
    """
    count = days * INTERVALS_PER_DAY * SAMPLES_PER_INTERVAL + 1
    instants = start_s + np.arange(count, dtype=np.int64) * SAMPLE_STEP_S
    times = pd.DatetimeIndex(pd.to_datetime(instants, unit="s", utc=True))
    sun = solarposition.get_solarposition(
        times, latitude_deg, longitude_deg, altitude=SITE_ALTITUDE_M
    )
    zenith = sun["apparent_zenith"].to_numpy(dtype=np.float64)
    azimuth = sun["azimuth"].to_numpy(dtype=np.float64)
    up = zenith < 90.0
    doy = times.day_of_year.to_numpy()  # UTC day of the year: slow seasonal curves
    dni_extra = np.asarray(irradiance.get_extra_radiation(doy), dtype=np.float64)
    turbidity = linke_turbidity(doy)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        airmass = atmosphere.get_absolute_airmass(
            atmosphere.get_relative_airmass(np.where(up, zenith, 89.9), model="kastenyoung1989"),
            atmosphere.alt2pres(SITE_ALTITUDE_M),
        )
        sky = clearsky.ineichen(
            np.where(up, zenith, 89.9),
            airmass,
            turbidity,
            altitude=SITE_ALTITUDE_M,
            dni_extra=dni_extra,
        )
        dni = np.where(up, np.asarray(sky["dni"], float), 0.0)
        ghi = np.where(up, np.asarray(sky["ghi"], float), 0.0)
        dhi = np.where(up, np.asarray(sky["dhi"], float), 0.0)
        plane = irradiance.get_total_irradiance(
            surface_tilt=np.asarray(tilts_deg, float)[:, None],
            surface_azimuth=np.asarray(azimuths_deg, float)[:, None],
            solar_zenith=zenith[None, :],
            solar_azimuth=azimuth[None, :],
            dni=dni[None, :],
            ghi=ghi[None, :],
            dhi=dhi[None, :],
            dni_extra=dni_extra[None, :],
            model="haydavies",
            albedo=GROUND_ALBEDO,
        )
    poa = np.nan_to_num(np.asarray(plane["poa_global"], dtype=np.float64), nan=0.0)
    poa = np.where(up[None, :], np.clip(poa, 0.0, None), 0.0)
    ends = (poa[:, :-1] + poa[:, 1:]) / 2.0
    per_interval = ends.reshape(poa.shape[0], -1, SAMPLES_PER_INTERVAL).sum(axis=2)
    return np.asarray(per_interval * SAMPLE_STEP_S / S_PER_H, dtype=np.float64)


def ambient_temperature_c(latitude_deg: float, doy: int, local_hours: FloatArray) -> FloatArray:
    """Air temperature [degC]: the place's seasonal normal (coldest late January, warmest early
    August; ``sim_places``) plus a diurnal swing peaking at 14:00."""
    offset = latitude_deg - TOKYO_LATITUDE_DEG
    mean = TOKYO_MEAN_TEMPERATURE_C + TEMPERATURE_LAPSE_C_PER_DEG_LAT * offset
    amplitude = max(4.0, TOKYO_TEMPERATURE_AMPLITUDE_C + 0.45 * offset)
    seasonal = mean - amplitude * math.cos(2 * math.pi * (doy - 25) / 365.0)
    diurnal = DIURNAL_TEMPERATURE_SWING_C * np.sin(2 * math.pi * (local_hours - 8.0) / 24.0)
    return np.asarray(seasonal + diurnal, dtype=np.float64)


def temperature_factor(ambient_c: FloatArray, plane_w_per_m2: FloatArray) -> FloatArray:
    """PV power relative to 25 degC cells, with the cell at ambient + k x irradiance (Ross)."""
    cell = ambient_c + ROSS_K_PER_W_PER_M2 * plane_w_per_m2
    return np.asarray(1.0 + TEMPERATURE_COEFFICIENT_PER_K * (cell - 25.0), dtype=np.float64)


# ---- wind ----------------------------------------------------------------------------------

#: Generic small turbine (IEC 61400-2 class): cut-in, rated and cut-out wind speed [m s-1];
#: power rises with the cube of the wind speed between cut-in and rated. Assumptions.
CUT_IN_M_PER_S: Final = 3.0
RATED_M_PER_S: Final = 12.0
CUT_OUT_M_PER_S: Final = 25.0
WIND_AVAILABILITY: Final = 0.97
#: Correlation time of the wind vector's components [s] (gusts average out over 5 minutes;
#: synoptic changes take hours) and the spread of the daily regime (a stormy day, a calm day).
WIND_CORRELATION_S: Final = 4 * 3_600
WIND_REGIME_SCALE: Final = 0.2
#: Japan's winter monsoon (冬の季節風) makes winters windier: +-15 % around mid-January.
WIND_SEASONAL_AMPLITUDE: Final = 0.15
WIND_DIURNAL_AMPLITUDE: Final = 0.1
GAMMA_1_5: Final = math.gamma(1.5)  # mean of a Weibull(k=2) with scale 1


def wind_step_rho() -> float:
    return math.exp(-SAMPLE_STEP_S / WIND_CORRELATION_S)


def wind_speed(
    components: FloatArray,
    mean_m_per_s: FloatArray,
    doy: int,
    regime: FloatArray,
    local_hours: FloatArray,
) -> FloatArray:
    """Hub wind speed [m s-1] from the two standard-normal components of the wind vector.

    sqrt((x^2 + y^2) / 2) of two independent standard normals is Weibull with shape 2 and scale
    1 (a Rayleigh distribution), the classic wind-speed distribution; the scale is set from the
    site's mean speed, the season, the day's regime and the hour. ``components`` is (2,
    devices, samples); ``mean_m_per_s`` and ``regime`` are per device.
    """
    magnitude = np.sqrt((components[0] ** 2 + components[1] ** 2) / 2.0)
    scale = np.asarray(mean_m_per_s, float)[:, None] / GAMMA_1_5
    seasonal = 1.0 + WIND_SEASONAL_AMPLITUDE * math.cos(2 * math.pi * (doy - 15) / 365.0)
    daily = np.exp(WIND_REGIME_SCALE * np.asarray(regime, float) - WIND_REGIME_SCALE**2 / 2)
    diurnal = 1.0 + WIND_DIURNAL_AMPLITUDE * np.sin(2 * math.pi * (local_hours - 9.0) / 24.0)
    return np.asarray(magnitude * scale * seasonal * daily[:, None] * diurnal, dtype=np.float64)


def turbine_power_fraction(speed_m_per_s: FloatArray) -> FloatArray:
    """Output as a fraction of rated power for each wind speed (generic power curve)."""
    cubic = (speed_m_per_s**3 - CUT_IN_M_PER_S**3) / (RATED_M_PER_S**3 - CUT_IN_M_PER_S**3)
    fraction = np.clip(cubic, 0.0, 1.0)
    return np.asarray(np.where(speed_m_per_s >= CUT_OUT_M_PER_S, 0.0, fraction), np.float64)


def interval_means(samples: FloatArray) -> FloatArray:
    """Trapezoid mean of 5-minute samples (shared ends) per 30-minute interval: (n, 48k+1) ->
    (n, 48k)."""
    ends = (samples[:, :-1] + samples[:, 1:]) / 2.0
    return np.asarray(
        ends.reshape(samples.shape[0], -1, SAMPLES_PER_INTERVAL).mean(axis=2), np.float64
    )


# ---- households ----------------------------------------------------------------------------

#: A home's daily electricity use [kWh]: the national average household bought 4,175 kWh in
#: FY2021 (環境省「家庭部門のCO2排出実態統計調査」, env.go.jp kateico2tokei; 3,719 kWh in Hokkaido
#: to 5,833 kWh in Hokuriku), excluding its own PV; a detached home with PV uses about that
#: plus what it self-consumes: 10-15 kWh a day here.
HOUSEHOLD_KWH_PER_DAY_RANGE: Final = (10.0, 15.0)
APPLIANCE_EVENT_PROBABILITY: Final = 0.04  # per interval: a washer-dryer, IH cooking, a heater
APPLIANCE_EVENT_WH: Final = (150.0, 700.0)
INTERVAL_DEMAND_NOISE: Final = 0.25  # lognormal sigma per interval
DAILY_DEMAND_NOISE: Final = 0.12  # lognormal sigma per day


def seasonal_demand_factor(doy: int) -> float:
    """Heating peak in January (about x1.2), air conditioning in August (about x1.04), mild
    spring and autumn (about x0.88): the usual double peak of Japanese household demand."""
    angle = 2 * math.pi * (doy - 20) / 365.0
    return 1.0 + 0.12 * math.cos(2 * angle) + 0.08 * math.cos(angle)


def demand_profile(
    morning_h: FloatArray, evening_h: FloatArray, midday_weight: FloatArray, weekend: bool
) -> FloatArray:
    """Share of the day's demand in each of the 48 intervals (JST), per household: a standby
    base (fridge, routers), a morning peak, some daytime use and a larger evening peak.
    Weekends start later and keep people home at midday. Rows sum to 1."""
    hours = (np.arange(INTERVALS_PER_DAY) + 0.5) * INTERVAL_S / S_PER_H
    morning = np.asarray(morning_h, float)[:, None] + (1.0 if weekend else 0.0)
    evening = np.asarray(evening_h, float)[:, None]
    midday = np.asarray(midday_weight, float)[:, None] * (1.6 if weekend else 1.0)

    def bump(centre: FloatArray, width: float) -> FloatArray:
        return np.asarray(np.exp(-0.5 * ((hours[None, :] - centre) / width) ** 2), np.float64)

    shape = 0.35 + 0.9 * bump(morning, 1.0) + midday * bump(np.full_like(morning, 12.5), 2.0)
    shape = shape + 1.5 * bump(evening, 1.6)
    return np.asarray(shape / shape.sum(axis=1, keepdims=True), dtype=np.float64)


def household_demand_wh(
    rng: np.random.Generator,
    base_kwh: FloatArray,
    profile: FloatArray,
    doy: int,
) -> FloatArray:
    """One day of demand per household and interval [Wh] (float, >= 0)."""
    count = base_kwh.shape[0]
    daily_wh = (
        base_kwh
        * 1_000.0
        * seasonal_demand_factor(doy)
        * rng.lognormal(-(DAILY_DEMAND_NOISE**2) / 2, DAILY_DEMAND_NOISE, count)
    )
    noise = rng.lognormal(
        -(INTERVAL_DEMAND_NOISE**2) / 2, INTERVAL_DEMAND_NOISE, (count, INTERVALS_PER_DAY)
    )
    events = rng.random((count, INTERVALS_PER_DAY)) < APPLIANCE_EVENT_PROBABILITY
    event_wh = rng.uniform(*APPLIANCE_EVENT_WH, (count, INTERVALS_PER_DAY))
    demand = daily_wh[:, None] * profile * noise + np.where(events, event_wh, 0.0)
    return np.asarray(demand, dtype=np.float64)


def local_hours(start_s: int, count: int, step_s: int) -> FloatArray:
    """JST clock hour (0..24) of ``count`` instants from ``start_s`` every ``step_s``."""
    seconds = (start_s + JST_OFFSET_S + np.arange(count) * step_s) % DAY_S
    return np.asarray(seconds / S_PER_H, dtype=np.float64)
