"""`reco2 simulate`: a fleet of simulated meters sending signed readings to the intake."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from reco2.cli.common import DataDir, NodeUrl, console, err_console, fail, open_submitter
from reco2.ingest.sim_send import SendSummary, send_http, send_mqtt
from reco2.ingest.simulator import (
    Fleet,
    RegistrationReport,
    Simulation,
    make_fleet,
    parse_faults,
    register_fleet,
)
from reco2.ledger.calendar import JST_OFFSET_S, parse_iso_date
from reco2.ledger.types import Source
from reco2.node.keys import KeyFile, key_path

AGGREGATOR_ID = "mrv"


def simulate(
    devices: Annotated[int, typer.Option("--devices", "-n", min=1, help="Fleet size.")] = 10,
    days: Annotated[int, typer.Option(min=1, help="Days of readings.")] = 1,
    seed: Annotated[
        int, typer.Option(min=0, max=2**64 - 1, help="Seed: same seed, same fleet and bytes.")
    ] = 1,
    start_day: Annotated[
        str | None,
        typer.Option(help="First day YYYY-MM-DD (JST); default: DAYS days before today."),
    ] = None,
    mqtt_host: Annotated[str | None, typer.Option(help="Publish to this MQTT broker.")] = None,
    mqtt_port: Annotated[int, typer.Option(help="The broker's port.")] = 1883,
    http: Annotated[
        str | None, typer.Option("--http", help="POST to this intake URL instead.")
    ] = None,
    data_dir: DataDir = Path("."),
    register: Annotated[
        bool,
        typer.Option(
            help="Register the fleet on the ledger in DIR first (owners, devices, approvals, "
            "emission factors; keys in DIR/keys/)."
        ),
    ] = False,
    node: NodeUrl = None,
    faults: Annotated[
        str,
        typer.Option(
            help="Faults to inject: inflated,night,copy,replay,stuck,gaps (KIND:RATE sets "
            "one kind's rate)."
        ),
    ] = "",
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of device-days per fault kind.")
    ] = 0.01,
    manifest: Annotated[
        Path | None, typer.Option(help="Write the injected faults (ground truth) as JSON here.")
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.0, help="Readings per second (0: as fast as possible).")
    ] = 0.0,
    batch: Annotated[int, typer.Option(min=1, max=4096, help="HTTP: readings per request.")] = 4096,
    ack_timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds to wait without any acknowledgement.")
    ] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Simulate homes with rooftop solar and small wind in real Japanese places: sign their
    30-minute readings and send them over MQTT or HTTP, with faults to inject if asked."""
    if mqtt_host and http:
        fail("choose one transport: --mqtt-host or --http")
    first_day = _start_day(start_day, days)
    try:
        rates = parse_faults(faults, fault_rate)
    except ValueError as exc:
        fail(str(exc))
    fleet = make_fleet(seed, devices, first_day, days)
    sim = Simulation(fleet, rates)
    if not as_json:
        _describe(fleet, sim)
    if fleet.end_s > _now_s():
        err_console.print(
            "[yellow]warning:[/] the last days are in the future: the intake rejects readings "
            "of intervals that have not ended"
        )

    registration: RegistrationReport | None = None
    if register:
        registration = _register(fleet, data_dir, node, quiet=as_json)

    summary: SendSummary | None = None
    if mqtt_host or http or manifest is not None or not register:
        summary = _send(sim, mqtt_host, mqtt_port, http, rate, batch, ack_timeout, quiet=as_json)
    if manifest is not None:
        _write_manifest(manifest, sim)
    _report(fleet, sim, summary, registration, manifest, as_json)
    if summary is not None and not summary.ok:
        raise typer.Exit(1)


def _now_s() -> int:
    return int(_dt.datetime.now(_dt.UTC).timestamp())


def _start_day(text: str | None, days: int) -> _dt.date:
    if text is None:
        today = _dt.datetime.fromtimestamp(_now_s() + JST_OFFSET_S, _dt.UTC).date()
        return today - _dt.timedelta(days=days)
    day = parse_iso_date(text)
    if day is None:
        fail(f"--start-day {text!r} is not a YYYY-MM-DD date")
    return day


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=quiet,
    )


def _describe(fleet: Fleet, sim: Simulation) -> None:
    solar = [d for d in fleet.devices if d.source is Source.solar]
    wind = [d for d in fleet.devices if d.source is Source.wind]
    places = sorted({d.place.romaji for d in fleet.devices})
    last = fleet.start_day + _dt.timedelta(days=fleet.days - 1)
    console.print(
        f"[bold]fleet[/] seed {fleet.seed}: {len(solar)} rooftop solar "
        f"({sum(d.capacity_w for d in solar) / 1000:.1f} kW), {len(wind)} small wind "
        f"({sum(d.capacity_w for d in wind) / 1000:.1f} kW) in {len(places)} places; "
        f"{fleet.start_day} .. {last} (JST), {sim.expected_readings()} readings"
    )
    planned = {k.value: n for k, n in sim.planned_counts().items() if n}
    if planned:
        console.print(f"faults planned (device-days): {planned}")


def _register(fleet: Fleet, data_dir: Path, node: str | None, *, quiet: bool) -> RegistrationReport:
    authority_path = key_path(data_dir, "authority")
    if not authority_path.exists():
        fail(f"no authority key at {authority_path} (run `reco2 init -d {data_dir}` first)")
    authority = KeyFile.load(authority_path)
    aggregator_path = key_path(data_dir, AGGREGATOR_ID)
    if aggregator_path.exists():
        aggregator = KeyFile.load(aggregator_path)
    else:
        aggregator = KeyFile.generate(AGGREGATOR_ID)
        aggregator.save(aggregator_path)
    for device in fleet.devices:
        path = key_path(data_dir, device.owner_id)
        if not path.exists():
            device.owner_key.save(path)
    submitter = open_submitter(data_dir, node)
    try:
        with _progress(quiet) as progress:
            task = progress.add_task("register", total=None)

            def step(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = register_fleet(submitter, fleet, authority, aggregator, progress=step)
    finally:
        submitter.close()
    if not report.ok:
        for error in report.errors[:20]:
            err_console.print(f"[red]registration:[/] {error}")
        fail(f"{len(report.errors)} registration steps failed")
    if not quiet:
        console.print(f"registered: {report.done or '{}'}; already there: {report.already or '{}'}")
    return report


def _send(
    sim: Simulation,
    mqtt_host: str | None,
    mqtt_port: int,
    http: str | None,
    rate: float,
    batch: int,
    ack_timeout: float,
    *,
    quiet: bool,
) -> SendSummary | None:
    total = sim.expected_readings()
    with _progress(quiet) as progress:
        if mqtt_host:
            task = progress.add_task(f"mqtt {mqtt_host}:{mqtt_port}", total=total)
            return send_mqtt(
                ((s.reading.device_id, s.raw) for s in sim.readings()),
                mqtt_host,
                mqtt_port,
                rate=rate,
                ack_timeout_s=ack_timeout,
                progress=lambda n: progress.advance(task, n),
            )
        if http:
            task = progress.add_task(f"http {http}", total=total)
            return send_http(
                (s.raw for s in sim.readings()),
                http,
                batch_size=batch,
                rate=rate,
                retry_for_s=ack_timeout,
                progress=lambda n: progress.advance(task, n),
            )
        task = progress.add_task("generate (no transport)", total=total)
        for _ in sim.readings():
            progress.advance(task)
    return None


def _write_manifest(path: Path, sim: Simulation) -> None:
    path.write_text(json.dumps(sim.manifest_document(), indent=1) + "\n", "utf-8")


def _report(
    fleet: Fleet,
    sim: Simulation,
    summary: SendSummary | None,
    registration: RegistrationReport | None,
    manifest: Path | None,
    as_json: bool,
) -> None:
    faulty: dict[str, int] = {}
    for entry in sim.manifest:
        faulty[entry.kind.value] = faulty.get(entry.kind.value, 0) + 1
    if as_json:
        out: dict[str, Any] = {
            "seed": fleet.seed,
            "devices": len(fleet.devices),
            "days": fleet.days,
            "start_day": fleet.start_day.isoformat(),
            "readings": sim.expected_readings(),
            "faulty_readings": faulty,
            "manifest": None if manifest is None else str(manifest),
            "registration": None
            if registration is None
            else {"done": registration.done, "already": registration.already},
            "send": None if summary is None else summary.as_dict(),
        }
        sys.stdout.write(json.dumps(out) + "\n")
        return
    if faulty:
        console.print(f"faulty readings in the manifest: {faulty}")
    if manifest is not None:
        console.print(f"manifest: {manifest} ({len(sim.manifest)} entries)")
    if summary is None:
        if sim.manifest or manifest is not None or registration is None:
            console.print(
                f"generated {sim.expected_readings()} signed readings (not sent: pass "
                "--mqtt-host or --http)"
            )
        return
    table = Table("transport", "sent", "acknowledged", "failed", "by status", "time")
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_status.items())) or "-"
    table.add_row(
        summary.transport,
        str(summary.sent),
        str(summary.acknowledged),
        str(summary.failed),
        statuses,
        f"{summary.elapsed_s:.1f} s",
    )
    console.print(table)
    if summary.reconnects or summary.retries:
        console.print(f"reconnects {summary.reconnects}, retries {summary.retries}")
    for error in summary.errors[:10]:
        err_console.print(f"[red]{error}[/]")
