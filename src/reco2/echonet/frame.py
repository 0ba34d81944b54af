"""ECHONET Lite frames: the specified message format (format 1), encoded and decoded here.

Source: ECHONET Lite Specification Ver.1.13, Part II "ECHONET Lite Communication Middleware
Specifications", chapter 3 (frame format) and the ESV table; summarised in
/work/shared/FACTS.md ("ECHONET Lite").

Layout, all integers big-endian::

    EHD1 (1) = 0x10          ECHONET Lite
    EHD2 (1) = 0x81          format 1: the specified message format
    TID  (2)                 transaction id, echoed by the answer
    SEOJ (3)                 source object: class group, class, instance
    DEOJ (3)                 destination object
    ESV  (1)                 service (Get, Get_Res, Get_SNA, ...)
    OPC  (1)                 number of properties that follow
    OPC x (EPC (1), PDC (1), EDT (PDC bytes))

The SetGet family (0x6E, 0x7E, 0x5E) carries two property lists (OPCSet, then OPCGet); this
codec does not speak it and refuses it with ``unsupported_esv`` rather than misreading it.

Decoding never raises anything but ``FrameError``, whose ``reason`` (a ``FrameFault``) names the
first rule the bytes broke, in the order they are checked. Encoding an impossible frame (an
EDT over 255 bytes, a TID over 16 bits) is a programmer error: ``Frame`` refuses to be built.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

EHD1: Final = 0x10
EHD2_FORMAT1: Final = 0x81
HEADER_BYTES: Final = 12  # EHD1, EHD2, TID (2), SEOJ (3), DEOJ (3), ESV, OPC
MAX_PDC: Final = 255
MAX_OPC: Final = 255

#: Largest frame accepted [bytes]. A frame travels in one UDP datagram, and ECHONET Lite nodes
#: on IP keep to one Ethernet frame (1,500 bytes of IP minus 28 of IP and UDP headers): what is
#: bigger is refused unread.
MAX_FRAME_BYTES: Final = 1_472


class ESV(IntEnum):
    """ECHONET Lite services (the ESV byte) this codec knows."""

    SetI_SNA = 0x50
    SetC_SNA = 0x51
    Get_SNA = 0x52
    INF_SNA = 0x53
    SetI = 0x60
    SetC = 0x61
    Get = 0x62
    INF_REQ = 0x63
    Set_Res = 0x71
    Get_Res = 0x72
    INF = 0x73
    INFC = 0x74
    INFC_Res = 0x7A


#: SetGet, SetGet_Res and SetGet_SNA: two property lists, not spoken here.
SETGET_ESVS: Final = frozenset({0x6E, 0x7E, 0x5E})


class FrameFault(StrEnum):
    """Why bytes are not an ECHONET Lite frame, in the order the rules are checked."""

    frame_too_large = "frame_too_large"
    frame_too_short = "frame_too_short"
    wrong_ehd1 = "wrong_ehd1"
    wrong_ehd2 = "wrong_ehd2"
    unsupported_esv = "unsupported_esv"
    unknown_esv = "unknown_esv"
    no_properties = "no_properties"
    property_header_truncated = "property_header_truncated"
    edt_runs_past_end = "edt_runs_past_end"
    trailing_bytes = "trailing_bytes"


class FrameError(ValueError):
    """Bytes that are not a well-formed ECHONET Lite frame; ``reason`` says which rule failed."""

    def __init__(self, reason: FrameFault, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True, order=True)
class EOJ:
    """An ECHONET object: its class (class group and class code, e.g. 0x0288) and instance."""

    class_code: int  # 16 bits: class group code << 8 | class code
    instance: int  # 0x00 addresses every instance of the class

    def __post_init__(self) -> None:
        if not 0 <= self.class_code <= 0xFFFF:
            raise ValueError(f"an object class is 16 bits, not {self.class_code:#x}")
        if not 0 <= self.instance <= 0xFF:
            raise ValueError(f"an instance is one byte, not {self.instance:#x}")

    def to_bytes(self) -> bytes:
        return self.class_code.to_bytes(2, "big") + bytes((self.instance,))

    @classmethod
    def from_bytes(cls, raw: bytes) -> EOJ:
        assert len(raw) == 3, "an EOJ is three bytes"
        return cls(int.from_bytes(raw[:2], "big"), raw[2])

    def __str__(self) -> str:
        return f"{self.class_code:04X}{self.instance:02X}"


#: The controller object a polling agent speaks as, and the node profile object.
CONTROLLER: Final = EOJ(0x05FF, 0x01)
NODE_PROFILE: Final = EOJ(0x0EF0, 0x01)


@dataclass(frozen=True, slots=True)
class Property:
    """One property of a frame: its code (EPC) and data (EDT; empty in a Get request)."""

    epc: int
    edt: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.epc <= 0xFF:
            raise ValueError(f"an EPC is one byte, not {self.epc:#x}")
        if len(self.edt) > MAX_PDC:
            raise ValueError(f"an EDT holds at most {MAX_PDC} bytes, not {len(self.edt)}")


@dataclass(frozen=True, slots=True)
class Frame:
    """An ECHONET Lite frame in the specified message format (EHD2 = 0x81)."""

    tid: int
    seoj: EOJ
    deoj: EOJ
    esv: ESV
    properties: tuple[Property, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.tid <= 0xFFFF:
            raise ValueError(f"a TID is 16 bits, not {self.tid}")
        if not 1 <= len(self.properties) <= MAX_OPC:
            raise ValueError(f"a frame carries 1..{MAX_OPC} properties")
        if encoded_size(self) > MAX_FRAME_BYTES:
            raise ValueError(f"the frame would exceed {MAX_FRAME_BYTES} bytes")

    def property(self, epc: int) -> Property | None:
        """The first property with this EPC, or None."""
        return next((p for p in self.properties if p.epc == epc), None)


def encoded_size(frame: Frame) -> int:
    """Bytes ``encode(frame)`` returns."""
    return HEADER_BYTES + sum(2 + len(p.edt) for p in frame.properties)


def encode(frame: Frame) -> bytes:
    """The frame's bytes."""
    out = bytearray((EHD1, EHD2_FORMAT1))
    out += frame.tid.to_bytes(2, "big")
    out += frame.seoj.to_bytes()
    out += frame.deoj.to_bytes()
    out += bytes((frame.esv, len(frame.properties)))
    for prop in frame.properties:
        out += bytes((prop.epc, len(prop.edt)))
        out += prop.edt
    return bytes(out)


def decode(raw: bytes) -> Frame:
    """Decode one frame strictly; raises ``FrameError`` (and nothing else) when malformed.

    Rules, in order: size limit, header length, EHD1, EHD2, ESV (SetGet refused as unsupported,
    any other unknown code as unknown), at least one property, each property's EPC and PDC
    present, each EDT within the frame, no bytes after the last property.
    """
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError(FrameFault.frame_too_large, f"{len(raw)} bytes, at most {MAX_FRAME_BYTES}")
    if len(raw) < HEADER_BYTES:
        raise FrameError(
            FrameFault.frame_too_short, f"{len(raw)} bytes, a header needs {HEADER_BYTES}"
        )
    if raw[0] != EHD1:
        raise FrameError(FrameFault.wrong_ehd1, f"EHD1 is {raw[0]:#04x}, not {EHD1:#04x}")
    if raw[1] != EHD2_FORMAT1:
        raise FrameError(
            FrameFault.wrong_ehd2,
            f"EHD2 is {raw[1]:#04x}; only format 1 ({EHD2_FORMAT1:#04x}) is spoken",
        )
    esv_code = raw[10]
    if esv_code in SETGET_ESVS:
        raise FrameError(FrameFault.unsupported_esv, f"ESV {esv_code:#04x} (SetGet family)")
    try:
        esv = ESV(esv_code)
    except ValueError:
        raise FrameError(FrameFault.unknown_esv, f"ESV {esv_code:#04x}") from None
    opc = raw[11]
    if opc == 0:
        raise FrameError(FrameFault.no_properties, "OPC is 0")
    properties: list[Property] = []
    at = HEADER_BYTES
    for index in range(opc):
        if at + 2 > len(raw):
            raise FrameError(
                FrameFault.property_header_truncated,
                f"property {index + 1} of {opc} starts at byte {at} of {len(raw)}",
            )
        epc, pdc = raw[at], raw[at + 1]
        at += 2
        if at + pdc > len(raw):
            raise FrameError(
                FrameFault.edt_runs_past_end,
                f"EPC {epc:#04x}: PDC {pdc} from byte {at} runs past the frame's {len(raw)}",
            )
        properties.append(Property(epc, bytes(raw[at : at + pdc])))
        at += pdc
    if at != len(raw):
        raise FrameError(
            FrameFault.trailing_bytes, f"{len(raw) - at} bytes after the last property"
        )
    return Frame(
        int.from_bytes(raw[2:4], "big"),
        EOJ.from_bytes(bytes(raw[4:7])),
        EOJ.from_bytes(bytes(raw[7:10])),
        esv,
        tuple(properties),
    )


def get_request(tid: int, deoj: EOJ, epcs: tuple[int, ...], seoj: EOJ = CONTROLLER) -> Frame:
    """A Get (0x62) asking ``deoj`` for the properties ``epcs`` (each with PDC 0)."""
    return Frame(tid, seoj, deoj, ESV.Get, tuple(Property(epc) for epc in epcs))
