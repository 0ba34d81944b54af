"""Interval features for the anomaly model, computed from a ``series.Window`` (pure numpy).

Every feature compares a reading with something it should agree with: the physical bound, the
device's neighbours at the same moment (normalised by capacity), the device's own history, its
own meter counters, or another series it should *not* equal exactly. One row per interval
(device, day, interval), in C order of the window's arrays; missing intervals get a row too (all
zeros, and the model never flags them: there is nothing to issue).

Names and meanings (ratios are dimensionless, ``log`` is natural):

``capacity_factor``       generation / (capacity x 0.5 h)
``bound_ratio``           generation / physical bound (solar clear sky, wind rated power)
``night_generation``      1 when generation > 0 where the bound is 0
``daylight_share``        the interval's bound / the day's largest bound (time of day)
``neighbour_log_ratio``   log of the capacity factor over the neighbours' median, minus the
                          device's usual day ratio (see ``day_deviation``)
``day_deviation``         log of the day's capacity factor over the neighbours' median day
                          (shaped to the roof's time of day: ``shaped_weather``), minus the
                          device's baseline (median over earlier days; over the
                          other days when fewer than 2 earlier ones)
``day_deviation_before``  the same for the day before (a drift persists, a cloud does not)
``day_deviation_lagged``  the same against the days at least ``LAG_DAYS`` before
``day_deviation_reference`` the same against the window's first ``REFERENCE_DAYS`` days
``day_deviation_reference_3d`` its mean over the day and the 2 before (a drift persists)
``day_trend``             slope of the day log ratio over the last 5 days [per day]
``day_persistent_rise``   the smallest ``day_deviation_reference`` of the day and the day before
                          (a drift stays up; a bright or dull day alone does not); this and the
                          3-day mean skip a day ``FALL_SKIP`` under the reference (``skip_falls``)
``day_cusum``             the one-sided cumulative sum of ``day_deviation_reference`` (capped
                          at ``CUSUM_CAP``) less ``CUSUM_SLACK`` up to the day (reset at 0): a
                          slow rise adds up
``day_onset_rise``        the rise by the day of the broken line (flat, then a steady rise from
                          an onset day) that best fits the day log ratio over all the days so
                          far (``onset_rise``): a drift is a steady slope, weather is not
``neighbour_day_factor``  the neighbours' mean capacity factor over the day (how much sun)
``copy_share``            share of the day's generating intervals whose numbers (generation,
                          export) equal another device's exactly (the most equal one)
``copy_evidence``         which of two devices reporting the same numbers they belong to:
                          positive when they fit the other device's history better than this
                          one's, i.e. this device is the copier (0 without an equal device).
                          Per interval, the squared departure of the shared numbers from this
                          device's usual curve (the median over its other days) less that from
                          the other's, over the two devices' typical squared departure there,
                          averaged over the day (a linear discriminant between the two usual
                          curves), for the log ratio of generation to the neighbours (level and
                          shape: the roof's size, orientation and shading; weighted by how
                          bright the day is, as an overcast day's diffuse light flattens every
                          roof's shape) plus the same for the log of demand (the household's
                          routine); see ``copy_features``
``copy_share_as_copier``  ``copy_share`` where ``copy_evidence`` > 0 (this device is the one
                          the shared numbers do not fit), else 0
``replay_share``          share of the day's generating intervals equal to the same interval of
                          one of the 7 days before
``flat_run``              length of the run of identical non-zero generation containing it
``counter_shortfall``     (generation - counter advance) / generation when the previous interval
                          is present, else 0: a meter whose register stops while it reports energy
"""

from __future__ import annotations

import warnings
from typing import Final

import numpy as np
from numpy.typing import NDArray

from reco2.ai.series import INTERVALS_PER_DAY, BoolArray, FloatArray, Window

FEATURES: Final = (
    "capacity_factor",
    "bound_ratio",
    "night_generation",
    "daylight_share",
    "neighbour_log_ratio",
    "day_deviation",
    "day_deviation_before",
    "day_deviation_lagged",
    "day_deviation_reference",
    "day_deviation_reference_3d",
    "day_trend",
    "day_persistent_rise",
    "day_cusum",
    "day_onset_rise",
    "neighbour_day_factor",
    "copy_share",
    "copy_evidence",
    "copy_share_as_copier",
    "replay_share",
    "flat_run",
    "counter_shortfall",
)

#: Features that can only raise the fault probability (the model is constrained to that, so
#: that the few faults of a training fleet teach a direction, not an accident of the sample).
INCREASING: Final = frozenset(
    {
        "bound_ratio",
        "night_generation",
        "day_deviation_lagged",
        "day_deviation_reference",
        "day_deviation_reference_3d",
        "day_persistent_rise",
        "day_cusum",
        "day_onset_rise",
        "copy_share",
        "copy_evidence",
        "copy_share_as_copier",
        "replay_share",
        "counter_shortfall",
    }
)

#: Floor added to capacity factors before taking logs (dawn, dusk and dark intervals).
EPSILON: Final = 0.05
#: Days between a day and the days ``day_deviation_lagged`` compares it with.
LAG_DAYS: Final = 3
#: Days at the start of a window that ``day_deviation_reference`` compares every day with.
REFERENCE_DAYS: Final = 4
#: Largest day deviation [log ratio] ``day_cusum`` adds (a drift adds well under it a day).
CUSUM_CAP: Final = 0.3
#: Share of a day's generating intervals equal to another day's or device's from which none of
#: the day's readings stands for its place's weather (``trusted``).
EQUAL_DAY_SHARE: Final = 0.5
#: Length of a run of equal generation from which its readings stand for no weather.
FLAT_RUN_UNTRUSTED: Final = 3
#: Known days ``day_onset_rise`` needs before it fits a line.
ONSET_MIN_DAYS: Final = 5
#: Day deviation [log ratio] a device may show every day without adding to ``day_cusum``.
CUSUM_SLACK: Final = 0.05
#: A day this far below the roof's usual share of its place's weather (log) tells nothing of a
#: drift, which only over-reads: a dull day replayed, or a fault of another kind. The features
#: of a rise skip it rather than let it hide the drift around it (clean roofs' days: 1st
#: percentile about -0.1 against the neighbours' shaped weather).
FALL_SKIP: Final = 0.4
#: Days back that ``replay_share`` compares with.
REPLAY_LOOKBACK_DAYS: Final = 7
#: Generating intervals a day needs before its equality shares mean anything.
MIN_GENERATING: Final = 4
#: Demand [Wh] added before taking its log (standby hours and quiet intervals).
DEMAND_FLOOR_WH: Final = 50.0
#: Share of the day's largest bound from which an interval is bright enough to compare shapes.
BRIGHT_SHARE: Final = 0.3
#: A day's brightness (the neighbours' energy over the physical bound) as a share of the
#: window's brightest day from which a roof's shape of day counts in full for ``copy_evidence``;
#: below it the shape counts in proportion (an overcast day's light is diffuse and flattens
#: every roof's shape: on 26 tuning fleets, 5 of 572 copied days attributed to the wrong device
#: instead of 7 with the shape counted in full).
SHAPE_FULL_BRIGHTNESS: Final = 0.7


def capacity_factor(window: Window) -> FloatArray:
    """generation / (capacity x 0.5 h), NaN where missing."""
    half_hour_wh = window.capacity_w[:, None, None] / 2.0
    return window.generation / half_hour_wh


def neighbour_median(window: Window, values: FloatArray) -> FloatArray:
    """Per device, the median of its neighbours' values (NaN where none has one)."""
    out = np.full(values.shape, np.nan)
    for n, group in enumerate(window.neighbours):
        if group:
            stack = values[list(group)]
            with np.errstate(all="ignore"):
                valid = np.isfinite(stack).any(axis=0)
                if valid.any():
                    out[n][valid] = np.nanmedian(stack[:, valid], axis=0)
    return out


def baseline(per_day: FloatArray, lag_days: int = 0) -> FloatArray:
    """Per device and day d, the median of the device's values on days before d - ``lag_days``
    (at least 2 of them), else on the days at least ``lag_days + 1`` away from d; NaN where
    there is none. A lag makes a slow drift stand out against days it had not reached yet."""
    devices, days = per_day.shape
    out = np.full(per_day.shape, np.nan)
    for n in range(devices):
        row = per_day[n]
        for d in range(days):
            earlier = row[: max(0, d - lag_days)]
            earlier = earlier[np.isfinite(earlier)]
            if len(earlier) >= 2:
                out[n, d] = float(np.median(earlier))
                continue
            far = [row[e] for e in range(days) if abs(e - d) > lag_days and np.isfinite(row[e])]
            if far:
                out[n, d] = float(np.median(far))
    return out


def reference(per_day: FloatArray, days: int) -> FloatArray:
    """Per device and day d, the median of the device's values over the window's first ``days``
    days other than d (the reference period a slow drift is measured against); NaN where none."""
    devices, count = per_day.shape
    out = np.full(per_day.shape, np.nan)
    for d in range(count):
        chosen = [e for e in range(min(days, count)) if e != d]
        values = per_day[:, chosen]
        for n in range(devices):
            known = values[n][np.isfinite(values[n])]
            if len(known):
                out[n, d] = float(np.median(known))
    return out


def rolling_mean(per_day: FloatArray, span: int = 3) -> FloatArray:
    """Per device and day d, the mean of the known values over days d - span + 1 .. d."""
    out = np.full(per_day.shape, np.nan)
    for d in range(per_day.shape[1]):
        window = per_day[:, max(0, d - span + 1) : d + 1]
        known = np.isfinite(window)
        count = known.sum(axis=1)
        total = np.where(known, window, 0.0).sum(axis=1)
        out[:, d] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def skip_falls(per_day: FloatArray, fall: float = FALL_SKIP) -> FloatArray:
    """The values, NaN where one is more than ``fall`` below 0 (see ``FALL_SKIP``)."""
    out: FloatArray = np.where(per_day < -fall, np.nan, per_day)
    return out


def persistent(per_day: FloatArray) -> FloatArray:
    """Per device and day d, the smaller of the values of d and d - 1 (the value of d alone
    where d - 1 is unknown or d is the first day)."""
    before = np.full(per_day.shape, np.nan)
    before[:, 1:] = per_day[:, :-1]
    out: FloatArray = np.where(np.isfinite(before), np.fmin(per_day, before), per_day)
    return out


def cusum(per_day: FloatArray, slack: float = CUSUM_SLACK, cap: float = CUSUM_CAP) -> FloatArray:
    """Per device and day d: S_d = max(0, S_(d-1) + min(x_d, cap) - slack), S_(-1) = 0, unknown
    x adding nothing (Page's one-sided cumulative sum, the classic test for a sustained upward
    shift; the cap keeps one day of another fault from standing in for a slow rise)."""
    out = np.zeros(per_day.shape)
    total = np.zeros(per_day.shape[0])
    for d in range(per_day.shape[1]):
        step = np.nan_to_num(np.minimum(per_day[:, d], cap) - slack, nan=0.0)
        total = np.maximum(0.0, total + step)
        out[:, d] = total
    return out


def trend(per_day: FloatArray, span: int = 5) -> FloatArray:
    """Per device and day d, the least-squares slope of the values over days d - span + 1 .. d
    [per day] (at least 3 known values), else 0."""
    devices, days = per_day.shape
    out = np.zeros(per_day.shape)
    for n in range(devices):
        for d in range(days):
            first = max(0, d - span + 1)
            y = per_day[n, first : d + 1]
            x = np.arange(first, d + 1, dtype=np.float64)
            known = np.isfinite(y)
            if known.sum() >= 3:
                out[n, d] = float(np.polyfit(x[known], y[known], 1)[0])
    return out


def onset_rise(per_day: FloatArray, min_days: int = ONSET_MIN_DAYS) -> FloatArray:
    """Per device and day d, the rise by day d of the broken line that best fits the values of
    days 0..d: flat up to an onset day k, then rising linearly, y = a + b max(0, t - k), least
    squares over the onsets k with at least 2 known values before k and 2 from k; the rise is
    b (d - k), 0 where the best fit falls or fewer than ``min_days`` values are known. A slow
    drift is such a line over all the days it has run; a bright day or two is not."""
    devices, days = per_day.shape
    out = np.zeros(per_day.shape)
    t = np.arange(days, dtype=np.float64)
    for n in range(devices):
        row = per_day[n]
        for d in range(days):
            known = np.isfinite(row[: d + 1])
            if known.sum() < min_days:
                continue
            x, y = t[: d + 1][known], row[: d + 1][known]
            best, rise = np.inf, 0.0
            for k in range(1, d):
                if (x < k).sum() < 2 or (x >= k).sum() < 2:
                    continue
                design = np.stack([np.ones_like(x), np.maximum(0.0, x - k)], axis=1)
                coef, *_ = np.linalg.lstsq(design, y, rcond=None)
                sse = float(((design @ coef - y) ** 2).sum())
                if sse < best:
                    best, rise = sse, float(coef[1]) * (d - k)
            out[n, d] = max(rise, 0.0)
    return out


def day_log_ratio(cf: FloatArray, neighbours: FloatArray, plausible: BoolArray) -> FloatArray:
    """log(sum of the device's capacity factors / sum of the neighbours' median), per device-day,
    over the ``plausible`` intervals where both are known (within the physical bound, so that a
    reading the physics already rejects does not move the day); NaN where neither generated."""
    both = np.isfinite(cf) & np.isfinite(neighbours) & plausible
    mine = np.where(both, cf, 0.0).sum(axis=2)
    theirs = np.where(both, neighbours, 0.0).sum(axis=2)
    with np.errstate(all="ignore"):
        ratio = np.log((mine + EPSILON) / (theirs + EPSILON))
    return np.where(theirs + mine > 0.5, ratio, np.nan)


def shaped_weather(cf: FloatArray, weather: FloatArray, fit: BoolArray) -> FloatArray:
    """The place's weather as it falls on this roof at each time of day: ``weather`` times the
    roof's usual shape against it (per interval of the day, the median over its other days of
    the log ratio to the weather less that day's ``day_log_ratio``). A roof facing east or west
    reads above its neighbours in the morning or the afternoon: without its shape, a day whose
    clouds came in the afternoon moves its day ratio by as much as a drift does (the day
    ratio of clean roofs: 99th percentile 0.17 -> 0.09 on a 40 x 14 fleet). The shape has no
    level of its own, so a drift (a gain over the whole day) does not enter it."""
    day_ratio = day_log_ratio(cf, weather, fit)
    with np.errstate(all="ignore"):
        log_ratio = np.log((cf + EPSILON) / (weather + EPSILON)) - day_ratio[:, :, None]
    log_ratio = np.where(fit & (weather > 0), log_ratio, np.nan)
    shape = np.full(cf.shape, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for d in range(cf.shape[1]):
            shape[:, d] = np.nanmedian(np.delete(log_ratio, d, axis=1), axis=1)
    out: FloatArray = weather * np.exp(np.nan_to_num(shape))
    return out


def equal_share(
    a_gen: FloatArray, a_exp: FloatArray, b_gen: FloatArray, b_exp: FloatArray
) -> float:
    """Share of a's generating intervals whose generation and export equal b's exactly."""
    generating = np.isfinite(a_gen) & (a_gen > 0)
    count = int(generating.sum())
    if count < MIN_GENERATING:
        return 0.0
    same = generating & (a_gen == b_gen) & (a_exp == b_exp)
    return float(same.sum()) / count


def other_days_median(values: FloatArray) -> FloatArray:
    """Per (device, day, interval), the median of the device's values at that interval of the
    day over its *other* days (never the day itself); NaN where none is known."""
    out = np.full(values.shape, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for d in range(values.shape[1]):
            out[:, d] = np.nanmedian(np.delete(values, d, axis=1), axis=1)
    return out


def usual_departure(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per (device, day, interval), the departure of the value from the device's usual curve
    (``other_days_median``); and per (device, interval), the typical squared departure there
    (the median over the days)."""
    departure = values - other_days_median(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        typical: FloatArray = np.nanmedian(departure * departure, axis=1)
    return departure, typical


def day_brightness(window: Window) -> FloatArray:
    """Per device-day, the neighbours' median of the day's energy over its physical bound, as a
    share of the window's brightest day (the device's own where it has no neighbours)."""
    with np.errstate(all="ignore"):
        own = np.nansum(window.generation, axis=2) / np.nansum(window.bound, axis=2)
    theirs = neighbour_median(window, own)
    theirs = np.where(np.isfinite(theirs), theirs, own)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        brightest = np.nanmax(theirs, axis=1, keepdims=True)
        out: FloatArray = np.where(brightest > 0, theirs / brightest, 1.0)
    return np.nan_to_num(out, nan=1.0)


def pair_evidence(departure: FloatArray, typical: FloatArray, n: int, m: int, d: int) -> float:
    """The ``copy_evidence`` term of one kind of values for device ``n`` against ``m`` on day
    ``d``: positive when day ``d``'s numbers sit nearer ``m``'s usual curve than ``n``'s."""
    weight = 1.0 / (typical[n] + typical[m] + 1e-9)
    terms = weight * (departure[n, d] ** 2 - departure[m, d] ** 2)
    known = np.isfinite(terms)
    return float(terms[known].mean()) if known.any() else 0.0


def copy_partners(window: Window) -> tuple[FloatArray, NDArray[np.int64]]:
    """Per device-day, the largest ``equal_share`` with another device of the same source, and
    that device's index (-1 when none is equal anywhere)."""
    devices, days = window.generation.shape[:2]
    share = np.zeros((devices, days))
    partner = np.full((devices, days), -1, dtype=np.int64)
    generating = np.isfinite(window.generation) & (window.generation > 0)
    for n in range(devices):
        source = window.devices[n].source
        for m in range(devices):
            if m == n or window.devices[m].source is not source:
                continue
            same = (
                generating[n]
                & (window.generation[n] == window.generation[m])
                & (window.export[n] == window.export[m])
            )
            count = generating[n].sum(axis=1)
            with np.errstate(all="ignore"):
                shares = np.where(count >= MIN_GENERATING, same.sum(axis=1) / count, 0.0)
            better = shares > share[n]
            share[n] = np.where(better, shares, share[n])
            partner[n] = np.where(better, m, partner[n])
    return share, partner


def copy_features(window: Window, cf: FloatArray, neighbours: FloatArray) -> dict[str, FloatArray]:
    """Per device-day, ``copy_share`` and ``copy_evidence`` (module docstring). Of two devices
    reporting the same numbers, the copier is the one whose history they do not fit: a
    copier's numbers carry the other's roof (capacity, orientation, shading) and household
    (demand curve). Comparing the two usual curves directly (rather than each device's misfit
    over its own typical day) keeps a device with a steady history from looking like the
    copier merely because any day departs from it."""
    share, partner = copy_partners(window)
    bright = window.bound > BRIGHT_SHARE * window.bound.max(axis=2, keepdims=True)
    with np.errstate(all="ignore"):
        ratio = np.where(bright, np.log((cf + EPSILON) / (neighbours + EPSILON)), np.nan)
        demand = np.log(
            np.maximum(window.generation - window.export + window.imports, 0.0) + DEMAND_FLOOR_WH
        )
    shape_weight = np.minimum(1.0, day_brightness(window) / SHAPE_FULL_BRIGHTNESS)
    roof = usual_departure(ratio)
    household = usual_departure(demand)
    evidence = np.zeros(share.shape)
    for n, d in zip(*np.nonzero(partner >= 0), strict=True):
        m = int(partner[n, d])
        evidence[n, d] = shape_weight[n, d] * pair_evidence(*roof, n, m, d) + pair_evidence(
            *household, n, m, d
        )
    as_copier = np.where(evidence > 0, share, 0.0)
    return {"copy_share": share, "copy_evidence": evidence, "copy_share_as_copier": as_copier}


def replay_shares(window: Window) -> FloatArray:
    """Per device-day, ``replay_share`` (module docstring)."""
    devices, days = window.generation.shape[:2]
    out = np.zeros((devices, days))
    for n in range(devices):
        for d in range(days):
            for back in range(1, min(REPLAY_LOOKBACK_DAYS, d) + 1):
                share = equal_share(
                    window.generation[n, d],
                    window.export[n, d],
                    window.generation[n, d - back],
                    window.export[n, d - back],
                )
                out[n, d] = max(out[n, d], share)
    return out


def flat_runs(generation: FloatArray) -> FloatArray:
    """Per interval, the length of the run of equal non-zero generation that contains it, along
    each device's time line (days joined)."""
    devices = generation.shape[0]
    line = generation.reshape(devices, -1)
    out = np.zeros(line.shape)
    for n in range(devices):
        values = line[n]
        start = 0
        for i in range(1, len(values) + 1):
            if i < len(values) and values[i] == values[start] and values[i] > 0:
                continue
            if values[start] > 0:
                out[n, start:i] = i - start
            start = i
    return out.reshape(generation.shape)


def counter_shortfall(window: Window) -> FloatArray:
    """Per interval, ``counter_shortfall`` (module docstring)."""
    devices = window.generation.shape[0]
    counters = window.generation_counter.reshape(devices, -1)
    generation = window.generation.reshape(devices, -1)
    advance = np.full(counters.shape, np.nan)
    advance[:, 1:] = counters[:, 1:] - counters[:, :-1]
    with np.errstate(all="ignore"):
        short = np.maximum(generation - advance, 0.0) / np.maximum(generation, 1.0)
    out: FloatArray = np.nan_to_num(short, nan=0.0).reshape(window.generation.shape)
    return out


def interval_features(window: Window) -> FloatArray:
    """The feature matrix, one row per (device, day, interval) and one column per ``FEATURES``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # medians of all-missing slices: NaN
        return _interval_features(window)


def trusted(window: Window, replays: FloatArray, copies: FloatArray) -> BoolArray:
    """Readings fit to stand for the weather of their place: within the physical bound, not in
    a flat run, the register advancing, and not on a day that repeats an earlier one or another
    device's numbers (a replayed sunny day among the neighbours of a dull one would make every
    honest roof there look low)."""
    flat = flat_runs(window.generation) >= FLAT_RUN_UNTRUSTED
    out: BoolArray = (
        (window.bound > 0)
        & ~(window.generation > window.bound)
        & ~flat
        & (counter_shortfall(window) < 0.5)
        & (replays < EQUAL_DAY_SHARE)[:, :, None]
        & (copies < EQUAL_DAY_SHARE)[:, :, None]
    )
    return out


def day_rise(window: Window) -> FloatArray:
    """Per device-day, ``day_deviation_reference``: the day log ratio to the trusted
    neighbours over its median on the window's first days (how far the roof reads above its
    usual share of its place's weather; for a drifting meter, about the log of its gain)."""
    cf = capacity_factor(window)
    fit = trusted(window, replay_shares(window), copy_partners(window)[0])
    weather = neighbour_median(window, np.where(fit, cf, np.nan))
    day_ratio = day_log_ratio(cf, shaped_weather(cf, weather, fit), fit)
    out: FloatArray = day_ratio - reference(day_ratio, REFERENCE_DAYS)
    return out


def _interval_features(window: Window) -> FloatArray:
    cf = capacity_factor(window)
    neighbours = neighbour_median(window, cf)
    replays = replay_shares(window)
    copied = copy_features(window, cf, neighbours)
    fit = trusted(window, replays, copied["copy_share"])
    weather = neighbour_median(window, np.where(fit, cf, np.nan))
    day_ratio = day_log_ratio(cf, shaped_weather(cf, weather, fit), fit)
    usual = baseline(day_ratio)
    deviation = day_ratio - usual
    lagged = day_ratio - baseline(day_ratio, lag_days=LAG_DAYS)
    referenced = day_ratio - reference(day_ratio, REFERENCE_DAYS)
    rising = skip_falls(referenced)
    with np.errstate(all="ignore"):
        neighbour_day = np.nanmean(neighbours, axis=2)
    before = np.full(deviation.shape, np.nan)
    before[:, 1:] = deviation[:, :-1]
    with np.errstate(all="ignore"):
        interval_ratio = (
            np.log((cf + EPSILON) / (weather + EPSILON)) - np.nan_to_num(usual)[:, :, None]
        )
        day_max = window.bound.max(axis=2, keepdims=True)
        daylight = np.where(day_max > 0, window.bound / np.maximum(day_max, 1e-9), 0.0)
        bound_ratio = window.generation / np.maximum(window.bound, 1.0)
    shape = window.generation.shape
    columns = {
        "capacity_factor": cf,
        "bound_ratio": bound_ratio,
        "night_generation": ((window.bound <= 0) & (window.generation > 0)).astype(float),
        "daylight_share": daylight,
        "neighbour_log_ratio": interval_ratio,
        "day_deviation": np.broadcast_to(deviation[:, :, None], shape),
        "day_deviation_before": np.broadcast_to(before[:, :, None], shape),
        "day_deviation_lagged": np.broadcast_to(lagged[:, :, None], shape),
        "day_deviation_reference": np.broadcast_to(referenced[:, :, None], shape),
        "day_deviation_reference_3d": np.broadcast_to(rolling_mean(rising)[:, :, None], shape),
        "day_trend": np.broadcast_to(trend(day_ratio)[:, :, None], shape),
        "day_persistent_rise": np.broadcast_to(persistent(rising)[:, :, None], shape),
        "day_cusum": np.broadcast_to(cusum(referenced)[:, :, None], shape),
        "day_onset_rise": np.broadcast_to(onset_rise(day_ratio)[:, :, None], shape),
        "neighbour_day_factor": np.broadcast_to(neighbour_day[:, :, None], shape),
        **{name: np.broadcast_to(values[:, :, None], shape) for name, values in copied.items()},
        "replay_share": np.broadcast_to(replays[:, :, None], shape),
        "flat_run": flat_runs(window.generation),
        "counter_shortfall": counter_shortfall(window),
    }
    matrix: FloatArray = np.nan_to_num(
        np.stack([columns[name].reshape(-1) for name in FEATURES], axis=1),
        nan=0.0,
        posinf=0.0,
        neginf=0.0,
    )
    present: BoolArray = window.present.reshape(-1)
    matrix[~present] = 0.0
    assert matrix.shape == (shape[0] * shape[1] * INTERVALS_PER_DAY, len(FEATURES))
    return matrix
