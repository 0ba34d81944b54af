"""Senders of the simulated fleet, without a broker or an intake: HTTP batches, retries and
answers through httpx's mock transport; the MQTT sender's refusal when no broker answers."""

from __future__ import annotations

import socket

import httpx
import pytest

from reco2.ingest import contract
from reco2.ingest.sim_send import Pacer, batches, send_http, send_mqtt


def raws(count: int, size: int = 150) -> list[bytes]:
    return [i.to_bytes(4, "big") + bytes(size - 4) for i in range(count)]


class Intake:
    """A fake intake: answers each batch, after ``failures`` refusals with ``status``."""

    def __init__(self, failures: int = 0, status: int = 503) -> None:
        self.failures = failures
        self.status = status
        self.bodies: list[list[bytes]] = []
        self.seen: set[bytes] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == contract.HTTP_PATH
        assert request.headers["content-type"] == contract.CONTENT_TYPE
        if self.failures:
            self.failures -= 1
            return httpx.Response(self.status, text="try again")
        batch = contract.decode_batch(request.content)
        self.bodies.append(batch)
        results: list[dict[str, object]] = []
        for raw in batch:
            status = "duplicate" if raw in self.seen else "accepted"
            if raw[-1:] == b"\x01":
                status = "rejected"
            self.seen.add(raw)
            results.append({"reading_id": None, "status": status, "reasons": []})
        return httpx.Response(200, json={"results": results})


def client(intake: Intake) -> httpx.Client:
    return httpx.Client(base_url="http://intake.test", transport=httpx.MockTransport(intake))


def test_batches_respect_count_and_bytes() -> None:
    assert [len(b) for b in batches(raws(10), 4, 1 << 20)] == [4, 4, 2]
    sized = list(batches(raws(100, 200), 4_096, 2_000))
    assert sum(len(b) for b in sized) == 100
    assert all(len(contract.encode_batch(b)) <= 2_000 for b in sized)


def test_http_sends_batches_of_at_most_4096_and_counts_statuses() -> None:
    intake = Intake()
    readings = raws(5_000)
    readings[7] = readings[7][:-1] + b"\x01"  # the fake intake rejects it
    progressed: list[int] = []
    summary = send_http(
        readings + readings[:10],  # ten sent twice
        "http://intake.test",
        client=client(intake),
        progress=progressed.append,
    )
    assert [len(b) for b in intake.bodies] == [4_096, 914]
    assert [raw for body in intake.bodies for raw in body] == readings + readings[:10]
    assert summary.ok and summary.sent == summary.acknowledged == 5_010
    assert summary.by_status == {"accepted": 4_999, "rejected": 2, "duplicate": 9}
    assert sum(progressed) == 5_010 and summary.requests == 2


def test_http_retries_an_unavailable_intake() -> None:
    intake = Intake(failures=2, status=503)
    summary = send_http(raws(10), "http://intake.test", client=client(intake), retry_for_s=10)
    assert summary.ok and summary.retries == 2 and summary.requests == 3
    assert len(intake.bodies) == 1


def test_http_gives_up_and_stops_when_the_intake_stays_down() -> None:
    intake = Intake(failures=10**6, status=503)
    summary = send_http(
        raws(30), "http://intake.test", client=client(intake), batch_size=10, retry_for_s=0.3
    )
    assert not summary.ok
    assert summary.sent == 10 and summary.failed == 10 and summary.acknowledged == 0
    assert summary.errors and summary.errors[0].startswith("gave up")


def test_http_does_not_retry_a_refused_batch() -> None:
    intake = Intake(failures=1, status=413)
    summary = send_http(raws(20), "http://intake.test", client=client(intake), batch_size=10)
    assert summary.failed == 10 and summary.acknowledged == 10 and summary.requests == 2
    assert "HTTP 413" in summary.errors[0]


def test_http_batch_size_is_limited() -> None:
    with pytest.raises(ValueError):
        send_http([], "http://intake.test", batch_size=4_097)


def test_pacer_holds_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("reco2.ingest.sim_send.time.sleep", slept.append)
    pacer = Pacer(100.0, clock=lambda: 0.0)  # time stands still: every reading must wait
    for _ in range(3):
        pacer.wait()
    assert slept == pytest.approx([0.01, 0.02])


def test_mqtt_without_a_broker_reports_it() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    summary = send_mqtt([("dev", b"x")], "127.0.0.1", port, connect_timeout_s=0.5)
    assert not summary.ok and summary.sent == 0
    assert "cannot connect" in summary.errors[0]
