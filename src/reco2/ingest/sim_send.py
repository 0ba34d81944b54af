"""Sending signed readings to the intake, as meters would: over MQTT or over HTTP.

The wire contract is ``reco2.ingest.contract``:

- MQTT: each reading is published to ``reco2/v1/readings/{device_id}`` with QoS 1; a reading
  counts as acknowledged once the broker's PUBACK has arrived. Up to ``window`` readings are in
  flight at once. When the broker goes away, paho reconnects (backing off up to 5 s) and sends
  every unacknowledged reading again (MQTT's at-least-once; the intake is idempotent).
- HTTP: batches of at most 4,096 readings (and 1 MiB) are POSTed to ``{url}/v1/readings``; a
  batch counts as acknowledged once the intake answered 200 with one result per reading
  (accepted, duplicate or rejected). A connection failure or a 502/503/504/429 is retried with
  backoff for up to ``retry_for_s``; the batch is sent again unchanged.

Acknowledgement is waited for with paho's ``on_publish`` callback rather than
``MQTTMessageInfo.wait_for_publish``: a message published while the connection is down keeps
``rc = MQTT_ERR_NO_CONN`` in its info even after paho delivered it on reconnection, and
``wait_for_publish`` then raises although the broker acknowledged it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from reco2.ingest import contract

#: Per-batch overhead of the MessagePack array and bin headers is at most 5 bytes per reading
#: plus 5 for the array; this margin keeps every body under the intake's byte limit.
_BODY_MARGIN: Final = 16
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})

Progress = Callable[[int], None]  # called with the number of readings just acknowledged


@dataclass(slots=True)
class SendSummary:
    """What a sender did. ``sent``: readings handed to the transport; ``acknowledged``: readings
    the broker PUBACKed or the intake answered for; ``failed``: sent and never acknowledged."""

    transport: str
    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    reconnects: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors and self.acknowledged == self.sent

    def as_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "by_status": dict(sorted(self.by_status.items())),
            "requests": self.requests,
            "retries": self.retries,
            "reconnects": self.reconnects,
            "elapsed_s": round(self.elapsed_s, 3),
            "errors": list(self.errors),
        }


class Pacer:
    """Holds a sender to ``rate`` readings per second (0 = as fast as possible)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.start = clock()
        self.count = 0

    def wait(self, n: int = 1) -> None:
        """Block until the next ``n`` readings may go."""
        if self.rate > 0:
            due = self.start + self.count / self.rate
            delay = due - self.clock()
            if delay > 0:
                time.sleep(delay)
        self.count += n


# ---- HTTP ----------------------------------------------------------------------------------


def batches(raws: Iterable[bytes], max_readings: int, max_bytes: int) -> Iterable[list[bytes]]:
    """Consecutive batches of at most ``max_readings`` readings and about ``max_bytes``."""
    batch: list[bytes] = []
    size = _BODY_MARGIN
    for raw in raws:
        cost = len(raw) + 5
        if batch and (len(batch) >= max_readings or size + cost > max_bytes):
            yield batch
            batch, size = [], _BODY_MARGIN
        batch.append(raw)
        size += cost
    if batch:
        yield batch


def send_http(
    raws: Iterable[bytes],
    url: str,
    *,
    batch_size: int = contract.MAX_BATCH_READINGS,
    rate: float = 0.0,
    timeout_s: float = 60.0,
    retry_for_s: float = 120.0,
    progress: Progress | None = None,
    client: httpx.Client | None = None,
) -> SendSummary:
    """POST readings in batches; returns counts by status.

    Stops early (the rest unsent, counted in ``errors``) when a batch still cannot be
    delivered after ``retry_for_s`` of retries.
    """
    if not 1 <= batch_size <= contract.MAX_BATCH_READINGS:
        raise ValueError(f"batch size must be 1..{contract.MAX_BATCH_READINGS}")
    summary = SendSummary("http")
    own = client is None
    http = client or httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)
    pacer = Pacer(rate)
    started = time.monotonic()
    try:
        for batch in batches(raws, batch_size, contract.MAX_BATCH_BYTES):
            pacer.wait(len(batch))
            summary.sent += len(batch)
            outcome = _post_batch(http, batch, summary, retry_for_s)
            if outcome != "ok":
                summary.failed += len(batch)
                if outcome == "gave up":  # the intake is gone: stop, the rest stays unsent
                    break
                continue
            summary.acknowledged += len(batch)
            if progress is not None:
                progress(len(batch))
    finally:
        if own:
            http.close()
        summary.elapsed_s = time.monotonic() - started
    return summary


def _post_batch(
    http: httpx.Client, batch: list[bytes], summary: SendSummary, retry_for_s: float
) -> str:
    """POST one batch until answered: "ok", "refused" (a final error) or "gave up"."""
    body = contract.encode_batch(batch)
    headers = {"content-type": contract.CONTENT_TYPE}
    deadline = time.monotonic() + retry_for_s
    delay = 0.2
    while True:
        summary.requests += 1
        problem: str
        try:
            response = http.post(contract.HTTP_PATH, content=body, headers=headers)
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                return "ok" if _count_results(response, batch, summary) else "refused"
            if response.status_code not in RETRY_STATUSES:
                summary.errors.append(
                    f"HTTP {response.status_code} for a batch of {len(batch)}: "
                    f"{response.text[:200]}"
                )
                return "refused"
            problem = f"HTTP {response.status_code}"
        if time.monotonic() + delay > deadline:
            summary.errors.append(f"gave up after {retry_for_s:.0f} s of retries: {problem}")
            return "gave up"
        summary.retries += 1
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _count_results(response: httpx.Response, batch: list[bytes], summary: SendSummary) -> bool:
    try:
        results = response.json()["results"]
        statuses = [str(item["status"]) for item in results]
    except (ValueError, KeyError, TypeError) as exc:
        summary.errors.append(f"unreadable answer for a batch of {len(batch)}: {exc}")
        return False
    if len(statuses) != len(batch):
        summary.errors.append(f"{len(statuses)} results for a batch of {len(batch)} readings")
        return False
    for status in statuses:
        summary.by_status[status] = summary.by_status.get(status, 0) + 1
    return True


# ---- MQTT ----------------------------------------------------------------------------------


class _Acks:
    """PUBACKs seen (by message id), connection state and counters, shared with paho's thread."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.acked: set[int] = set()
        self.connected = False
        self.connects = 0
        self.refused: str | None = None


def send_mqtt(
    readings: Iterable[tuple[str, bytes]],
    host: str,
    port: int = 1883,
    *,
    rate: float = 0.0,
    window: int = 1_000,
    ack_timeout_s: float = 120.0,
    connect_timeout_s: float = 30.0,
    client_id: str | None = None,
    progress: Progress | None = None,
) -> SendSummary:
    """Publish ``(device_id, raw)`` readings with QoS 1 and wait for every PUBACK.

    ``ack_timeout_s``: how long to wait without any acknowledgement (broker gone and not back)
    before giving up; the readings still unacknowledged then are ``failed``.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    summary = SendSummary("mqtt")
    acks = _Acks()

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with acks.cond:
            if getattr(reason, "is_failure", False):
                acks.refused = str(reason)
            else:
                acks.connected = True
                acks.connects += 1
            acks.cond.notify_all()

    def on_disconnect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with acks.cond:
            acks.connected = False
            acks.cond.notify_all()

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with acks.cond:
            acks.acked.add(mid)
            acks.cond.notify_all()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"reco2-sim-{os.getpid()}-{time.monotonic_ns() % 10**9}",
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_publish = on_publish
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)  # unlimited: the window bounds what is queued
    client.reconnect_delay_set(min_delay=1, max_delay=5)
    started = time.monotonic()
    pending: deque[int] = deque()

    def drain(down_to: int) -> bool:
        """Wait until at most ``down_to`` readings are unacknowledged; False on timeout."""
        last_progress = time.monotonic()
        done = 0
        with acks.cond:
            while len(pending) > down_to:
                head = pending[0]
                if head in acks.acked:
                    acks.acked.discard(head)
                    pending.popleft()
                    done += 1
                    last_progress = time.monotonic()
                    continue
                if time.monotonic() - last_progress > ack_timeout_s:
                    break
                acks.cond.wait(0.5)
        summary.acknowledged += done
        if done and progress is not None:
            progress(done)
        return len(pending) <= down_to

    try:
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
        with acks.cond:
            acks.cond.wait_for(
                lambda: acks.connected or acks.refused is not None, timeout=connect_timeout_s
            )
            if not acks.connected:
                why = acks.refused or f"no connection within {connect_timeout_s:.0f} s"
                summary.errors.append(f"cannot connect to mqtt://{host}:{port}: {why}")
                return summary
        stalled = False
        pacer = Pacer(rate)  # from the connection on, not before
        for device_id, raw in readings:
            pacer.wait()
            info = client.publish(contract.topic_for(device_id), raw, qos=contract.QOS)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # cannot happen with an unlimited queue
                summary.errors.append("paho refused a message: queue full")
                break
            pending.append(info.mid)
            summary.sent += 1
            if len(pending) >= window and not drain(window // 2):
                stalled = True  # no PUBACK for ack_timeout_s: stop sending
                break
        if stalled or not drain(0):
            summary.errors.append(
                f"{len(pending)} readings unacknowledged after {ack_timeout_s:.0f} s without "
                "any PUBACK"
            )
        summary.failed = summary.sent - summary.acknowledged
    finally:
        client.disconnect()
        client.loop_stop()
        summary.reconnects = max(0, acks.connects - 1)
        summary.elapsed_s = time.monotonic() - started
    return summary
