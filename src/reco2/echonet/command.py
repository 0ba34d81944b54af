"""`reco2 agent`: read a home's ECHONET Lite meter and solar unit, send signed readings.

Registered in ``reco2.cli.main``. The command owns the wall clock and the signals; everything it
runs (``reco2.echonet.agent.Agent``) takes time as an argument.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from reco2.cli.common import DataDir, err_console, fail, load_key
from reco2.echonet import objects
from reco2.echonet.agent import (
    Agent,
    AgentConfig,
    FixedTimeNotYet,
    Sender,
    Snapshot,
    http_sender,
    mqtt_sender,
)
from reco2.echonet.client import DEFAULT_PORT, EchonetClient
from reco2.echonet.frame import EOJ
from reco2.ledger.calendar import INTERVAL_S


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """HOST or HOST:PORT (IPv4 or a name)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not host or not port.isdigit() or not 0 <= int(port) <= 0xFFFF:
        raise ValueError(f"{text!r} is not HOST or HOST:PORT")
    return host, int(port)


def agent(
    device_id: Annotated[str, typer.Option(help="The device id registered on the ledger.")],
    meter_key: Annotated[
        str,
        typer.Option(help="The device's meter key: a key file, or a name with a key in DIR/keys/."),
    ],
    meter: Annotated[
        str, typer.Option(help="The smart meter's node, HOST[:PORT] (port 3610 by default).")
    ] = "127.0.0.1",
    solar: Annotated[
        str | None, typer.Option(help="The solar unit's node, HOST[:PORT] (default: --meter).")
    ] = None,
    meter_instance: Annotated[int, typer.Option(min=1, max=0x7F)] = 1,
    solar_instance: Annotated[int, typer.Option(min=1, max=0x7F)] = 1,
    bind: Annotated[
        str,
        typer.Option(help="Local HOST:PORT to send from (devices answer to port 3610)."),
    ] = "0.0.0.0:3610",
    mqtt_host: Annotated[str | None, typer.Option(help="Publish to this MQTT broker.")] = None,
    mqtt_port: Annotated[int, typer.Option(help="The broker's port.")] = 1883,
    http: Annotated[
        str | None, typer.Option("--http", help="POST to this intake URL instead.")
    ] = None,
    poll_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between polls.")] = 10.0,
    timeout: Annotated[float, typer.Option(min=0.01, help="Seconds to wait for an answer.")] = 2.0,
    retries: Annotated[int, typer.Option(min=0, help="Further attempts after a timeout.")] = 2,
    once: Annotated[
        bool, typer.Option("--once", help="Read the registers once, print them as JSON, exit.")
    ] = False,
    data_dir: DataDir = Path("."),
) -> None:
    """Read an ECHONET Lite smart meter (0x0288) and solar unit (0x0279) over UDP; send a signed
    reading for every 30-minute interval over MQTT or HTTP."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if mqtt_host and http:
        fail("choose one transport: --mqtt-host or --http")
    if not once and not (mqtt_host or http):
        fail("say where readings go: --mqtt-host or --http (or --once to just read)")
    try:
        meter_address = parse_address(meter)
        solar_address = parse_address(solar) if solar else meter_address
        local_host, local_port = parse_address(bind)
    except ValueError as exc:
        fail(str(exc))
    key = load_key(data_dir, meter_key)
    config = AgentConfig(
        device_id,
        key.seed,
        meter_address,
        solar_address,
        EOJ(objects.SMART_METER_CLASS, meter_instance),
        EOJ(objects.SOLAR_CLASS, solar_instance),
    )
    try:
        client = EchonetClient(local_host, local_port, timeout_s=timeout, retries=retries)
    except OSError as exc:
        fail(f"cannot bind {local_host}:{local_port}: {exc}")
    sender: Sender | None = None
    if mqtt_host:
        sender = mqtt_sender(mqtt_host, mqtt_port)
    elif http:
        sender = http_sender(http)
    runner = Agent(config, client, time.time, sender)
    try:
        if once:
            _read_once(runner)
            return
        stop = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            err_console.print(f"agent: signal {signum}, stopping")
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        err_console.print(
            f"agent for {device_id}: meter {config.meter} at {meter_address[0]}:"
            f"{meter_address[1]}, solar {config.solar} at {solar_address[0]}:"
            f"{solar_address[1]}, polling every {poll_interval:g} s"
        )
        runner.run(stop, poll_interval)
        if runner.outbox and sender is not None:
            runner.flush()
    finally:
        client.close()
    err_console.print(
        f"agent stopped: {len(runner.readings)} readings, {runner.sent} delivered, "
        f"{len(runner.outbox)} undelivered, {len(runner.rejections)} rejections"
    )


def _read_once(runner: Agent) -> None:
    """Print the current boundary's snapshot as JSON; exit 1 when it cannot be had."""
    now_s = int(runner.clock())
    boundary = now_s - now_s % INTERVAL_S
    out: dict[str, Any] = {"device_id": runner.config.device_id, "boundary_s": boundary}
    try:
        taken = runner.snapshot(boundary)
    except FixedTimeNotYet as waiting:
        out.update(ok=False, reason="fixed_time_not_yet", detail=str(waiting))
    else:
        if isinstance(taken, Snapshot):
            out.update(
                ok=True,
                generated_wh=taken.generated_mwh // 1_000,
                imported_wh=taken.imported_mwh // 1_000,
                exported_wh=taken.exported_mwh // 1_000,
                meter_source=taken.meter_source,
            )
        else:
            out.update(ok=False, reason=str(taken.reason), detail=taken.detail)
    out["client"] = {
        "attempts": runner.client.stats.attempts,
        "timeouts": runner.client.stats.timeouts,
        "ignored": dict(runner.client.stats.ignored),
    }
    sys.stdout.write(json.dumps(out) + "\n")
    if not out["ok"]:
        raise typer.Exit(1)
