"""A simulated device fleet: homes with rooftop solar or small wind in real Japanese places,
their meters' signed 30-minute readings, injected faults with a ground-truth manifest, and the
ledger registration that makes the meters' readings verifiable.

Use::

    fleet = make_fleet(seed=7, devices=50, start_day=date(2025, 6, 1), days=7)
    sim = Simulation(fleet, faults={FaultKind.night: 0.01, FaultKind.gaps: 0.02})
    for signed in sim.readings():       # in sending order: day, interval, device
        send(signed.reading.device_id, signed.raw)
    sim.manifest                        # every injected fault: kind, device, interval

Everything is deterministic given the seed (and the fleet's size, days and faults): the same
arguments give the same fleet, the same signed bytes and the same manifest.

Models (``sim_models``): solar generation is the pvlib clear-sky irradiance on each panel's
plane times capacity, a performance ratio, a temperature factor and a stochastic cloud factor
(a daily clearness drawn around the place's sunshine climatology, persistent over days and
shared with the region, moved within the day by the place's cloud field and each roof's own
noise), never above ``reco2.mrv.physics``'s clear-sky bound; small wind comes from a
Weibull-distributed hub wind speed (the wind vector's two components as AR(1) processes) and a
power curve; each home's demand (morning and evening peaks, 10-15 kWh a day) decides export =
generation - demand when positive, and import. Meter counters accumulate what the meter saw.
All energies are integer Wh.

Faults (:class:`FaultKind`), each at a rate = the share of device-days it affects (at least one
when the rate is positive), at most one fault per device-day:

- ``inflated``: a block of intervals reports generation k x the physical bound (k 1.2-2.0): the
  clear-sky bound for solar, rated power x 30 minutes for wind. Export and import unchanged.
- ``night``: a solar device reports generation in intervals where the bound is 0 (the sun below
  -6 degrees), all of it self-consumed.
- ``copy``: a device reports its nearest same-source neighbour's numbers (generation, export,
  import) for a whole day; its own counters advance by them.
- ``replay``: a device resends an earlier day's signed readings byte for byte (after the later
  day), and reports that earlier day again, re-signed with timestamps shifted to the later day
  (counters included, so they run backwards).
- ``stuck``: from some interval on, the meter repeats the same values and its counters stop
  advancing while generation is reported.
- ``gaps``: a run of intervals is never sent (the counters keep counting meanwhile).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import msgspec
import nacl.bindings
import numpy as np
from numpy.typing import NDArray

from reco2 import factors
from reco2.ingest import sim_models as models
from reco2.ingest.sim_places import SOLAR_PLACES, WIND_PLACES, Place, Region
from reco2.ledger import tx
from reco2.ledger.calendar import INTERVAL_S, jst_midnight_s
from reco2.ledger.types import GridContract, Role, Source
from reco2.mrv import physics
from reco2.mrv.readings import (
    READING_DOMAIN,
    SIGNATURE_BYTES,
    Reading,
    SignedReading,
    encode_reading,
)
from reco2.node.client import Submitter, submit
from reco2.node.keys import KeyFile

IntArray = NDArray[np.int64]

DAY_S: Final = 86_400
INTERVALS_PER_DAY: Final = DAY_S // INTERVAL_S
WIND_SHARE: Final = 0.08  # share of devices that are small wind turbines (fleets of 4 or more)
SOLAR_CAPACITY_W: Final = (3_000, 6_000)  # rooftop PV, 100 W steps
WIND_CAPACITIES_W: Final = (1_000, 1_500, 3_000, 5_000, 10_000)
#: FIT purchase periods: 10 years for residential PV under 10 kW, 20 years for wind
#: (資源エネルギー庁, FIT制度); a solar home past its 10 years is 卒FIT ("none").
FIT_YEARS: Final = {Source.solar: 10, Source.wind: 20}
MAX_AGE_DAYS: Final = 14 * 365
#: Lifetime yield used to seed the counters [h per day at rated power] (assumptions:
#: about 1,150 kWh/kW a year for PV in Japan, a 12 % capacity factor for small wind).
COUNTER_HOURS_PER_DAY: Final = {Source.solar: 3.15, Source.wind: 2.9}
CHUNK_DAYS: Final = 8  # days simulated per pvlib call and per numpy batch

# Random streams (the second word of every seed sequence).
_FLEET, _WEATHER, _DAY, _FAULTS, _WIND_INIT = 1, 2, 3, 4, 5


class FaultKind(StrEnum):
    inflated = "inflated"
    night = "night"
    copy = "copy"
    replay = "replay"
    stuck = "stuck"
    gaps = "gaps"


# ---- the fleet -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated home's generator, its meter and its owner."""

    index: int
    device_id: str
    owner_id: str
    owner_name: str
    source: Source
    capacity_w: int
    place: Place
    tilt_deg: float  # solar: panel tilt and azimuth (pvlib convention, 180 = south)
    azimuth_deg: float
    device_factor: float  # solar: shading, module spread and ageing (<= 1)
    household_kwh_per_day: float
    morning_peak_h: float
    evening_peak_h: float
    midday_weight: float
    commissioned_on: _dt.date
    grid_contract: GridContract
    meter_seed: bytes
    owner_seed: bytes
    initial_generation_counter_wh: int
    initial_export_counter_wh: int

    @property
    def latitude_e2(self) -> int:
        return round(self.place.latitude_deg * 100)

    @property
    def longitude_e2(self) -> int:
        return round(self.place.longitude_deg * 100)

    @property
    def latitude_deg(self) -> float:
        """The registered latitude (0.01 degree), the one validation uses."""
        return self.latitude_e2 / 100

    @property
    def longitude_deg(self) -> float:
        return self.longitude_e2 / 100

    @property
    def meter_public_key(self) -> bytes:
        return tx.public_key_of(self.meter_seed)

    @property
    def owner_key(self) -> KeyFile:
        return KeyFile(self.owner_id, self.owner_seed)

    def register_action(self, aggregator_id: str) -> tx.RegisterDevice:
        return tx.RegisterDevice(
            device_id=self.device_id,
            owner=self.owner_id,
            aggregator=aggregator_id,
            source=self.source,
            capacity_w=self.capacity_w,
            prefecture_code=self.place.prefecture_code,
            municipality_code=self.place.code,
            latitude_e2=self.latitude_e2,
            longitude_e2=self.longitude_e2,
            commissioned_on=self.commissioned_on.isoformat(),
            grid_contract=self.grid_contract,
            utility="",
            other_schemes=[],
            meter_public_key=self.meter_public_key,
        )


@dataclass(frozen=True, slots=True)
class Fleet:
    seed: int
    start_day: _dt.date
    days: int
    devices: tuple[SimDevice, ...]

    @property
    def start_s(self) -> int:
        """Start of the first day [UTC s] (JST midnight)."""
        return jst_midnight_s(self.start_day)

    @property
    def end_s(self) -> int:
        return self.start_s + self.days * DAY_S

    def day_start_s(self, day: int) -> int:
        return self.start_s + day * DAY_S

    def device(self, device_id: str) -> SimDevice:
        for device in self.devices:
            if device.device_id == device_id:
                return device
        raise KeyError(device_id)


def _seed_bytes(label: bytes, seed: int, index: int) -> bytes:
    return hashlib.sha256(
        b"reco2/sim/" + label + b"/v1\n" + seed.to_bytes(16, "big") + index.to_bytes(8, "big")
    ).digest()


def id_prefix(seed: int) -> str:
    """Participant and device ids of a fleet start with this (fleets of two seeds never clash)."""
    return f"sim{seed}-"


def make_fleet(
    seed: int,
    devices: int,
    start_day: _dt.date,
    days: int,
    *,
    places: Sequence[str] | None = None,
    wind_share: float = WIND_SHARE,
) -> Fleet:
    """A deterministic fleet of ``devices`` homes for ``days`` days from ``start_day`` (JST).

    Mostly rooftop solar (3-6 kW) across ``SOLAR_PLACES``, weighted by city size; about
    ``wind_share`` small wind turbines (1-10 kW) at ``WIND_PLACES`` once the fleet has 4 or more
    devices. ``places`` (municipality codes) restricts the fleet to those places. Each meter's
    Ed25519 seed and each owner's key seed derive from ``seed`` and the device's index.
    """
    if seed < 0 or seed >= 2**64:
        raise ValueError("the seed is an integer in 0 .. 2**64 - 1")
    if devices < 1 or days < 1:
        raise ValueError("a fleet has at least one device and one day")
    solar_places: Sequence[Place] = SOLAR_PLACES
    wind_places: Sequence[Place] = WIND_PLACES
    if places is not None:
        wanted = set(places)
        solar_places = [p for p in SOLAR_PLACES if p.code in wanted]
        wind_places = [p for p in WIND_PLACES if p.code in wanted]
        unknown = wanted - {p.code for p in (*SOLAR_PLACES, *WIND_PLACES)}
        if unknown:
            raise ValueError(f"not a fleet place: {sorted(unknown)}")
    rng = np.random.default_rng([seed, _FLEET])
    wind_count = 0
    if wind_places and devices >= 4:
        wind_count = max(1, round(devices * wind_share))
    if not solar_places:
        wind_count = devices
    is_wind = np.zeros(devices, dtype=bool)
    is_wind[rng.permutation(devices)[:wind_count]] = True
    solar_weights = np.array([p.weight for p in solar_places], float)
    prefix = id_prefix(seed)
    fleet: list[SimDevice] = []
    for index in range(devices):
        wind = bool(is_wind[index])
        if wind:
            place = wind_places[int(rng.integers(len(wind_places)))]
            source = Source.wind
            capacity = int(rng.choice(WIND_CAPACITIES_W))
        else:
            place = solar_places[
                int(rng.choice(len(solar_places), p=solar_weights / solar_weights.sum()))
            ]
            source = Source.solar
            capacity = (
                int(rng.integers(SOLAR_CAPACITY_W[0] // 100, SOLAR_CAPACITY_W[1] // 100 + 1)) * 100
            )
        age_days = int(rng.integers(60, MAX_AGE_DAYS))
        commissioned = start_day - _dt.timedelta(days=age_days)
        fit = age_days < FIT_YEARS[source] * 365
        tilt = float(rng.uniform(15.0, 35.0))  # 3-7 寸勾配 pitched roofs
        azimuth = float(np.clip(rng.normal(180.0, 30.0), 90.0, 270.0))
        ageing = 1.0 - 0.005 * age_days / 365.0
        device_factor = float(rng.uniform(0.92, 1.0)) * ageing
        counter_h = COUNTER_HOURS_PER_DAY[source] * age_days * float(rng.uniform(0.85, 1.05))
        generated = int(capacity * counter_h)
        exported = int(generated * float(rng.uniform(0.5, 0.7)))
        kwh_per_day = float(rng.uniform(*models.HOUSEHOLD_KWH_PER_DAY_RANGE))
        number = f"{index + 1:05d}"
        fleet.append(
            SimDevice(
                index=index,
                device_id=f"{prefix}{'wt' if wind else 'pv'}{number}",
                owner_id=f"{prefix}h{number}",
                owner_name=f"Simulated household {number} ({place.romaji})",
                source=source,
                capacity_w=capacity,
                place=place,
                tilt_deg=tilt,
                azimuth_deg=azimuth,
                device_factor=device_factor,
                household_kwh_per_day=kwh_per_day,
                morning_peak_h=float(rng.uniform(6.5, 8.0)),
                evening_peak_h=float(rng.uniform(18.5, 20.5)),
                midday_weight=float(rng.uniform(0.3, 0.8)),
                commissioned_on=commissioned,
                grid_contract=GridContract.fit if fit else GridContract.none,
                meter_seed=_seed_bytes(b"meter", seed, index),
                owner_seed=_seed_bytes(b"owner", seed, index),
                initial_generation_counter_wh=generated,
                initial_export_counter_wh=exported,
            )
        )
    return Fleet(seed, start_day, days, tuple(fleet))


# ---- faults and the manifest ---------------------------------------------------------------


class ManifestEntry(msgspec.Struct, frozen=True):
    """One injected fault at one reading: what a detector should find.

    ``interval_start_s`` is the interval of the faulty reading as sent. ``source_device_id`` /
    ``source_interval_s`` say where copied or replayed numbers came from.
    """

    kind: FaultKind
    device_id: str
    interval_start_s: int
    source_device_id: str | None = None
    source_interval_s: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: FaultKind
    device: int
    day: int
    start: int = 0  # first interval
    length: int = 0
    factor: float = 0.0  # inflated: k
    source: int = -1  # copy: source device; replay: source day
    intervals: tuple[int, ...] = ()  # night


_envelope_encoder = msgspec.msgpack.Encoder()


class MeterSigner:
    """``reco2.mrv.readings.sign_reading`` with the meter's key derived once, not per reading
    (half the cost of signing a fleet); the bytes are identical (Ed25519 is deterministic, and
    a unit test compares the two)."""

    __slots__ = ("_secret_key",)

    def __init__(self, meter_seed: bytes) -> None:
        _, self._secret_key = nacl.bindings.crypto_sign_seed_keypair(meter_seed)

    def sign(self, reading: Reading) -> bytes:
        body = encode_reading(reading)
        signed = nacl.bindings.crypto_sign(READING_DOMAIN + body, self._secret_key)
        return _envelope_encoder.encode(SignedReading(body, signed[:SIGNATURE_BYTES]))


@dataclass(frozen=True, slots=True)
class Signed:
    """A reading as the meter sends it: the decoded record and its signed bytes."""

    reading: Reading
    raw: bytes


def _neighbours(devices: Sequence[SimDevice]) -> dict[int, int]:
    """Each device's nearest other device of the same source: the next one at the same place
    (wrapping around), else the first one at the nearest other place."""
    groups: dict[tuple[Source, str], list[SimDevice]] = {}
    for device in devices:
        groups.setdefault((device.source, device.place.code), []).append(device)

    def distance(a: Place, b: Place) -> float:
        dlat = b.latitude_deg - a.latitude_deg
        dlon = (b.longitude_deg - a.longitude_deg) * math.cos(math.radians(a.latitude_deg))
        return math.hypot(dlat, dlon)

    out: dict[int, int] = {}
    for (source, code), members in groups.items():
        if len(members) > 1:
            for position, device in enumerate(members):
                out[device.index] = members[(position + 1) % len(members)].index
            continue
        others = [g for (s, c), g in groups.items() if s is source and c != code]
        if others:
            here = members[0].place
            nearest = min(others, key=lambda g: (distance(here, g[0].place), g[0].index))
            out[members[0].index] = nearest[0].index
    return out


def parse_faults(text: str, default_rate: float) -> dict[FaultKind, float]:
    """``"inflated,night:0.05,gaps"`` -> rates per kind (``default_rate`` where none given)."""
    rates: dict[FaultKind, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, rate = part.partition(":")
        try:
            kind = FaultKind(name.strip())
        except ValueError:
            choices = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault {name!r} (one of: {choices})") from None
        value = float(rate) if rate else default_rate
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"fault rate {value} is outside 0..1")
        rates[kind] = value
    return rates


# ---- the simulation ------------------------------------------------------------------------


@dataclass(slots=True)
class _DayData:
    """Clean per-interval energies of one day for every device [Wh]."""

    generation: IntArray
    export: IntArray
    imports: IntArray
    bound: IntArray  # physical bound per device and interval (solar: clear sky; wind: rated)


@dataclass(slots=True)
class _MeterState:
    generation_wh: int
    export_wh: int


@dataclass(slots=True)
class Simulation:
    """Readings of a fleet with injected faults; iterate :meth:`readings` once or more."""

    fleet: Fleet
    faults: Mapping[FaultKind, float] = field(default_factory=dict)
    manifest: list[ManifestEntry] = field(default_factory=list)
    _plan: dict[tuple[int, int], _Fault] = field(default_factory=dict)
    _replay_sources: set[tuple[int, int]] = field(default_factory=set)
    _neighbours: dict[int, int] = field(default_factory=dict)
    _signers: list[MeterSigner] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._neighbours = _neighbours(self.fleet.devices)
        self._signers = [MeterSigner(d.meter_seed) for d in self.fleet.devices]
        self._plan = self._plan_faults()
        self._replay_sources = {
            (f.device, f.source) for f in self._plan.values() if f.kind is FaultKind.replay
        }

    # -- planning ---------------------------------------------------------------------------
    def planned(self) -> list[_Fault]:
        return sorted(self._plan.values(), key=lambda f: (f.day, f.device))

    def planned_counts(self) -> dict[FaultKind, int]:
        counts = dict.fromkeys(FaultKind, 0)
        for fault in self._plan.values():
            counts[fault.kind] += 1
        return counts

    def expected_readings(self) -> int:
        """How many signed readings :meth:`readings` yields (for progress bars)."""
        total = len(self.fleet.devices) * self.fleet.days * INTERVALS_PER_DAY
        for fault in self._plan.values():
            if fault.kind is FaultKind.gaps:
                total -= fault.length
            elif fault.kind is FaultKind.replay:
                total += INTERVALS_PER_DAY
        return total

    def _plan_faults(self) -> dict[tuple[int, int], _Fault]:
        fleet = self.fleet
        rng = np.random.default_rng([fleet.seed, _FAULTS])
        count = len(fleet.devices)
        plan: dict[tuple[int, int], _Fault] = {}
        reserved: set[tuple[int, int]] = set()

        def free(device: int, day: int) -> bool:
            return (device, day) not in plan and (device, day) not in reserved

        for kind in FaultKind:  # fixed order: replay and copy reserve a second device-day
            rate = float(self.faults.get(kind, 0.0))
            if rate <= 0.0:
                continue
            wanted = max(1, round(rate * count * fleet.days))
            order = rng.permutation(count * fleet.days)
            made = 0
            for cell in order:
                if made >= wanted:
                    break
                device, day = int(cell) % count, int(cell) // count
                if not free(device, day):
                    continue
                fault = self._make_fault(kind, device, day, rng, free)
                if fault is None:
                    continue
                plan[(device, day)] = fault
                if kind is FaultKind.replay:
                    reserved.add((device, fault.source))
                elif kind is FaultKind.copy:
                    reserved.add((fault.source, day))
                made += 1
        return plan

    def _make_fault(
        self,
        kind: FaultKind,
        device: int,
        day: int,
        rng: np.random.Generator,
        free: Callable[[int, int], bool],
    ) -> _Fault | None:
        sim_device = self.fleet.devices[device]
        solar = sim_device.source is Source.solar
        if kind is FaultKind.inflated:
            start = int(rng.integers(20, 27)) if solar else int(rng.integers(0, 41))
            length = int(rng.integers(2, 7))
            return _Fault(kind, device, day, start, length, factor=float(rng.uniform(1.2, 2.0)))
        if kind is FaultKind.night:
            if not solar:
                return None
            bounds = physics.clear_sky_day_generation_wh_max(
                sim_device.latitude_deg,
                sim_device.longitude_deg,
                sim_device.capacity_w,
                self.fleet.day_start_s(day),
            )
            dark = [i for i in range(INTERVALS_PER_DAY) if bounds[i] == 0]
            if len(dark) < 2:
                return None
            length = min(len(dark), int(rng.integers(2, 7)))
            first = int(rng.integers(0, len(dark) - length + 1))
            return _Fault(kind, device, day, intervals=tuple(dark[first : first + length]))
        if kind is FaultKind.copy:
            source = self._neighbours.get(device)
            if source is None or not free(source, day):
                return None
            return _Fault(kind, device, day, source=source)
        if kind is FaultKind.replay:
            if day < 1:
                return None
            source_day = day - int(rng.integers(1, min(7, day) + 1))
            if not free(device, source_day):
                return None
            return _Fault(kind, device, day, source=source_day)
        if kind is FaultKind.stuck:
            start = int(rng.integers(20, 27)) if solar else int(rng.integers(8, 41))
            return _Fault(kind, device, day, start, int(rng.integers(4, 13)))
        start = int(rng.integers(0, INTERVALS_PER_DAY))
        length = min(int(rng.integers(1, 13)), INTERVALS_PER_DAY - start)
        return _Fault(FaultKind.gaps, device, day, start, length)

    # -- clean energies ---------------------------------------------------------------------
    def _weather_latents(self) -> tuple[dict[Region, np.ndarray], dict[str, np.ndarray]]:
        """Daily standard-normal weather latents per region and per place (AR(1) over days)."""
        fleet = self.fleet
        rng = np.random.default_rng([fleet.seed, _WEATHER])
        regions = sorted(Region)
        region_draws = rng.standard_normal((len(regions), fleet.days))
        regional = models.ar1_series(
            rng.standard_normal(len(regions)), region_draws, models.DAILY_PERSISTENCE
        )
        place_codes = sorted({d.place.code for d in fleet.devices})
        local_draws = rng.standard_normal((len(place_codes), fleet.days))
        local = models.ar1_series(
            rng.standard_normal(len(place_codes)), local_draws, models.DAILY_PERSISTENCE
        )
        by_region = {region: regional[i] for i, region in enumerate(regions)}
        by_place = {code: local[i] for i, code in enumerate(place_codes)}
        return by_region, by_place

    def _clean_days(self) -> Iterator[_DayData]:
        fleet = self.fleet
        devices = fleet.devices
        count = len(devices)
        solar = [d for d in devices if d.source is Source.solar]
        wind = [d for d in devices if d.source is Source.wind]
        regional, local = self._weather_latents()
        share = math.sqrt(models.REGIONAL_SHARE)
        rest = math.sqrt(1 - models.REGIONAL_SHARE)
        place_codes = sorted({d.place.code for d in devices})
        place_row = {code: i for i, code in enumerate(place_codes)}
        profiles_weekday = models.demand_profile(
            np.array([d.morning_peak_h for d in devices]),
            np.array([d.evening_peak_h for d in devices]),
            np.array([d.midday_weight for d in devices]),
            weekend=False,
        )
        profiles_weekend = models.demand_profile(
            np.array([d.morning_peak_h for d in devices]),
            np.array([d.evening_peak_h for d in devices]),
            np.array([d.midday_weight for d in devices]),
            weekend=True,
        )
        base_kwh = np.array([d.household_kwh_per_day for d in devices])
        wind_rng = np.random.default_rng([fleet.seed, _WIND_INIT])
        wind_state = wind_rng.standard_normal((2, len(wind)))
        wind_mean = np.array([d.place.mean_wind_m_per_s for d in wind])
        samples_per_day = INTERVALS_PER_DAY * models.SAMPLES_PER_INTERVAL
        # JST clock hours of a day's 5-minute samples and of its intervals' midpoints (every
        # simulated day starts at a JST midnight, fleet.start_s).
        hours_samples = models.local_hours(fleet.start_s, samples_per_day + 1, models.SAMPLE_STEP_S)
        hours_intervals = models.local_hours(fleet.start_s, INTERVALS_PER_DAY, INTERVAL_S) + 0.25
        rho = models.wind_step_rho()

        for chunk_start in range(0, fleet.days, CHUNK_DAYS):
            chunk_days = min(CHUNK_DAYS, fleet.days - chunk_start)
            irradiation = np.zeros((count, chunk_days * INTERVALS_PER_DAY))
            by_place: dict[str, list[SimDevice]] = {}
            for device in solar:
                by_place.setdefault(device.place.code, []).append(device)
            for members in by_place.values():
                first = members[0]
                h = models.clear_sky_plane_irradiation(
                    first.latitude_deg,
                    first.longitude_deg,
                    np.array([m.tilt_deg for m in members]),
                    np.array([m.azimuth_deg for m in members]),
                    fleet.day_start_s(chunk_start),
                    chunk_days,
                )
                for row, member in enumerate(members):
                    irradiation[member.index] = h[row]
            for offset in range(chunk_days):
                day = chunk_start + offset
                day_start = fleet.day_start_s(day)
                doy = models.day_of_year(day_start)
                rng = np.random.default_rng([fleet.seed, _DAY, day])
                window = slice(offset * INTERVALS_PER_DAY, (offset + 1) * INTERVALS_PER_DAY)
                # Clouds: the place's daily clearness, its cloud field, each roof's noise.
                field_draws = rng.standard_normal((len(place_codes), INTERVALS_PER_DAY))
                place_field = models.ar1_series(
                    rng.standard_normal(len(place_codes)),
                    field_draws,
                    models.INTERVAL_PERSISTENCE,
                )
                device_noise = rng.standard_normal((count, INTERVALS_PER_DAY))
                generation = np.zeros((count, INTERVALS_PER_DAY))
                bound = np.zeros((count, INTERVALS_PER_DAY), dtype=np.int64)
                for device in solar:
                    row = place_row[device.place.code]
                    latent = (
                        share * regional[device.place.region][day]
                        + rest * local[device.place.code][day]
                    )
                    clearness = models.daily_clearness(
                        np.array(models.mean_clearness(device.place.region, doy)),
                        np.array(latent),
                    )
                    cloud = models.interval_cloud_factors(
                        clearness, place_field[row], device_noise[device.index]
                    )
                    h = irradiation[device.index, window]
                    plane_w = h / (INTERVAL_S / models.S_PER_H)
                    ambient = models.ambient_temperature_c(
                        device.latitude_deg, doy, hours_intervals
                    )
                    temp = models.temperature_factor(ambient, plane_w * cloud)
                    energy = (
                        device.capacity_w
                        / 1_000.0
                        * h
                        * models.PERFORMANCE_RATIO
                        * device.device_factor
                        * temp
                        * cloud
                    )
                    limit = np.array(
                        physics.clear_sky_day_generation_wh_max(
                            device.latitude_deg,
                            device.longitude_deg,
                            device.capacity_w,
                            day_start,
                        ),
                        dtype=np.int64,
                    )
                    bound[device.index] = limit
                    generation[device.index] = np.minimum(np.floor(energy), limit)
                # Wind: the wind vector's components every 5 minutes, carried across days.
                if wind:
                    draws = rng.standard_normal((2, len(wind), samples_per_day))
                    path = models.ar1_series(wind_state, draws, rho)
                    components = np.concatenate([wind_state[:, :, None], path], axis=2)
                    wind_state = path[:, :, -1]
                    regime = np.array([regional[d.place.region][day] for d in wind])
                    speed = models.wind_speed(components, wind_mean, doy, regime, hours_samples)
                    power = models.interval_means(models.turbine_power_fraction(speed))
                    for row, device in enumerate(wind):
                        rated_wh = physics.wind_generation_wh_max(device.capacity_w)
                        hours = INTERVAL_S / models.S_PER_H
                        energy = device.capacity_w * power[row] * hours * models.WIND_AVAILABILITY
                        generation[device.index] = np.minimum(np.floor(energy), rated_wh)
                        bound[device.index] = rated_wh
                # Demand decides export and import; some of both flow within one interval.
                weekend = _dt.date.fromordinal(fleet.start_day.toordinal() + day).weekday() >= 5
                profile = profiles_weekend if weekend else profiles_weekday
                demand = np.floor(models.household_demand_wh(rng, base_kwh, profile, doy))
                both = np.floor(np.minimum(generation, demand) * rng.uniform(0, 0.08, demand.shape))
                export = np.maximum(generation - demand, 0.0) + both
                imports = np.maximum(demand - generation, 0.0) + both
                yield _DayData(
                    generation.astype(np.int64),
                    export.astype(np.int64),
                    imports.astype(np.int64),
                    bound,
                )

    # -- readings ---------------------------------------------------------------------------
    def readings(self) -> Iterator[Signed]:
        """Every signed reading in sending order (day, interval, device), faults included.

        Fills :attr:`manifest` as it goes (it is complete once the iterator is exhausted).
        """
        fleet = self.fleet
        devices = fleet.devices
        self.manifest = []
        meters = [
            _MeterState(d.initial_generation_counter_wh, d.initial_export_counter_wh)
            for d in devices
        ]
        kept: dict[tuple[int, int], list[Signed]] = {}  # replay sources
        for day, clean in enumerate(self._clean_days()):
            day_start = fleet.day_start_s(day)
            per_device: list[list[Signed]] = []
            resend: list[Signed] = []
            for device in devices:
                fault = self._plan.get((device.index, day))
                signed = self._device_day(device, day, day_start, clean, fault, meters, kept)
                if (device.index, day) in self._replay_sources:
                    kept[(device.index, day)] = list(signed)
                if fault is not None and fault.kind is FaultKind.replay:
                    original = kept.pop((device.index, fault.source))
                    resend.extend(original)
                    for item in original:
                        self.manifest.append(
                            ManifestEntry(
                                FaultKind.replay,
                                device.device_id,
                                item.reading.interval_start_s,
                                device.device_id,
                                item.reading.interval_start_s,
                                "resent: the same signed bytes again",
                            )
                        )
                per_device.append(signed)
            # Sending order: interval by interval across the fleet, then the day's replays.
            by_interval: dict[int, list[Signed]] = {}
            for signed in per_device:
                for item in signed:
                    by_interval.setdefault(item.reading.interval_start_s, []).append(item)
            for start in sorted(by_interval):
                yield from by_interval[start]
            yield from resend

    def run(self) -> list[Signed]:
        """All readings at once (small fleets and tests)."""
        return list(self.readings())

    def manifest_document(self) -> dict[str, Any]:
        """The ground truth as JSON-ready data: the run's parameters, faulty readings per kind
        and every manifest entry (complete once :meth:`readings` has been exhausted)."""
        counts = {kind.value: 0 for kind in FaultKind}
        for entry in self.manifest:
            counts[entry.kind.value] += 1
        fleet = self.fleet
        return {
            "seed": fleet.seed,
            "devices": len(fleet.devices),
            "days": fleet.days,
            "start_day": fleet.start_day.isoformat(),
            "fault_rates": {FaultKind(k).value: float(v) for k, v in self.faults.items()},
            "readings_by_kind": counts,
            "entries": [msgspec.to_builtins(entry) for entry in self.manifest],
        }

    def _device_day(
        self,
        device: SimDevice,
        day: int,
        day_start: int,
        clean: _DayData,
        fault: _Fault | None,
        meters: list[_MeterState],
        kept: dict[tuple[int, int], list[Signed]],
    ) -> list[Signed]:
        index = device.index
        signer = self._signers[index]
        generation = clean.generation[index].copy()
        export = clean.export[index].copy()
        imports = clean.imports[index].copy()
        meter = meters[index]
        starts = [day_start + i * INTERVAL_S for i in range(INTERVALS_PER_DAY)]
        kind = fault.kind if fault is not None else None
        note = ""
        entries: list[ManifestEntry] = []
        source_id: str | None = None

        if fault is not None and kind is FaultKind.replay:
            # The meter kept counting what really happened; the day sent is an old one.
            meter.generation_wh += int(generation.sum())
            meter.export_wh += int(export.sum())
            shift = (day - fault.source) * DAY_S
            out: list[Signed] = []
            for item in kept[(index, fault.source)]:
                old = item.reading
                reading = msgspec.structs.replace(
                    old, interval_start_s=old.interval_start_s + shift
                )
                out.append(Signed(reading, signer.sign(reading)))
                self.manifest.append(
                    ManifestEntry(
                        FaultKind.replay,
                        device.device_id,
                        reading.interval_start_s,
                        device.device_id,
                        old.interval_start_s,
                        f"re-signed with timestamps shifted by {day - fault.source} day(s)",
                    )
                )
            return out

        if fault is not None and kind is FaultKind.inflated:
            block = range(fault.start, min(INTERVALS_PER_DAY, fault.start + fault.length))
            for i in block:
                generation[i] = math.ceil(int(clean.bound[index, i]) * fault.factor)
                entries.append(ManifestEntry(kind, device.device_id, starts[i]))
            note = f"generation {fault.factor:.2f} x the physical bound"
        elif fault is not None and kind is FaultKind.night:
            rng = np.random.default_rng([self.fleet.seed, _FAULTS, index, day])
            for i in fault.intervals:
                generation[i] = int(device.capacity_w * 0.5 * rng.uniform(0.05, 0.4))
                imports[i] = max(0, int(imports[i]) - int(generation[i]))
                export[i] = 0
                entries.append(ManifestEntry(kind, device.device_id, starts[i]))
            note = "generation while the sun is below -6 degrees"
        elif fault is not None and kind is FaultKind.copy:
            source_id = self.fleet.devices[fault.source].device_id
            generation = clean.generation[fault.source].copy()
            export = clean.export[fault.source].copy()
            imports = clean.imports[fault.source].copy()
            for i in range(INTERVALS_PER_DAY):
                entries.append(
                    ManifestEntry(kind, device.device_id, starts[i], source_id, starts[i])
                )
            note = f"numbers copied from {source_id}"

        gen_counter = meter.generation_wh + np.cumsum(generation)
        exp_counter = meter.export_wh + np.cumsum(export)
        meter.generation_wh = int(gen_counter[-1])
        meter.export_wh = int(exp_counter[-1])
        skip: set[int] = set()

        if fault is not None and kind is FaultKind.stuck:
            start = fault.start
            if generation[start] <= 0:  # stuck "while generation is reported"
                start = int(np.argmax(generation))
            if generation[start] > 0:
                end = min(INTERVALS_PER_DAY, start + fault.length)
                frozen_gen = int(gen_counter[start] - generation[start])  # before the block
                frozen_exp = int(exp_counter[start] - export[start])
                for i in range(start, end):
                    generation[i], export[i], imports[i] = (
                        generation[start],
                        export[start],
                        imports[start],
                    )
                    gen_counter[i], exp_counter[i] = frozen_gen, frozen_exp
                    entries.append(ManifestEntry(kind, device.device_id, starts[i]))
                note = "the same values again, counters not advancing"
        elif fault is not None and kind is FaultKind.gaps:
            for i in range(fault.start, fault.start + fault.length):
                skip.add(i)
                entries.append(ManifestEntry(kind, device.device_id, starts[i]))
            note = "not sent"

        self.manifest.extend(
            msgspec.structs.replace(e, note=note) if not e.note else e for e in entries
        )
        out = []
        for i in range(INTERVALS_PER_DAY):
            if i in skip:
                continue
            reading = Reading(
                device.device_id,
                starts[i],
                int(generation[i]),
                int(export[i]),
                int(imports[i]),
                int(gen_counter[i]),
                int(exp_counter[i]),
            )
            out.append(Signed(reading, signer.sign(reading)))
        return out


# ---- registration on the ledger ------------------------------------------------------------

ALREADY: Final = frozenset(
    {"participant_exists", "device_exists", "device_not_pending", "factor_version_exists"}
)


@dataclass(slots=True)
class RegistrationReport:
    """What :func:`register_fleet` did: new records, records already there, failures."""

    done: dict[str, int] = field(default_factory=dict)
    already: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def register_fleet(
    submitter: Submitter,
    fleet: Fleet,
    authority: KeyFile,
    aggregator: KeyFile,
    *,
    aggregator_name: str = "ReCO2 MRV (simulated fleet aggregator)",
    publish_factors: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> RegistrationReport:
    """Put a fleet on the ledger: its aggregator and owners (prosumers), the shipped emission
    factors, every device with its meter key, place and capacity, and the authority's approval.

    Idempotent: what already exists is counted in ``already`` and left alone. Devices are
    registered by the aggregator; participants, factors and approvals by the authority.
    ``progress(done, total)`` is called after each transaction.
    """
    report = RegistrationReport()
    owners = {d.owner_id: d for d in fleet.devices}
    total = 1 + len(owners) + int(publish_factors) + 2 * len(fleet.devices)
    step = 0

    def do(label: str, key: KeyFile, action: tx.Action) -> None:
        nonlocal step
        receipt = submit(submitter, key, action)
        if receipt.ok:
            report.done[label] = report.done.get(label, 0) + 1
        elif receipt.code in ALREADY:
            report.already[label] = report.already.get(label, 0) + 1
        else:
            report.errors.append(f"{label} {_subject(action)}: {receipt.code}")
        step += 1
        if progress is not None:
            progress(step, total)

    do(
        "participant",
        authority,
        tx.RegisterParticipant(
            aggregator.participant_id,
            aggregator.public_key,
            [Role.aggregator],
            aggregator_name,
            True,
        ),
    )
    for owner_id, device in owners.items():
        do(
            "participant",
            authority,
            tx.RegisterParticipant(
                owner_id, device.owner_key.public_key, [Role.prosumer], device.owner_name, False
            ),
        )
    if publish_factors:
        do("factors", authority, factors.publish_action())
    for device in fleet.devices:
        do("device", aggregator, device.register_action(aggregator.participant_id))
    for device in fleet.devices:
        do("approval", authority, tx.ApproveDevice(device.device_id))
    return report


def _subject(action: tx.Action) -> str:
    for name in ("device_id", "participant_id", "version"):
        value: Any = getattr(action, name, None)
        if value is not None:
            return str(value)
    return tx.kind_of(action)
