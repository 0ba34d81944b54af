"""A window of readings as arrays: device x day x 30-minute interval, with neighbours and bounds.

Energies are float arrays [Wh] with NaN where no reading arrived. The first reading received for
an interval is the one kept (the store's rule: an accepted interval never changes). Neighbours of
a device are the other devices of the same source in the same municipality; where fewer than
``MIN_NEIGHBOURS`` share it, the same prefecture; where still fewer, every device of that source
in the window. Comparisons between devices are normalised by capacity [W].
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from reco2.ledger.calendar import INTERVAL_S
from reco2.ledger.types import Device, Source
from reco2.mrv import physics
from reco2.mrv.readings import Reading

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

DAY_S: Final = 86_400
INTERVALS_PER_DAY: Final = DAY_S // INTERVAL_S
MIN_NEIGHBOURS: Final = 2


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the model needs of a registered device."""

    device_id: str
    source: Source
    capacity_w: int
    municipality_code: str
    prefecture_code: str
    latitude_e2: int
    longitude_e2: int

    @staticmethod
    def of(device: Device) -> DeviceInfo:
        return DeviceInfo(
            device.device_id,
            device.source,
            device.capacity_w,
            device.municipality_code,
            device.prefecture_code,
            device.latitude_e2,
            device.longitude_e2,
        )


@dataclass(frozen=True, slots=True)
class Window:
    """Readings of ``devices`` over ``days`` JST days from ``start_s`` [UTC s, a JST midnight].

    Arrays have shape (devices, days, 48). ``bound`` is the physical bound per interval [Wh]
    (solar: the clear-sky bound of ``reco2.mrv.physics``; wind: rated power x 30 minutes).
    """

    devices: tuple[DeviceInfo, ...]
    start_s: int
    days: int
    generation: FloatArray
    export: FloatArray
    imports: FloatArray
    generation_counter: FloatArray
    present: BoolArray
    bound: FloatArray
    neighbours: tuple[tuple[int, ...], ...]
    export_counter: FloatArray | None = None  # [Wh], NaN where missing; None when not laid out

    def position(self, device_id: str, interval_start_s: int) -> tuple[int, int, int] | None:
        """(device, day, interval) of a reading id's parts, None when outside the window."""
        index = self._index.get(device_id)
        offset = interval_start_s - self.start_s
        if index is None or offset < 0 or offset >= self.days * DAY_S or offset % INTERVAL_S:
            return None
        return index, offset // DAY_S, (offset % DAY_S) // INTERVAL_S

    @property
    def _index(self) -> dict[str, int]:
        return {device.device_id: n for n, device in enumerate(self.devices)}

    def interval_start_s(self, day: int, interval: int) -> int:
        return self.start_s + day * DAY_S + interval * INTERVAL_S

    @property
    def capacity_w(self) -> FloatArray:
        return np.array([float(d.capacity_w) for d in self.devices])


def neighbour_groups(devices: Sequence[DeviceInfo]) -> tuple[tuple[int, ...], ...]:
    """Each device's neighbours (indices), by the rule of the module docstring."""
    out: list[tuple[int, ...]] = []
    for n, device in enumerate(devices):
        same_source = [m for m, d in enumerate(devices) if m != n and d.source is device.source]
        chosen: list[int] = []
        for key in ("municipality_code", "prefecture_code"):
            mine = getattr(device, key)
            chosen = [m for m in same_source if getattr(devices[m], key) == mine]
            if len(chosen) >= MIN_NEIGHBOURS:
                break
        else:
            chosen = same_source
        out.append(tuple(chosen))
    return tuple(out)


def day_bounds(device: DeviceInfo, day_start_s: int) -> FloatArray:
    """The physical bound of each interval of a JST day [Wh]."""
    if device.source is Source.solar:
        return np.array(
            physics.day_bounds_wh(
                device.latitude_e2, device.longitude_e2, device.capacity_w, day_start_s
            ),
            dtype=np.float64,
        )
    return np.full(INTERVALS_PER_DAY, float(physics.wind_generation_wh_max(device.capacity_w)))


def build_window(
    devices: Sequence[DeviceInfo], readings: Iterable[Reading], start_s: int, days: int
) -> Window:
    """Lay readings out (readings of other devices or outside the window are left out)."""
    shape = (len(devices), days, INTERVALS_PER_DAY)
    arrays = {name: np.full(shape, np.nan) for name in ("gen", "exp", "imp", "cnt", "xcnt")}
    present = np.zeros(shape, dtype=bool)
    index = {device.device_id: n for n, device in enumerate(devices)}
    for reading in readings:
        n = index.get(reading.device_id)
        offset = reading.interval_start_s - start_s
        if n is None or offset < 0 or offset >= days * DAY_S or offset % INTERVAL_S:
            continue
        d, i = offset // DAY_S, (offset % DAY_S) // INTERVAL_S
        if present[n, d, i]:
            continue  # the first reading of an interval is the one kept
        present[n, d, i] = True
        arrays["gen"][n, d, i] = reading.generation_wh
        arrays["exp"][n, d, i] = reading.export_wh
        arrays["imp"][n, d, i] = np.nan if reading.import_wh is None else reading.import_wh
        counter = reading.generation_counter_wh
        arrays["cnt"][n, d, i] = np.nan if counter is None else counter
        exported = reading.export_counter_wh
        arrays["xcnt"][n, d, i] = np.nan if exported is None else exported
    bound = np.zeros(shape)
    for n, device in enumerate(devices):
        for d in range(days):
            bound[n, d] = day_bounds(device, start_s + d * DAY_S)
    return Window(
        tuple(devices),
        start_s,
        days,
        arrays["gen"],
        arrays["exp"],
        arrays["imp"],
        arrays["cnt"],
        present,
        bound,
        neighbour_groups(devices),
        arrays["xcnt"],
    )
