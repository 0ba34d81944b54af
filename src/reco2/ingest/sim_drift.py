"""Slow drift, a fault kind added beside the simulator's own (``simulator.FaultKind``).

A drifting generation meter over-reads by a gain that grows linearly from 1 at the start of a
chosen day: gain(t) = 1 + rate x (t - start) / 1 day, for a rate of ``DRIFT_RATE_PER_DAY``. Its
generation register accumulates what it over-reads, so the counters stay consistent and no
counter rule can see it; the grid meter's export and import are unaffected, so the reported
self-consumption grows with the gain. Only the drift's comparison with the device's own history
and its neighbours gives it away, and only once it is material: a reading is faulty in the
ground truth when the gain has reached ``1 + materiality`` and the reading reports generation;
readings under a smaller gain are in ``grace`` (neither faulty nor clean for scoring).

It works on a finished ``Simulation``'s readings, re-signing the changed ones with the meter's
key, and picks devices with a clean history up to the drift's start and no copy (either way)
from then on, so that the simulator itself is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np

from reco2.ingest.simulator import DAY_S, FaultKind, MeterSigner, Signed, Simulation

DRIFT: Final = "drift"
#: Gain added per day [1/day], drawn uniformly in this range.
DRIFT_RATE_PER_DAY: Final = (0.04, 0.08)
#: Over-reading from which a drifting reading counts as faulty (share of the true energy).
MATERIALITY: Final = 0.20
#: Days of clean history a drift starts after.
WARM_UP_DAYS: Final = 3


@dataclass(frozen=True, slots=True)
class Drift:
    device_index: int
    start_day: int
    rate_per_day: float


@dataclass(frozen=True, slots=True)
class Drifted:
    """Readings with drift applied, and the ground truth of the drift: (device id, interval
    start [UTC s]) of faulty readings and of readings in grace."""

    readings: list[Signed]
    faulty: frozenset[tuple[str, int]]
    grace: frozenset[tuple[str, int]]


def plan_drifts(sim: Simulation, count: int, seed: int) -> list[Drift]:
    """Up to ``count`` drifts, each on a device with no planned fault (of its own, or as the
    source of a copy) up to the drift's first day, and no copy (either way) from then on; its
    other later faults are drifted as well."""
    fleet = sim.fleet
    last_start = fleet.days - 4
    if last_start < WARM_UP_DAYS:
        return []
    first_fault: dict[int, int] = {}
    last_copy: dict[int, int] = {}  # last day each device copies or is copied
    for fault in sim.planned():
        devices = [fault.device, fault.source] if fault.kind is FaultKind.copy else [fault.device]
        for device in devices:
            first_fault[device] = min(first_fault.get(device, fleet.days), fault.day)
            if fault.kind is FaultKind.copy:
                last_copy[device] = max(last_copy.get(device, -1), fault.day)
    rng = np.random.default_rng([seed, 0xD12F7])
    drifts: list[Drift] = []
    for n in rng.permutation(len(fleet.devices)):
        if len(drifts) >= count:
            break
        start = int(rng.integers(WARM_UP_DAYS, last_start + 1))
        rate = float(rng.uniform(*DRIFT_RATE_PER_DAY))
        # A clean history up to the start; and no copy either way once drifting: the simulator's
        # copier copies the source's true numbers, not the drifted ones a source would report,
        # and a drifted copy would be neither a copy nor a drift.
        if first_fault.get(int(n), fleet.days) > start and last_copy.get(int(n), -1) < start:
            drifts.append(Drift(int(n), start, rate))
    return drifts


def apply_drifts(
    sim: Simulation,
    readings: Sequence[Signed],
    drifts: Sequence[Drift],
    materiality: float = MATERIALITY,
) -> Drifted:
    """The readings (in the same order) with each drift applied (module docstring)."""
    fleet = sim.fleet
    by_device = {fleet.devices[d.device_index].device_id: d for d in drifts}
    signers = {
        device_id: MeterSigner(fleet.devices[d.device_index].meter_seed)
        for device_id, d in by_device.items()
    }
    extra_wh = dict.fromkeys(by_device, 0)  # over-read so far, carried by the register
    faulty: set[tuple[str, int]] = set()
    grace: set[tuple[str, int]] = set()
    out: list[Signed] = []
    for item in readings:
        reading = item.reading
        drift = by_device.get(reading.device_id)
        start_s = fleet.day_start_s(drift.start_day) if drift is not None else 0
        if drift is None or reading.interval_start_s < start_s:
            out.append(item)
            continue
        gain = 1.0 + drift.rate_per_day * (reading.interval_start_s - start_s) / DAY_S
        over = int(reading.generation_wh * gain) - reading.generation_wh
        extra_wh[reading.device_id] += over
        counter = reading.generation_counter_wh
        changed = msgspec.structs.replace(
            reading,
            generation_wh=reading.generation_wh + over,
            generation_counter_wh=None
            if counter is None
            else counter + extra_wh[reading.device_id],
        )
        out.append(Signed(changed, signers[reading.device_id].sign(changed)))
        if reading.generation_wh > 0:
            key = (reading.device_id, reading.interval_start_s)
            (faulty if gain >= 1.0 + materiality else grace).add(key)
    return Drifted(out, frozenset(faulty), frozenset(grace))
