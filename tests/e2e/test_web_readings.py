"""Signed meter readings through `reco2 serve` (POST /api/v1/readings, the intake's batch
contract) into the readings store in the data directory: accepted once, duplicates when sent
again, rejections with their reasons, clear refusals of bad bodies; then `reco2 issue-days`
turns the stored day into value on the served ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from reco2.ingest import contract
from reco2.ingest.issuer import batch_id_for
from reco2.ledger import tx
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from reco2.ledger.types import GridContract, Role, Source
from reco2.mrv.readings import Reading, reading_id, self_consumed_wh, sign_reading
from reco2.node.client import HttpSubmitter, submit
from reco2.node.keys import KeyFile, key_path
from tests.e2e.harness import run_cli
from tests.e2e.web_server import WebServer

OWNER = "web-meter-owner"
DEVICE = "web-meter-pv"
DAY = "2025-06-10"
MSGPACK = {"content-type": contract.CONTENT_TYPE}


@dataclass
class Meter:
    server: WebServer
    key: KeyFile

    @property
    def url(self) -> str:
        return f"{self.server.url}/api/v1/readings"


@pytest.fixture(scope="module")
def meter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Meter]:
    """A served demo ledger with one more prosumer and an approved device whose meter key the
    test holds (the demo's own meter keys are not kept)."""
    base = tmp_path_factory.mktemp("webreadings")
    server = WebServer(base / "data", base / "server.log").start()
    try:
        authority = KeyFile.load(key_path(server.data_dir, "authority"))
        owner, meter_key = KeyFile.generate(OWNER), KeyFile.generate(f"meter-{DEVICE}")
        node = HttpSubmitter(f"{server.url}/node")
        device = tx.RegisterDevice(
            DEVICE, OWNER, "mrv", Source.solar, 6_000, "07", "072010", 3776, 14047,
            "2022-04-01", GridContract.none, "", [], meter_key.public_key,
        )  # fmt: skip
        steps: list[tuple[KeyFile, tx.Action]] = [
            (
                authority,
                tx.RegisterParticipant(
                    OWNER, owner.public_key, [Role.prosumer], "メーター試験", True
                ),
            ),
            (owner, device),
            (authority, tx.ApproveDevice(DEVICE)),
        ]
        for key, action in steps:
            receipt = submit(node, key, action)
            assert receipt.ok, receipt.code
        node.close()
        yield Meter(server, meter_key)
    finally:
        server.stop()


def day_readings() -> list[Reading]:
    """Midday intervals (09:00-15:00 JST) of one day, well inside a 6 kW unit's clear sky."""
    day = parse_iso_date(DAY)
    assert day is not None
    start = jst_midnight_s(day)
    return [
        Reading(DEVICE, start + slot * 1800, 900 + 20 * slot, 300 + 5 * slot, 40, None, None)
        for slot in range(18, 30)
    ]


def post(meter: Meter, raws: list[bytes]) -> httpx.Response:
    return httpx.post(meter.url, content=contract.encode_batch(raws), headers=MSGPACK, timeout=60)


def statuses(response: httpx.Response) -> list[tuple[str | None, str, list[str]]]:
    assert response.status_code == 200, response.text
    return [(r["reading_id"], r["status"], r["reasons"]) for r in response.json()["results"]]


def test_readings_are_stored_once_and_issued(meter: Meter) -> None:
    readings = day_readings()
    raws = [sign_reading(r, meter.key.seed) for r in readings]
    ids = [reading_id(r.device_id, r.interval_start_s) for r in readings]

    first = statuses(post(meter, raws))
    assert first == [(i, "accepted", []) for i in ids]
    again = statuses(post(meter, raws))  # a meter that did not hear the answer sends again
    assert [(i, s) for i, s, _ in again] == [(i, "duplicate") for i in ids]

    # Bad readings are answered one by one, with why; the good one beside them is kept.
    later = Reading(DEVICE, readings[-1].interval_start_s + 1800, 500, 200, 40, None, None)
    forged = bytearray(sign_reading(later, KeyFile.generate("x").seed))
    stranger = sign_reading(Reading("no-such-device", later.interval_start_s, 1, 0, 0, None, None),
                            meter.key.seed)  # fmt: skip
    good = Reading(DEVICE, later.interval_start_s + 1800, 400, 100, 40, None, None)
    mixed = statuses(
        post(meter, [bytes(forged), stranger, b"not a reading", sign_reading(good, meter.key.seed)])
    )
    assert mixed[0][1:] == ("rejected", ["bad_signature"])
    assert mixed[1][1:] == ("rejected", ["unknown_device"])
    assert mixed[2][0] is None and mixed[2][1] == "rejected" and mixed[2][2]
    assert mixed[3] == (reading_id(DEVICE, good.interval_start_s), "accepted", [])

    # The stored day becomes one batch on the ledger the server runs.
    proc = run_cli(
        "issue-days", "-d", meter.server.data_dir, "--node", f"{meter.server.url}/node",
        "--key", "mrv", "--until-day", DAY, "--json",
    )  # fmt: skip
    batch_id = batch_id_for(DEVICE, readings[0].interval_start_s)
    days = {d["batch_id"]: d["outcome"] for d in json.loads(proc.stdout)["days"]}
    assert days == {batch_id: "ok"}, days
    batch = httpx.get(f"{meter.server.url}/api/v1/batches/{batch_id}").json()
    kept = [*readings, good]
    assert batch["measured_intervals"] == len(kept)
    assert batch["self_consumed_wh"] == sum(self_consumed_wh(r) for r in kept)
    assert batch["owner"] == OWNER and batch["co2_g"] > 0


def test_bad_bodies_are_refused_with_the_reason(meter: Meter) -> None:
    as_json = httpx.post(meter.url, json=[], timeout=30)
    assert as_json.status_code == 415 and contract.CONTENT_TYPE in as_json.json()["detail"]
    not_a_batch = httpx.post(meter.url, content=b"\x81\xa1a\x01", headers=MSGPACK, timeout=30)
    assert not_a_batch.status_code == 400 and "MessagePack array" in not_a_batch.json()["detail"]
    too_big = post(meter, [b"x" * 60_000] * 18)  # over 1 MiB
    assert too_big.status_code == 413
    empty = post(meter, [])
    assert empty.status_code == 200 and empty.json() == {"results": []}
    # One reading too many: the whole body is refused and nothing of it is stored.
    first = parse_iso_date("2025-01-01")
    assert first is not None
    start = jst_midnight_s(first) + 18 * 3600  # 18:00 JST: dark, so any generation is 0
    valid = [
        sign_reading(Reading(DEVICE, start + i * 86_400, 0, 0, 40, None, None), meter.key.seed)
        for i in range(contract.MAX_BATCH_READINGS + 1)
    ]
    too_many = post(meter, valid)
    assert too_many.status_code == 413 and "at most" in too_many.json()["detail"]
    assert [s for _, s, _ in statuses(post(meter, valid[:2]))] == ["accepted", "accepted"]
