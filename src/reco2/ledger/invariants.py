"""DESIGN.md section 7: what must hold after every block. Returns violations as sentences
(empty list = all hold); tests and the simulator call it after every block."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from reco2.ledger.state import HOLDING, YEN, State
from reco2.ledger.types import Holding, ValueBatch, YenAccount


def check(state: State) -> list[str]:
    violations: list[str] = []
    violations += _value_conserved(state)
    violations += _yen_conserved(state)
    violations += _no_overlapping_issuance(state)
    return violations


def _value_conserved(state: State) -> list[str]:
    held: dict[str, int] = defaultdict(int)
    out: list[str] = []
    for key, record in state.records_with_prefix(HOLDING):
        assert isinstance(record, Holding)
        batch_id = key[len(HOLDING) :].split(b"/", 1)[0].decode()
        for name in ("tradable_g", "escrowed_g", "retired_g"):
            if getattr(record, name) < 0:
                out.append(f"holding {key.decode()} has negative {name}")
        held[batch_id] += record.tradable_g + record.escrowed_g + record.retired_g
    for _, batch in state.records_with_prefix(b"batch/"):
        assert isinstance(batch, ValueBatch)
        if held.get(batch.batch_id, 0) != batch.co2_g:
            out.append(
                f"batch {batch.batch_id}: issued {batch.co2_g} g but holdings add up to "
                f"{held.get(batch.batch_id, 0)} g"
            )
        held.pop(batch.batch_id, None)
    out.extend(f"holdings of unknown batch {batch_id}" for batch_id in sorted(held))
    return out


def _yen_conserved(state: State) -> list[str]:
    out: list[str] = []
    total = 0
    for key, record in state.records_with_prefix(YEN):
        assert isinstance(record, YenAccount)
        if record.available_sen < 0 or record.escrowed_sen < 0:
            out.append(f"account {key.decode()} is negative")
        total += record.available_sen + record.escrowed_sen
    totals = state.yen_totals()
    if totals.deposited_sen - totals.withdrawn_sen != total:
        out.append(
            f"yen: deposited {totals.deposited_sen} - withdrawn {totals.withdrawn_sen} "
            f"!= accounts {total} sen"
        )
    return out


def _no_overlapping_issuance(state: State) -> list[str]:
    out: list[str] = []
    devices = {key.decode().split("/", 1)[1] for key, _ in state.records_with_prefix(b"device/")}
    for device_id in sorted(devices):
        periods = state.issued_periods(device_id)
        for (start_a, end_a), (start_b, _) in pairwise(periods):
            if start_b < end_a:
                out.append(f"device {device_id}: issuance {start_a}-{end_a} overlaps {start_b}")
    return out


def retired_never_decreases(before: dict[bytes, int], state: State) -> list[str]:
    """Compare retired amounts with an earlier snapshot (see ``retired_snapshot``)."""
    out: list[str] = []
    now = retired_snapshot(state)
    for key, retired_g in sorted(before.items()):
        if now.get(key, 0) < retired_g:
            out.append(f"retired value moved in {key.decode()}")
    return out


def retired_snapshot(state: State) -> dict[bytes, int]:
    snapshot: dict[bytes, int] = {}
    for key, record in state.records_with_prefix(HOLDING):
        assert isinstance(record, Holding)
        snapshot[key] = record.retired_g
    return snapshot
