"""A week of signed half-hourly readings for the demo seller's rooftop unit, issued as value.

``reco2 serve --demo`` calls ``add`` so that "my devices" has days to chart and the audit trail
has readings to prove: the readings are signed with the device's meter key, kept in
``DATA_DIR/readings.sqlite`` (the default store of ``reco2 intake``), and each JST day is
issued by the aggregator as one batch whose readings root commits to them.

The profile is a clear-sky bell over the day, scaled per day; the household uses a fixed
share of each interval's generation and exports the rest. Deterministic, so a test can count.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

from reco2 import factors
from reco2.ingest.issuer import batch_id_for
from reco2.ledger.calendar import INTERVAL_S, jst_date, jst_midnight_s
from reco2.mrv.quantify import build_issuance
from reco2.mrv.readings import Reading, reading_hash, sign_reading
from reco2.mrv.store import IssuedDay, open_store
from reco2.mrv.validation import Validated
from reco2.node.client import EmbeddedSubmitter, submit
from reco2.node.keys import KeyFile

READINGS_FILE = "readings.sqlite"
FIRST_DAY = dt.date(2025, 5, 1)
DAYS = 7
#: Peak interval generation per day [Wh per 30 min] for a 6 kW unit: cloudier on days 3 and 6.
PEAK_WH = (2_400, 2_250, 1_100, 2_300, 2_350, 900, 2_200)
SELF_SHARE = 0.55  # share of generation the household uses itself


def store_url(data_dir: Path) -> str:
    return f"sqlite://{(data_dir / READINGS_FILE).absolute()}"


def day_readings(device_id: str, day: dt.date, peak_wh: int) -> list[Reading]:
    """The sunny intervals of one JST day (05:00-19:00), with running counters from zero."""
    start = jst_midnight_s(day)
    readings = []
    for slot in range(10, 38):  # 05:00 .. 18:30 JST
        shape = math.sin(math.pi * (slot - 10 + 0.5) / 28)
        generation = round(peak_wh * shape * shape)
        export = generation - round(generation * SELF_SHARE)
        readings.append(
            Reading(device_id, start + slot * INTERVAL_S, generation, export, 150, None, None)
        )
    return readings


def add(
    data_dir: Path, node: EmbeddedSubmitter, device_id: str, meter: KeyFile, aggregator: KeyFile
) -> list[str]:
    """Store and issue the demo week; returns the batch ids."""
    state = node.node.app.state
    device = state.device(device_id)
    if device is None:
        raise LookupError(f"no device {device_id!r}")
    version = factors.publish_action().version
    now_s = int(time.time())
    batches = []
    store = open_store(store_url(data_dir))
    try:
        for offset, peak in zip(range(DAYS), PEAK_WH, strict=True):
            day = FIRST_DAY + dt.timedelta(days=offset)
            readings = day_readings(device_id, day, peak)
            verdicts = []
            for reading in readings:
                raw = sign_reading(reading, meter.seed)
                verdicts.append(Validated(raw, reading_hash(raw), reading, ()))
            store.record(verdicts, now_s)
            start = jst_midnight_s(day)
            batch_id = batch_id_for(device_id, start)
            action = build_issuance(device, batch_id, start, readings, version)
            receipt = submit(node, aggregator, action)
            if not receipt.ok:
                raise RuntimeError(f"demo issuance of {batch_id} failed: {receipt.code}")
            store.record_issued(
                IssuedDay(
                    device_id,
                    jst_date(start),
                    start,
                    batch_id,
                    receipt.code,
                    receipt.tx_hash,
                    now_s,
                )
            )
            batches.append(batch_id)
    finally:
        store.close()
    return batches
