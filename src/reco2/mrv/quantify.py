"""Quantification: from a device-day of accepted readings to an ``IssueValue`` with its proof.

The readings root commits a batch to the exact readings it came from. Tree: CometBFT "simple"
Merkle tree (``reco2.ledger.merkle.simple_root``; RFC 6962 split, SHA-256). Leaf item: the
canonical reading body (``readings.encode_reading``, the bytes the meter signed, without the
signature), hashed as SHA-256(0x00 || body). Leaves are ordered by interval start, then device
id. Anyone holding a signed reading can therefore check the meter's signature over the body and
the body's inclusion in the batch with ``reading_proof`` / ``verify_reading_proof``, and recompute
the batch's energy and value from the readings with ``expected_co2_g``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Final

from reco2.ledger import units
from reco2.ledger.calendar import INTERVAL_S, on_grid
from reco2.ledger.merkle import Proof, ProofError, leaf_hash, simple_proof, simple_root
from reco2.ledger.tx import IssueValue
from reco2.ledger.types import Device
from reco2.mrv.readings import Reading, encode_reading, self_consumed_wh

DAY_S: Final = 86_400


def _order(reading: Reading) -> tuple[int, str]:
    return reading.interval_start_s, reading.device_id


def sorted_readings(readings: Sequence[Reading]) -> list[Reading]:
    """Readings in leaf order (interval start, then device id); a repeated interval is an error.

    Raises ValueError when two readings share a device and interval: a batch holds one
    accepted reading per interval, so this is a caller's bug, not bad input.
    """
    ordered = sorted(readings, key=_order)
    for earlier, later in pairwise(ordered):
        if _order(earlier) == _order(later):
            raise ValueError(
                f"two readings for device {later.device_id} at {later.interval_start_s}"
            )
    return ordered


def readings_root(readings: Sequence[Reading]) -> bytes:
    """Merkle root [32 bytes] over the canonical reading bodies in leaf order (module docstring).

    The root of no readings is SHA-256 of the empty string (CometBFT's empty tree).
    """
    return simple_root([encode_reading(reading) for reading in sorted_readings(readings)])


def reading_proof(readings: Sequence[Reading], index: int) -> Proof:
    """Inclusion proof of ``readings[index]`` (an index into the sequence as given).

    ``proof.index`` is the reading's position in leaf order; ``proof.compute_root()`` equals
    ``readings_root(readings)``.
    """
    target = readings[index]
    ordered = sorted_readings(readings)
    position = ordered.index(target)
    return simple_proof([encode_reading(reading) for reading in ordered], position)


def verify_reading_proof(reading: Reading, proof: Proof, root: bytes) -> bool:
    """True when ``proof`` shows that ``reading`` (its canonical body) is a leaf under ``root``."""
    if proof.leaf_hash != leaf_hash(encode_reading(reading)):
        return False
    try:
        return proof.compute_root() == root
    except ProofError:
        return False


def total_self_consumed_wh(readings: Sequence[Reading]) -> int:
    """Sum of self-consumed energy [Wh] = sum of max(0, generation - export) per interval."""
    return sum(self_consumed_wh(reading) for reading in readings)


def build_issuance(
    device: Device,
    batch_id: str,
    day_start_s: int,
    accepted_readings: Sequence[Reading],
    factor_version: str,
) -> IssueValue:
    """One issuance for one device-day: self-consumed Wh of the accepted intervals and their root.

    ``day_start_s`` [UTC s] starts the period [day_start_s, day_start_s + 86400); use a JST
    midnight (``reco2.ledger.calendar.jst_midnight_s``) so that a day never spans two fiscal
    years, which the ledger refuses. Every reading is measured (no estimates yet:
    ``estimated_intervals`` and ``estimated_wh`` are 0).

    Raises ValueError when the readings do not fit the batch (another device, outside the day,
    a repeated interval, none at all) or the day is off the 30-minute grid: the issuer passes
    only the readings it accepted for that device-day, so any of these is a bug in the caller.
    """
    if not on_grid(day_start_s):
        raise ValueError(f"day start {day_start_s} is not on the {INTERVAL_S} s grid")
    if not accepted_readings:
        raise ValueError(f"no accepted readings for device {device.device_id}")
    period_end_s = day_start_s + DAY_S
    for reading in accepted_readings:
        if reading.device_id != device.device_id:
            raise ValueError(f"reading of {reading.device_id} in a batch of {device.device_id}")
        if not day_start_s <= reading.interval_start_s < period_end_s:
            raise ValueError(f"reading at {reading.interval_start_s} is outside the day")
        if not on_grid(reading.interval_start_s):
            raise ValueError(f"reading at {reading.interval_start_s} is off the grid")
    return IssueValue(
        batch_id=batch_id,
        device_id=device.device_id,
        period_start_s=day_start_s,
        period_end_s=period_end_s,
        self_consumed_wh=total_self_consumed_wh(accepted_readings),
        measured_intervals=len(accepted_readings),
        estimated_intervals=0,
        estimated_wh=0,
        readings_root=readings_root(accepted_readings),
        factor_version=factor_version,
    )


def expected_co2_g(
    readings: Sequence[Reading], factor_mg_per_wh: int, carried_in_mg: int = 0
) -> tuple[int, int]:
    """Recompute a batch's value from its readings: (issued [g-CO2], carried out [mg]).

    Applies the ledger's one rounding rule (``reco2.ledger.units.issued_value_g``):
    floor((sum of self-consumed Wh x factor mg/Wh + carried-in mg) / 1000) g, the remainder
    below one gram carried to the device's next batch.
    """
    return units.issued_value_g(total_self_consumed_wh(readings), factor_mg_per_wh, carried_in_mg)
