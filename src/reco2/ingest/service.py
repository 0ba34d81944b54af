"""`reco2 intake`: the engine, the MQTT subscriber and the HTTP endpoint in one process.

Stops on SIGINT or SIGTERM (uvicorn's handlers): the HTTP server stops taking requests, the MQTT
client disconnects (unacknowledged messages stay with the broker), the engine stores what it was
given, and the store closes. A SIGKILL loses nothing acknowledged: see ``engine`` and ``mqtt``.
"""

from __future__ import annotations

import gc
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from reco2.ingest.devices import LedgerDevices
from reco2.ingest.engine import IntakeEngine
from reco2.ingest.http_api import create_app
from reco2.ingest.mqtt import DEFAULT_CLIENT_ID, MqttIntake
from reco2.mrv.store import open_store

log = logging.getLogger("reco2.intake")


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    data_dir: Path
    store_url: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_enabled: bool = True
    mqtt_client_id: str = DEFAULT_CLIENT_ID
    http_host: str = "127.0.0.1"
    http_port: int = 8100
    workers: int = 0


def run(config: IntakeConfig) -> None:
    """Run the intake until SIGINT or SIGTERM."""
    devices = LedgerDevices(config.data_dir)
    store = open_store(config.store_url)
    engine = IntakeEngine(store, devices, workers=config.workers).start()
    # What is loaded by now lives as long as the process: keep the cyclic garbage collector
    # from walking it on every full collection (as the node does).
    gc.collect()
    gc.freeze()
    mqtt: MqttIntake | None = None
    try:
        if config.mqtt_enabled:
            mqtt = MqttIntake(
                engine, config.mqtt_host, config.mqtt_port, client_id=config.mqtt_client_id
            ).start()

        def status() -> dict[str, Any]:
            return {"mqtt": None if mqtt is None else mqtt.status(), "workers": config.workers}

        server = uvicorn.Server(
            uvicorn.Config(
                create_app(engine, status),
                host=config.http_host,
                port=config.http_port,
                log_level="warning",
            )
        )
        log.info(
            "intake: store %s, MQTT %s, HTTP http://%s:%d, %d worker process(es)",
            store.display_url,
            f"{config.mqtt_host}:{config.mqtt_port}" if mqtt else "off",
            config.http_host,
            config.http_port,
            config.workers,
        )

        # uvicorn stops on SIGINT and SIGTERM, then raises the signal again under the handlers
        # it found: these, so the process gets to close the MQTT session, the engine and the
        # store below instead of dying by the signal's default action.
        def stop(signum: int, frame: FrameType | None) -> None:
            server.should_exit = True

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)
        server.run()
        if not server.started:
            raise OSError(
                f"the HTTP server could not listen on {config.http_host}:{config.http_port}"
            )
    finally:
        if mqtt is not None:
            mqtt.stop()
        engine.stop()
        store.close()
        devices.close()
