"""A simulated ECHONET Lite node for tests: a smart meter (0x0288) and a solar unit (0x0279).

The node binds one UDP socket (default 127.0.0.1:3610; tests pass port 0 for a free one, or
another loopback address such as 127.0.0.2 to keep port 3610) and answers from a thread:

- Get (0x62) to an object it holds: Get_Res (0x72) when it has every property asked for, else
  Get_SNA (0x52) with the properties it has and the others with PDC 0;
- Get to an object it does not hold: Get_SNA with every property at PDC 0;
- SetI/SetC/INF_REQ: the matching _SNA (the node is read-only); anything else, and any datagram
  that is not a frame, is counted and dropped.

Registers follow a ``Profile`` of 30-minute intervals (generation and house consumption [Wh],
uniform power within each interval) in *simulated* time: the caller moves the node's clock with
``set_time``; nothing here reads the wall clock. Over an interval the house uses its own
generation first, the rest comes from the grid (meter 0xE0, normal direction) or goes to it
(meter 0xE3 reverse, and the solar unit's 0xE3 sold). The meter's fixed-time data (0xEA/0xEB)
holds the registers at the latest 30-minute boundary, stamped in JST.

Faults for tests: ``no_data`` (EPCs answered with 0xFFFFFFFE), ``garble_next`` (the next answers
replaced by malformed frames of named kinds), ``drop_next`` (the next requests unanswered),
``stray_next`` (a stray frame and junk sent before the next answers), and ``reset_registers``
(a counter reset: the registers start again from 0).
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from reco2.echonet import frame, objects
from reco2.echonet.frame import EOJ, ESV, Frame, FrameError, Property
from reco2.ledger.calendar import INTERVAL_S

DEFAULT_PORT: Final = 3610
_SNA_OF: Final = {ESV.SetI: ESV.SetI_SNA, ESV.SetC: ESV.SetC_SNA, ESV.INF_REQ: ESV.INF_SNA}


@dataclass(frozen=True, slots=True)
class Interval:
    """One 30-minute interval of the profile [Wh]."""

    generation_wh: int
    consumption_wh: int

    @property
    def export_wh(self) -> int:
        return max(0, self.generation_wh - self.consumption_wh)

    @property
    def import_wh(self) -> int:
        return max(0, self.consumption_wh - self.generation_wh)


@dataclass(frozen=True, slots=True)
class Profile:
    """Intervals from ``start_s`` [UTC s, on the 30-minute grid]; zero outside them."""

    start_s: int
    intervals: tuple[Interval, ...]

    def __post_init__(self) -> None:
        assert self.start_s % INTERVAL_S == 0, "a profile starts on the 30-minute grid"
        for interval in self.intervals:
            assert interval.generation_wh >= 0, "generation is never negative"
            assert interval.consumption_wh >= 0, "consumption is never negative"

    def cumulative_mwh(self, at_s: int) -> tuple[int, int, int]:
        """Energy from ``start_s`` to ``at_s`` [mWh]: (generated, imported, exported).

        Within an interval power is uniform, so a part of it counts pro rata (floored to the
        mWh); at a boundary the sums are exact.
        """
        elapsed_s = max(0, at_s - self.start_s)
        whole, part_s = divmod(elapsed_s, INTERVAL_S)
        done = self.intervals[:whole]
        generated = sum(i.generation_wh for i in done) * 1_000
        imported = sum(i.import_wh for i in done) * 1_000
        exported = sum(i.export_wh for i in done) * 1_000
        if whole < len(self.intervals) and part_s:
            now = self.intervals[whole]
            generated += now.generation_wh * 1_000 * part_s // INTERVAL_S
            imported += now.import_wh * 1_000 * part_s // INTERVAL_S
            exported += now.export_wh * 1_000 * part_s // INTERVAL_S
        return generated, imported, exported

    def generation_w(self, at_s: int) -> int:
        """Instantaneous generation [W] (the interval's mean power)."""
        index = (at_s - self.start_s) // INTERVAL_S
        if not 0 <= index < len(self.intervals):
            return 0
        return self.intervals[index].generation_wh * 3_600 // INTERVAL_S


class Garble(StrEnum):
    """Kinds of malformed answer the node can be told to send."""

    truncated = "truncated"  # the answer cut inside its last EDT
    wrong_ehd = "wrong_ehd"  # EHD1 0x20
    trailing = "trailing"  # two bytes after the last property
    unknown_esv = "unknown_esv"  # ESV 0x99
    junk = "junk"  # three bytes that are no frame at all


@dataclass
class Registers:
    """Where the node's cumulative registers start [mWh] (a reset moves the origin)."""

    generated_mwh: int = 0
    imported_mwh: int = 0
    exported_mwh: int = 0


@dataclass
class NodeStats:
    requests: int = 0
    answered: int = 0
    dropped: int = 0
    garbled: int = 0
    undecodable: int = 0
    last_error: str = ""


@dataclass
class SimulatedNode:
    """The simulated node; ``start()`` binds and serves, ``stop()`` ends it."""

    profile: Profile
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    meter: EOJ = objects.METER_EOJ
    solar: EOJ = objects.SOLAR_EOJ
    #: 0xE1 unit code of the meter's registers, and its 0xD3 coefficient.
    meter_unit_code: int = 0x03
    meter_coefficient: int = 1
    #: Where the registers start [mWh].
    origin: Registers = field(default_factory=Registers)
    #: Whether the meter keeps 30-minute fixed-time data (0xEA/0xEB).
    fixed_time: bool = True
    time_s: int = 0
    stats: NodeStats = field(default_factory=NodeStats)
    #: (class code, EPC) answered with the "no data" value.
    no_data: set[tuple[int, int]] = field(default_factory=set)
    _garbles: deque[Garble] = field(default_factory=deque)
    _drops: int = 0
    _strays: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    # ---- life ---------------------------------------------------------------------------

    def start(self) -> SimulatedNode:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, self.port))
        sock.settimeout(0.1)
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="echonet-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._thread = self._sock = None

    def __enter__(self) -> SimulatedNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    # ---- what tests do ------------------------------------------------------------------

    def set_time(self, at_s: int) -> None:
        """Move the simulated clock [UTC s]; the registers follow the profile."""
        with self._lock:
            self.time_s = at_s

    def garble_next(self, *kinds: Garble) -> None:
        with self._lock:
            self._garbles.extend(kinds)

    def drop_next(self, count: int) -> None:
        with self._lock:
            self._drops += count

    def stray_next(self, count: int) -> None:
        with self._lock:
            self._strays += count

    def reset_registers(self) -> None:
        """A counter reset: every register reads 0 from now on, then counts up again."""
        with self._lock:
            generated, imported, exported = self.profile.cumulative_mwh(self.time_s)
            self.origin = Registers(-generated, -imported, -exported)

    # ---- registers ----------------------------------------------------------------------

    def registers_mwh(self, at_s: int) -> tuple[int, int, int]:
        """(generated, imported, exported) register contents at ``at_s`` [mWh]."""
        generated, imported, exported = self.profile.cumulative_mwh(at_s)
        return (
            max(0, self.origin.generated_mwh + generated),
            max(0, self.origin.imported_mwh + imported),
            max(0, self.origin.exported_mwh + exported),
        )

    def _meter_steps(self, mwh: int) -> int:
        step_mwh = objects.METER_UNIT_MWH[self.meter_unit_code] * self.meter_coefficient
        return (mwh // step_mwh) % (objects.METER_REGISTER_MAX + 1)

    def _solar_steps(self, mwh: int) -> int:
        return (mwh // objects.SOLAR_STEP_MWH) % (objects.SOLAR_REGISTER_MAX + 1)

    def _u32(self, class_code: int, epc: int, value: int) -> bytes:
        if (class_code, epc) in self.no_data:
            return objects.u32(objects.NO_DATA_U32)
        return objects.u32(value)

    def _meter_property(self, epc: int) -> bytes | None:
        now = self.time_s
        _, imported, exported = self.registers_mwh(now)
        cls = objects.SMART_METER_CLASS
        if epc == 0x80:  # operation status: on
            return b"\x30"
        if epc == objects.METER_COEFFICIENT:
            return self._u32(cls, epc, self.meter_coefficient)
        if epc == objects.METER_EFFECTIVE_DIGITS:
            return objects.u8(8)
        if epc == objects.METER_UNIT:
            return objects.u8(self.meter_unit_code)
        if epc == objects.METER_CUMULATIVE_NORMAL:
            return self._u32(cls, epc, self._meter_steps(imported))
        if epc == objects.METER_CUMULATIVE_REVERSE:
            return self._u32(cls, epc, self._meter_steps(exported))
        if self.fixed_time and epc in (
            objects.METER_FIXED_TIME_NORMAL,
            objects.METER_FIXED_TIME_REVERSE,
        ):
            boundary = now - now % INTERVAL_S
            _, imported_then, exported_then = self.registers_mwh(boundary)
            normal = epc == objects.METER_FIXED_TIME_NORMAL
            steps = self._meter_steps(imported_then if normal else exported_then)
            return objects.encode_date_time(boundary) + self._u32(cls, epc, steps)
        return None

    def _solar_property(self, epc: int) -> bytes | None:
        generated, _, exported = self.registers_mwh(self.time_s)
        cls = objects.SOLAR_CLASS
        if epc == 0x80:
            return b"\x30"
        if epc == objects.SOLAR_INSTANTANEOUS_W:
            if (cls, epc) in self.no_data:
                return objects.u16(objects.NO_DATA_U16)
            return objects.u16(min(self.profile.generation_w(self.time_s), 0xFFFD))
        if epc == objects.SOLAR_CUMULATIVE_GENERATED:
            return self._u32(cls, epc, self._solar_steps(generated))
        if epc == objects.SOLAR_CUMULATIVE_SOLD:
            return self._u32(cls, epc, self._solar_steps(exported))
        return None

    def _node_profile_property(self, epc: int) -> bytes | None:
        if epc == 0xD6:  # self-node instance list S: count, then the EOJs
            return bytes((2,)) + self.meter.to_bytes() + self.solar.to_bytes()
        return None

    def _lookup(self, deoj: EOJ) -> tuple[EOJ, Callable[[int], bytes | None]] | None:
        for own, read in (
            (self.meter, self._meter_property),
            (self.solar, self._solar_property),
            (frame.NODE_PROFILE, self._node_profile_property),
        ):
            if deoj.class_code == own.class_code and deoj.instance in (0, own.instance):
                return own, read
        return None

    # ---- answering ----------------------------------------------------------------------

    def answer(self, request: Frame) -> Frame | None:
        """The node's answer to a request (None: no answer is due)."""
        found = self._lookup(request.deoj)
        seoj = request.deoj if found is None else found[0]
        if request.esv in _SNA_OF:
            sna = _SNA_OF[request.esv]
            return Frame(request.tid, seoj, request.seoj, sna, request.properties)
        if request.esv is not ESV.Get:
            return None
        answered: list[Property] = []
        complete = True
        for asked in request.properties:
            edt = None if found is None else found[1](asked.epc)
            if edt is None:
                complete = False
                answered.append(Property(asked.epc))
            else:
                answered.append(Property(asked.epc, edt))
        esv = ESV.Get_Res if complete else ESV.Get_SNA
        return Frame(request.tid, seoj, request.seoj, esv, tuple(answered))

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None, "serving needs a bound socket"
        while not self._stop.is_set():
            try:
                raw, peer = sock.recvfrom(2_048)
            except TimeoutError:
                continue
            except OSError:
                return
            for datagram in self._respond(raw):
                try:
                    sock.sendto(datagram, peer)
                except OSError as exc:
                    self.stats.last_error = str(exc)

    def _respond(self, raw: bytes) -> Sequence[bytes]:
        with self._lock:
            self.stats.requests += 1
            try:
                request = frame.decode(raw)
            except FrameError as exc:
                self.stats.undecodable += 1
                self.stats.last_error = str(exc)
                return ()
            if self._drops:
                self._drops -= 1
                self.stats.dropped += 1
                return ()
            reply = self.answer(request)
            if reply is None:
                return ()
            self.stats.answered += 1
            out: list[bytes] = []
            if self._strays:
                self._strays -= 1
                stray_tid = (request.tid + 0x8000) & 0xFFFF
                stray = Frame(stray_tid, reply.seoj, reply.deoj, reply.esv, reply.properties)
                out += [frame.encode(stray), b"\x10\x81junk"]
            encoded = frame.encode(reply)
            if self._garbles:
                self.stats.garbled += 1
                encoded = _garble(encoded, self._garbles.popleft())
            out.append(encoded)
            return out


def _garble(encoded: bytes, kind: Garble) -> bytes:
    if kind is Garble.truncated:
        return encoded[:-1]
    if kind is Garble.wrong_ehd:
        return b"\x20" + encoded[1:]
    if kind is Garble.trailing:
        return encoded + b"\x00\x00"
    if kind is Garble.unknown_esv:
        return encoded[:10] + b"\x99" + encoded[11:]
    return b"\x01\x02\x03"


def flat_profile(start_s: int, pairs: Sequence[tuple[int, int]]) -> Profile:
    """A profile from (generation_wh, consumption_wh) pairs."""
    return Profile(start_s, tuple(Interval(g, c) for g, c in pairs))
