"""The ECHONET Lite agent: a home's meter and solar unit, read over UDP, become signed readings.

At each 30-minute boundary the agent takes a ``Snapshot`` of three cumulative registers [mWh]:

- generated: the solar unit's (0x0279) 0xE1, read when the agent polls;
- imported / exported: the smart meter's (0x0288) fixed-time data 0xEA / 0xEB, which the meter
  itself recorded at the boundary (stamped with its JST date-time), scaled by the unit 0xE1 and
  the coefficient 0xD3. A meter without fixed-time data is read at 0xE0 / 0xE3 instead.

Two snapshots one interval apart make a ``Reading`` for that interval: each energy is the
difference of the registers floored to whole Wh (so the sums over a day telescope exactly), the
counters are the registers at the interval's end [Wh]. The reading is signed with the device's
meter key (``reco2.mrv.readings.sign_reading``) and put in an outbox, which a ``Sender`` (the
project's MQTT or HTTP sender, ``reco2.ingest.sim_send``) empties; what it could not deliver is
sent again after the next boundary (the intake is idempotent).

What cannot become a reading becomes a ``Rejection``: kept in ``Agent.rejections``, logged with
its reason, and the agent goes on. Reasons, in the order they are found:
``device_unreachable`` (no answer after the retries), ``property_unavailable`` (Get_SNA: the
object or the property does not exist), a ``PropertyFault`` of the data (``no_data`` for
0xFFFFFFFE, ``wrong_length``, ``unknown_unit``, ...), ``fixed_time_mismatch`` (the meter's
fixed-time stamp is not the boundary), then for the interval itself ``no_start_snapshot`` (the
previous boundary gave no snapshot), ``intervals_missed`` (the agent was not polling) and
``counter_ran_backwards`` (a register reset or wrapped: the agent starts again from the new
values).

Time arrives from the ``clock`` argument (UTC seconds): tests drive simulated time with it, the
`reco2 agent` command passes the wall clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from reco2.echonet import objects
from reco2.echonet.client import ClientFault, EchonetClient, GetAnswer
from reco2.echonet.frame import EOJ
from reco2.echonet.objects import PropertyFault
from reco2.ingest.sim_send import SendSummary, send_http, send_mqtt
from reco2.ledger.calendar import INTERVAL_S
from reco2.mrv.readings import Reading, sign_reading

log = logging.getLogger("reco2.echonet.agent")

#: The objects' classes the agent speaks to, with their names (ECHONET Lite Appendix).
KNOWN_CLASSES: Final = {
    objects.SMART_METER_CLASS: "low-voltage smart electric energy meter",
    objects.SOLAR_CLASS: "household solar power generation",
}

#: How long after a boundary its snapshot may still be taken [s]. The solar unit keeps no
#: fixed-time data, so its register is read when the agent polls: later than this and the
#: interval would borrow too much of the next one.
MAX_LAG_S: Final = 300

Sender = Callable[[Sequence[tuple[str, bytes]]], SendSummary]


class RejectReason(StrEnum):
    device_unreachable = "device_unreachable"
    property_unavailable = "property_unavailable"
    fixed_time_mismatch = "fixed_time_mismatch"
    polled_too_late = "polled_too_late"
    no_start_snapshot = "no_start_snapshot"
    intervals_missed = "intervals_missed"
    counter_ran_backwards = "counter_ran_backwards"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Intervals [start, end) that give no reading, and why (a ``RejectReason`` or a
    ``PropertyFault`` value) with a human-readable detail."""

    start_s: int
    end_s: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Registers at a 30-minute boundary [mWh]."""

    boundary_s: int
    generated_mwh: int
    imported_mwh: int
    exported_mwh: int
    meter_source: str  # "fixed_time" (0xEA/0xEB) or "instant" (0xE0/0xE3)


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    detail: str


class FixedTimeNotYet(Exception):
    """The meter has not yet recorded the boundary's fixed-time data: try again later."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device_id: str
    meter_seed: bytes  # the device's meter key (Ed25519 seed, 32 bytes)
    meter_address: tuple[str, int]
    solar_address: tuple[str, int]
    meter: EOJ = objects.METER_EOJ
    solar: EOJ = objects.SOLAR_EOJ

    def __post_init__(self) -> None:
        if len(self.meter_seed) != 32:
            raise ValueError("a meter key seed is 32 bytes")
        for eoj, want in (
            (self.meter, objects.SMART_METER_CLASS),
            (self.solar, objects.SOLAR_CLASS),
        ):
            if eoj.class_code != want:
                raise ValueError(
                    f"object {eoj}: class {eoj.class_code:#06x} is not a "
                    f"{KNOWN_CLASSES[want]} ({want:#06x})"
                )


@dataclass
class TickResult:
    boundary_s: int | None = None  # the boundary handled, None when nothing was due
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    sent: SendSummary | None = None
    retry_later: bool = False


class Agent:
    """Reads the devices at each 30-minute boundary; ``tick()`` does one step, ``run()`` loops."""

    def __init__(
        self,
        config: AgentConfig,
        client: EchonetClient,
        clock: Callable[[], float],
        sender: Sender | None = None,
        max_lag_s: int = MAX_LAG_S,
    ) -> None:
        self.config = config
        self.max_lag_s = max_lag_s
        self._waiting: str | None = None
        self.client = client
        self.clock = clock
        self.sender = sender
        self.readings: list[Reading] = []
        self.rejections: list[Rejection] = []
        self.outbox: list[tuple[str, bytes]] = []
        self.sent = 0
        self.last: Snapshot | None = None
        self.done_boundary_s: int | None = None
        self.started = False

    # ---- one step -----------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Take the current boundary's snapshot unless done already; make the interval's reading
        or rejection; hand the outbox to the sender."""
        now_s = int(self.clock())
        boundary = now_s - now_s % INTERVAL_S
        result = TickResult()
        if boundary != self.done_boundary_s:
            late_s = now_s - boundary
            if late_s > self.max_lag_s:
                # Too long after the boundary for the solar register to stand for it.
                self.done_boundary_s = boundary
                if self.started:
                    failure = (
                        Failure(RejectReason.fixed_time_mismatch, self._waiting)
                        if self._waiting
                        else Failure(
                            RejectReason.polled_too_late,
                            f"first poll {late_s} s after the boundary (at most "
                            f"{self.max_lag_s} s)",
                        )
                    )
                    result.boundary_s = boundary
                    self._advance(boundary, failure, result)
                self._waiting = None
            else:
                try:
                    taken = self.snapshot(boundary)
                except FixedTimeNotYet as waiting:
                    self._waiting = str(waiting)
                    result.retry_later = True
                else:
                    self._waiting = None
                    result.boundary_s = boundary
                    self._advance(boundary, taken, result)
                    self.done_boundary_s = boundary
        if self.outbox and self.sender is not None:
            result.sent = self.flush()
        return result

    def _advance(self, boundary: int, taken: Snapshot | Failure, result: TickResult) -> None:
        previous, started = self.last, self.started
        self.started = True
        start = boundary - INTERVAL_S
        if isinstance(taken, Failure):
            self.last = None
            if started:
                self._reject(result, start, boundary, taken.reason, taken.detail)
            return
        self.last = taken
        if not started:
            log.info("%s: first snapshot at %d: %s", self.config.device_id, boundary, taken)
            return
        if previous is None:
            detail = "the previous boundary gave no snapshot"
            self._reject(result, start, boundary, RejectReason.no_start_snapshot, detail)
            return
        if previous.boundary_s != start:
            detail = f"no snapshot between {previous.boundary_s} and {boundary}"
            self._reject(
                result, previous.boundary_s, boundary, RejectReason.intervals_missed, detail
            )
            return
        reading = make_reading(self.config.device_id, previous, taken)
        if isinstance(reading, Failure):
            self._reject(result, start, boundary, reading.reason, reading.detail)
            return
        self.readings.append(reading)
        result.readings.append(reading)
        self.outbox.append((reading.device_id, sign_reading(reading, self.config.meter_seed)))

    def _reject(self, result: TickResult, start: int, end: int, reason: str, detail: str) -> None:
        rejection = Rejection(start, end, str(reason), detail)
        self.rejections.append(rejection)
        result.rejections.append(rejection)
        log.warning(
            "%s: no reading for [%d, %d): %s (%s)",
            self.config.device_id,
            start,
            end,
            rejection.reason,
            detail,
        )

    def flush(self) -> SendSummary:
        """Send the outbox; what is not acknowledged stays for the next try."""
        assert self.sender is not None, "flushing needs a sender"
        batch = list(self.outbox)
        summary = self.sender(batch)
        if summary.ok:
            del self.outbox[: len(batch)]
            self.sent += len(batch)
        else:
            log.warning(
                "%s: %d readings not delivered, kept for the next try: %s",
                self.config.device_id,
                len(batch),
                "; ".join(summary.errors) or summary.as_dict(),
            )
        return summary

    # ---- reading the devices ----------------------------------------------------------------

    def snapshot(self, boundary_s: int) -> Snapshot | Failure:
        """The registers at ``boundary_s``, or why they cannot be had; raises ``FixedTimeNotYet``
        while the meter's fixed-time data still shows an earlier boundary."""
        cfg = self.config
        solar = self._get(cfg.solar_address, cfg.solar, (objects.SOLAR_CUMULATIVE_GENERATED,))
        if isinstance(solar, Failure):
            return solar
        generated = _register(
            solar, objects.SOLAR_CUMULATIVE_GENERATED, objects.SOLAR_REGISTER_MAX, cfg.solar
        )
        if isinstance(generated, Failure):
            return generated
        wanted = (
            objects.METER_UNIT,
            objects.METER_COEFFICIENT,
            objects.METER_FIXED_TIME_NORMAL,
            objects.METER_FIXED_TIME_REVERSE,
        )
        meter = self._get(cfg.meter_address, cfg.meter, wanted)
        if isinstance(meter, Failure):
            return meter
        step_mwh = _meter_step_mwh(meter, cfg.meter)
        if isinstance(step_mwh, Failure):
            return step_mwh
        fixed = _fixed_time(meter, boundary_s, cfg.meter)
        if fixed is None:  # no fixed-time data: the registers as they are now
            instant = self._get(
                cfg.meter_address,
                cfg.meter,
                (objects.METER_CUMULATIVE_NORMAL, objects.METER_CUMULATIVE_REVERSE),
            )
            if isinstance(instant, Failure):
                return instant
            normal = _register(
                instant, objects.METER_CUMULATIVE_NORMAL, objects.METER_REGISTER_MAX, cfg.meter
            )
            reverse = _register(
                instant, objects.METER_CUMULATIVE_REVERSE, objects.METER_REGISTER_MAX, cfg.meter
            )
            source = "instant"
        elif isinstance(fixed, Failure):
            return fixed
        else:
            normal, reverse = fixed
            source = "fixed_time"
        if isinstance(normal, Failure):
            return normal
        if isinstance(reverse, Failure):
            return reverse
        return Snapshot(
            boundary_s,
            generated * objects.SOLAR_STEP_MWH,
            normal * step_mwh,
            reverse * step_mwh,
            source,
        )

    def _get(
        self, address: tuple[str, int], eoj: EOJ, epcs: tuple[int, ...]
    ) -> GetAnswer | Failure:
        answer = self.client.get(address, eoj, epcs)
        if isinstance(answer, ClientFault):
            return Failure(
                RejectReason.device_unreachable,
                f"{eoj} at {address[0]}:{address[1]}: {answer.value} after "
                f"{self.client.retries + 1} attempts",
            )
        return answer

    # ---- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, poll_interval_s: float = 10.0) -> None:
        """Tick every ``poll_interval_s`` until ``stop`` is set; nothing a device sends ends it."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a bug must not silence the meter: log it and go on
                log.exception("%s: tick failed", self.config.device_id)
            stop.wait(poll_interval_s)


# ---- pure helpers -----------------------------------------------------------------------------


def make_reading(device_id: str, start: Snapshot, end: Snapshot) -> Reading | Failure:
    """The reading of [start, end): register differences floored to Wh, end registers as
    counters; ``counter_ran_backwards`` when a register went down."""
    assert end.boundary_s == start.boundary_s + INTERVAL_S, "a reading spans one interval"
    names = ("generated", "imported", "exported")
    before = (start.generated_mwh, start.imported_mwh, start.exported_mwh)
    after = (end.generated_mwh, end.imported_mwh, end.exported_mwh)
    for name, low, high in zip(names, before, after, strict=True):
        if high < low:
            return Failure(
                RejectReason.counter_ran_backwards,
                f"{name} register went from {low} to {high} mWh",
            )
    generation, imported, exported = (
        high // 1_000 - low // 1_000 for low, high in zip(before, after, strict=True)
    )
    return Reading(
        device_id,
        start.boundary_s,
        generation,
        exported,
        imported,
        end.generated_mwh // 1_000,
        end.exported_mwh // 1_000,
    )


def _value(answer: GetAnswer, epc: int, eoj: EOJ) -> bytes | Failure:
    edt = answer.values.get(epc)
    if edt is None:
        return Failure(
            RejectReason.property_unavailable, f"{eoj} gave no EPC {epc:#04x} ({answer.esv.name})"
        )
    return edt


def _register(answer: GetAnswer, epc: int, maximum: int, eoj: EOJ) -> int | Failure:
    edt = _value(answer, epc, eoj)
    if isinstance(edt, Failure):
        return edt
    value = objects.decode_uint32_register(edt, maximum)
    if isinstance(value, PropertyFault):
        return Failure(value, f"{eoj} EPC {epc:#04x} = {edt.hex()}")
    return value


def _meter_step_mwh(answer: GetAnswer, eoj: EOJ) -> int | Failure:
    """One register step [mWh] = unit (0xE1) x coefficient (0xD3, 1 when absent)."""
    edt = _value(answer, objects.METER_UNIT, eoj)
    if isinstance(edt, Failure):
        return edt
    unit = objects.decode_unit_mwh(edt)
    if isinstance(unit, PropertyFault):
        return Failure(unit, f"{eoj} EPC 0xe1 = {edt.hex()}")
    coefficient = 1
    raw = answer.values.get(objects.METER_COEFFICIENT)
    if raw is not None:
        decoded = objects.decode_coefficient(raw)
        if isinstance(decoded, PropertyFault):
            return Failure(decoded, f"{eoj} EPC 0xd3 = {raw.hex()}")
        coefficient = decoded
    return unit * coefficient


def _fixed_time(answer: GetAnswer, boundary_s: int, eoj: EOJ) -> tuple[int, int] | Failure | None:
    """(normal, reverse) register steps the meter recorded at ``boundary_s``; None when it
    keeps no fixed-time data."""
    normal_edt = answer.values.get(objects.METER_FIXED_TIME_NORMAL)
    reverse_edt = answer.values.get(objects.METER_FIXED_TIME_REVERSE)
    if normal_edt is None or reverse_edt is None:
        return None
    out: list[int] = []
    for epc, edt in (
        (objects.METER_FIXED_TIME_NORMAL, normal_edt),
        (objects.METER_FIXED_TIME_REVERSE, reverse_edt),
    ):
        # The stamp first: a register not yet updated is not "no data" but "not yet".
        at_s = objects.decode_date_time(edt[:7]) if len(edt) == 11 else None
        if isinstance(at_s, int) and at_s < boundary_s:
            raise FixedTimeNotYet(
                f"{eoj} EPC {epc:#04x} still stamped {at_s}, waiting for {boundary_s}"
            )
        decoded = objects.decode_fixed_time(edt)
        if isinstance(decoded, PropertyFault):
            return Failure(decoded, f"{eoj} EPC {epc:#04x} = {edt.hex()}")
        if decoded.at_s != boundary_s:
            return Failure(
                RejectReason.fixed_time_mismatch,
                f"{eoj} EPC {epc:#04x} is stamped {decoded.at_s}, the boundary is {boundary_s}",
            )
        out.append(decoded.value)
    return out[0], out[1]


# ---- senders ----------------------------------------------------------------------------------


def mqtt_sender(host: str, port: int = 1883, ack_timeout_s: float = 30.0) -> Sender:
    """Publish through the project's MQTT sender (QoS 1, waits for every PUBACK)."""

    def send(readings: Sequence[tuple[str, bytes]]) -> SendSummary:
        return send_mqtt(
            list(readings),
            host,
            port,
            ack_timeout_s=ack_timeout_s,
            connect_timeout_s=min(ack_timeout_s, 10.0),
        )

    return send


def http_sender(url: str, retry_for_s: float = 30.0) -> Sender:
    """POST through the project's HTTP sender."""

    def send(readings: Sequence[tuple[str, bytes]]) -> SendSummary:
        return send_http((raw for _, raw in readings), url, retry_for_s=retry_for_s)

    return send
