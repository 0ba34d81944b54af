"""A small ECHONET Lite client over UDP: Get with timeouts, retries and TID matching.

Each attempt sends a Get with a fresh TID and waits up to ``timeout_s`` for the answer: a
datagram from the device's address that decodes as a frame, carries that TID, comes from the
object asked (any instance when instance 0 was asked) and is a Get_Res or Get_SNA. Everything
else that arrives meanwhile (a late answer to an earlier attempt, another node's frame, bytes
that are no frame) is counted, logged and ignored; the wait goes on. After ``retries`` further
attempts without an answer the result is ``ClientFault.no_answer``.

Blocking sockets and one request at a time: an agent reads two objects every 30 minutes, and a
thread-free loop is the simplest thing that is easy to drive from a test.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from reco2.echonet import frame
from reco2.echonet.frame import EOJ, ESV, FrameError

log = logging.getLogger("reco2.echonet.client")

DEFAULT_PORT: Final = 3610
#: Largest datagram read [bytes]; longer ones are truncated by the kernel and then refused by
#: the codec as too large or malformed.
_RECV_BYTES: Final = 2_048


class ClientFault(StrEnum):
    no_answer = "no_answer"


@dataclass(frozen=True, slots=True)
class GetAnswer:
    """A device's answer to a Get: the properties it gave, and those it could not (PDC 0)."""

    esv: ESV
    seoj: EOJ
    values: dict[int, bytes]
    missing: frozenset[int]


@dataclass
class ClientStats:
    requests: int = 0
    attempts: int = 0
    answers: int = 0
    timeouts: int = 0
    ignored: Counter[str] = field(default_factory=Counter)


class EchonetClient:
    """Sends Gets from one UDP socket (``local_port`` 3610 by default, where devices answer)."""

    def __init__(
        self,
        local_host: str = "0.0.0.0",
        local_port: int = DEFAULT_PORT,
        *,
        timeout_s: float = 2.0,
        retries: int = 2,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        assert timeout_s > 0, "a wait needs a positive timeout"
        assert retries >= 0
        self.timeout_s = timeout_s
        self.retries = retries
        self.monotonic = monotonic
        self.stats = ClientStats()
        self._tid = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((local_host, local_port))

    @property
    def local_address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> EchonetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_tid(self) -> int:
        self._tid = (self._tid + 1) & 0xFFFF
        return self._tid

    def get(
        self, address: tuple[str, int], deoj: EOJ, epcs: tuple[int, ...]
    ) -> GetAnswer | ClientFault:
        """Ask ``deoj`` at ``address`` for ``epcs``; the answer, or ``no_answer``."""
        self.stats.requests += 1
        for attempt in range(self.retries + 1):
            tid = self._next_tid()
            request = frame.encode(frame.get_request(tid, deoj, epcs))
            self.stats.attempts += 1
            try:
                self._sock.sendto(request, address)
            except OSError as exc:
                log.warning("cannot send to %s:%d: %s", address[0], address[1], exc)
                self.stats.ignored["send_failed"] += 1
                continue
            answer = self._await(address, deoj, tid)
            if answer is not None:
                self.stats.answers += 1
                return answer
            self.stats.timeouts += 1
            log.info(
                "no answer from %s at %s:%d within %.1f s (attempt %d of %d)",
                deoj,
                address[0],
                address[1],
                self.timeout_s,
                attempt + 1,
                self.retries + 1,
            )
        return ClientFault.no_answer

    def _await(self, address: tuple[str, int], deoj: EOJ, tid: int) -> GetAnswer | None:
        deadline = self.monotonic() + self.timeout_s
        while True:
            left = deadline - self.monotonic()
            if left <= 0:
                return None
            self._sock.settimeout(left)
            try:
                raw, peer = self._sock.recvfrom(_RECV_BYTES)
            except TimeoutError:
                return None
            except OSError as exc:  # e.g. ICMP port unreachable reported on Linux
                self.stats.ignored["socket_error"] += 1
                log.info("socket error while waiting for %s: %s", deoj, exc)
                continue
            if (peer[0], peer[1]) != (address[0], address[1]):
                self._ignore("other_sender", f"{len(raw)} bytes from {peer[0]}:{peer[1]}")
                continue
            try:
                answer = frame.decode(raw)
            except FrameError as exc:
                self._ignore(f"garbled:{exc.reason.value}", str(exc))
                continue
            if answer.tid != tid:
                self._ignore("other_tid", f"TID {answer.tid}, waiting for {tid}")
                continue
            if answer.seoj.class_code != deoj.class_code or deoj.instance not in (
                0,
                answer.seoj.instance,
            ):
                self._ignore("other_object", f"from {answer.seoj}, asked {deoj}")
                continue
            if answer.esv not in (ESV.Get_Res, ESV.Get_SNA):
                self._ignore("other_service", f"ESV {answer.esv.name}")
                continue
            values = {p.epc: p.edt for p in answer.properties if p.edt}
            missing = frozenset(p.epc for p in answer.properties if not p.edt)
            return GetAnswer(answer.esv, answer.seoj, values, missing)

    def _ignore(self, kind: str, detail: str) -> None:
        self.stats.ignored[kind] += 1
        log.warning("ignored a datagram (%s): %s", kind, detail)
