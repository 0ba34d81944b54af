"""「わたしの設備」 My devices: per day, what each of a prosumer's devices generated, used on
site (self-consumption, the energy that makes value) and the value issued for it [g-CO2].

Energy comes from the readings store (``DATA_DIR/readings.sqlite``, accepted readings only);
value comes from the ledger's batches of the device, dated by their period's JST day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from reco2.ledger.calendar import jst_date
from reco2.ledger.state import State
from reco2.ledger.types import Device, ValueBatch
from reco2.mrv.readings import self_consumed_wh
from reco2.mrv.store import Status, decode_stored, open_store
from reco2.views import market
from reco2.web import charts
from reco2.web.kit import PageKit

READINGS_FILE = "readings.sqlite"


@dataclass(frozen=True, slots=True)
class DayRow:
    day: str  # ISO date, JST
    generation_wh: int
    self_consumed_wh: int
    co2_g: int


def energy_by_day(data_dir: Path, device_ids: list[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """device -> JST day -> (generation Wh, self-consumed Wh) of the accepted readings.
    Nothing (and no file created) when the data directory has no readings store."""
    path = data_dir / READINGS_FILE
    out: dict[str, dict[str, tuple[int, int]]] = {d: {} for d in device_ids}
    if not path.exists() or not device_ids:
        return out
    store = open_store(f"sqlite://{path.absolute()}")
    try:
        for device_id in device_ids:
            days: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for row in store.readings(device_id):
                if row.status is not Status.accepted:
                    continue
                reading = decode_stored(row.raw).reading
                day = days[jst_date(reading.interval_start_s)]
                day[0] += reading.generation_wh
                day[1] += self_consumed_wh(reading)
            out[device_id] = {k: (v[0], v[1]) for k, v in days.items()}
    finally:
        store.close()
    return out


def value_by_day(state: State, device_ids: list[str]) -> dict[str, dict[str, int]]:
    """device -> JST day -> g-CO2 issued for that day's period."""
    out: dict[str, dict[str, int]] = {d: defaultdict(int) for d in device_ids}
    for _, record in state.records_with_prefix(b"batch/"):
        if isinstance(record, ValueBatch) and record.device_id in out:
            out[record.device_id][jst_date(record.period_start_s)] += record.co2_g
    return {d: dict(v) for d, v in out.items()}


def day_rows(energy: dict[str, tuple[int, int]], value: dict[str, int]) -> list[DayRow]:
    return [
        DayRow(day, *energy.get(day, (0, 0)), value.get(day, 0))
        for day in sorted(set(energy) | set(value))
    ]


def install(app: FastAPI, kit: PageKit) -> None:
    web = kit.web

    @app.get("/devices", response_class=HTMLResponse, include_in_schema=False)
    def devices_page(request: Request) -> HTMLResponse:
        session = kit.require_page(request)
        pid = session.participant_id

        def mine(state: State) -> tuple[list[Device], dict[str, dict[str, int]]]:
            devices = sorted(
                (
                    d
                    for _, d in state.records_with_prefix(b"device/")
                    if isinstance(d, Device) and d.owner == pid
                ),
                key=lambda d: d.device_id,
            )
            return devices, value_by_day(state, [d.device_id for d in devices])

        devices, values = web.read(mine)
        energy = energy_by_day(web.config.data_dir, [d.device_id for d in devices])
        t = kit.texts(request)
        shown = []
        for device in devices:
            rows = day_rows(energy[device.device_id], values[device.device_id])
            labels = [r.day[5:] for r in rows]  # MM-DD
            shown.append(
                {
                    "device": device,
                    "place": market.place_name(device.municipality_code),
                    "rows": rows,
                    "charts": [
                        charts.bar_chart(
                            f"gen-{device.device_id}",
                            t["generation"],
                            "kWh",
                            [
                                (lb, r.generation_wh / 1000)
                                for lb, r in zip(labels, rows, strict=True)
                            ],
                        ),
                        charts.bar_chart(
                            f"self-{device.device_id}",
                            t["self_consumption"],
                            "kWh",
                            [
                                (lb, r.self_consumed_wh / 1000)
                                for lb, r in zip(labels, rows, strict=True)
                            ],
                        ),
                        charts.bar_chart(
                            f"value-{device.device_id}",
                            t["value_g"],
                            "g-CO2",
                            [(lb, float(r.co2_g)) for lb, r in zip(labels, rows, strict=True)],
                        ),
                    ],
                }
            )
        return kit.render(request, "devices.html", devices=shown, source_ja=market.SOURCE_JA)
