"""The readings store goes away under a running intake, then comes back.

While PostgreSQL is down the intake keeps running: an HTTP batch is answered 503 (nothing of it
stored, send it again), and MQTT messages stay unacknowledged, retried by the intake until the
database answers again. Once it is back every reading is stored exactly once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reco2.ledger.types import Source
from reco2.mrv.readings import sign_reading
from reco2.mrv.store import Status, StoredReading, open_store
from tests.e2e.test_intake import (
    FIRST_DAY,
    IntakeProcess,
    Meter,
    MqttSender,
    day_starts,
    intakes,  # noqa: F401 (fixture)
    meter_readings,
    new_chain,
    post,
)
from tests.services import Broker, PostgresServer, mosquitto_fixture, start_postgres  # noqa: F401

METER = Meter("pv-outage", Source.solar, 4_500, "13", "131202", 3574, 13965)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own: it is stopped and started under the intake."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.remove()


def test_the_intake_rides_out_a_database_outage(
    tmp_path: Path,
    mosquitto: Broker,
    own_postgres: PostgresServer,
    intakes: list[IntakeProcess],  # noqa: F811 (fixture)
) -> None:
    store_url = own_postgres.new_database()
    data_dir = tmp_path / "chain"
    new_chain(data_dir, [METER])
    raws = [
        sign_reading(r, METER.seed)
        for r in meter_readings(METER, day_starts(FIRST_DAY, 3), random.Random("outage"))
    ]
    before, during_mqtt, during_http = raws[:48], raws[48:120], raws[120:144]
    intake = IntakeProcess(data_dir, store_url, tmp_path / "intake.log", mosquitto)
    intakes.append(intake)
    intake.start()
    sender = MqttSender(mosquitto)
    try:
        assert len(sender.publish(before)) == len(before)
        deadline = time.monotonic() + 60
        while intake.status()["engine"]["accepted"] < len(before):
            assert time.monotonic() < deadline, intake.log()
            time.sleep(0.05)

        own_postgres.stop("fast")
        assert len(sender.publish(during_mqtt)) == len(during_mqtt), "the broker takes them"
        answer = post(intake.url, during_http)
        assert answer.status_code == 503, answer.text
        assert (
            "not stored" in answer.json()["detail"] and "send them again" in answer.json()["detail"]
        )
        time.sleep(2.0)  # the MQTT messages are being retried meanwhile
        assert intake.alive
        assert intake.status()["engine"]["failed_batches"] > 0

        started = own_postgres.start()
        assert started.returncode == 0, started.stderr
        answer = post(intake.url, during_http)
        assert answer.status_code == 200, answer.text
        assert {r["status"] for r in answer.json()["results"]} == {"accepted"}
        deadline = time.monotonic() + 120
        while intake.status()["engine"]["accepted"] < len(raws[:144]):
            assert time.monotonic() < deadline, f"{intake.status()}\n{intake.log()}"
            time.sleep(0.1)
    finally:
        sender.close()
    intake.stop()

    with open_store(store_url) as store:
        for raw in raws[:144]:
            found = store.find(raw)
            assert isinstance(found, StoredReading) and found.status is Status.accepted
        counts = store.counts()
        assert (counts["accepted"], counts["rejected"], counts["rejections"]) == (144, 0, 0)
