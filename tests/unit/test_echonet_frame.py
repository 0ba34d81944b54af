"""The ECHONET Lite frame codec: known bytes, every malformed-frame rule by name, and Hypothesis
properties (encode -> decode round-trips; arbitrary bytes give a frame or a named FrameError,
nothing else)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reco2.echonet import frame
from reco2.echonet.frame import EOJ, ESV, Frame, FrameError, FrameFault, Property

PROPS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

#: A Get of the meter's 0xE0 from the controller, written out by hand from the specification's
#: layout (EHD1 EHD2 TID SEOJ DEOJ ESV OPC EPC PDC).
GET_E0 = bytes.fromhex("1081000105ff010288016201e000")
#: The meter's answer: 0xE0 = 0x00001234.
GET_RES_E0 = bytes.fromhex("1081000102880105ff017201e00400001234")


def test_a_get_encodes_to_the_specified_bytes() -> None:
    request = frame.get_request(1, EOJ(0x0288, 1), (0xE0,))
    assert frame.encode(request) == GET_E0
    assert frame.decode(GET_E0) == request


def test_an_answer_decodes_to_its_parts() -> None:
    answer = frame.decode(GET_RES_E0)
    assert answer == Frame(
        1, EOJ(0x0288, 1), frame.CONTROLLER, ESV.Get_Res, (Property(0xE0, b"\x00\x00\x12\x34"),)
    )
    assert answer.property(0xE0) == Property(0xE0, bytes.fromhex("00001234"))
    assert answer.property(0xE1) is None
    assert str(answer.seoj) == "028801"


MALFORMED = [
    ("empty", b"", FrameFault.frame_too_short),
    ("header cut", GET_E0[:11], FrameFault.frame_too_short),
    ("too large", GET_E0 + b"\x00" * frame.MAX_FRAME_BYTES, FrameFault.frame_too_large),
    ("EHD1 not 0x10", b"\x11" + GET_E0[1:], FrameFault.wrong_ehd1),
    ("EHD2 arbitrary format", b"\x10\x82" + GET_E0[2:], FrameFault.wrong_ehd2),
    ("ESV unknown", GET_E0[:10] + b"\x99" + GET_E0[11:], FrameFault.unknown_esv),
    ("ESV SetGet", GET_E0[:10] + b"\x6e" + GET_E0[11:], FrameFault.unsupported_esv),
    ("OPC 0", GET_E0[:11] + b"\x00", FrameFault.no_properties),
    ("OPC 2, one property", GET_E0[:11] + b"\x02\xe0\x00", FrameFault.property_header_truncated),
    ("OPC 1, no property", GET_E0[:12], FrameFault.property_header_truncated),
    ("PDC without EPC data", GET_E0[:12] + b"\xe0", FrameFault.property_header_truncated),
    ("PDC past the end", GET_RES_E0[:-1], FrameFault.edt_runs_past_end),
    ("PDC 255, 4 bytes", GET_RES_E0[:13] + b"\xff" + GET_RES_E0[14:], FrameFault.edt_runs_past_end),
    ("trailing bytes", GET_RES_E0 + b"\x00", FrameFault.trailing_bytes),
]


@pytest.mark.parametrize(
    ("raw", "fault"), [(raw, fault) for _, raw, fault in MALFORMED], ids=[n for n, *_ in MALFORMED]
)
def test_every_malformed_frame_gets_its_named_reason(raw: bytes, fault: FrameFault) -> None:
    with pytest.raises(FrameError) as caught:
        frame.decode(raw)
    assert caught.value.reason is fault
    assert str(caught.value).startswith(fault.value + ": ")
    assert caught.value.detail


def test_every_fault_is_reachable() -> None:
    assert {fault for _, _, fault in MALFORMED} == set(FrameFault)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Frame(0x10000, frame.CONTROLLER, frame.NODE_PROFILE, ESV.Get, (Property(0x80),)),
        lambda: Frame(1, frame.CONTROLLER, frame.NODE_PROFILE, ESV.Get, ()),
        lambda: Property(0x100),
        lambda: Property(0xE0, b"\x00" * 256),
        lambda: EOJ(0x10000, 1),
        lambda: EOJ(0x0288, 256),
        lambda: Frame(
            1,
            frame.CONTROLLER,
            frame.NODE_PROFILE,
            ESV.Get_Res,
            tuple(Property(0xE0, b"\x00" * 255) for _ in range(6)),
        ),
    ],
)
def test_an_impossible_frame_cannot_be_built(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


# ---- properties ----------------------------------------------------------------------------

EOJS = st.builds(EOJ, st.integers(0, 0xFFFF), st.integers(0, 0xFF))
PROPERTIES = st.lists(
    st.builds(Property, st.integers(0, 0xFF), st.binary(max_size=40)), min_size=1, max_size=20
)
FRAMES = st.builds(
    Frame, st.integers(0, 0xFFFF), EOJS, EOJS, st.sampled_from(list(ESV)), PROPERTIES.map(tuple)
)


@PROPS
@given(FRAMES)
def test_encode_then_decode_round_trips(original: Frame) -> None:
    raw = frame.encode(original)
    assert len(raw) == frame.encoded_size(original)
    assert frame.decode(raw) == original
    assert frame.encode(frame.decode(raw)) == raw


def _decode_or_fault(raw: bytes) -> Frame | FrameFault:
    try:
        return frame.decode(raw)
    except FrameError as exc:
        assert isinstance(exc.reason, FrameFault)
        return exc.reason


@PROPS
@given(st.binary(max_size=64))
def test_random_bytes_give_a_frame_or_a_named_error(raw: bytes) -> None:
    decoded = _decode_or_fault(raw)
    if isinstance(decoded, Frame):
        assert frame.encode(decoded) == raw  # only canonical bytes decode


@PROPS
@given(FRAMES, st.data())
def test_a_mangled_frame_gives_a_frame_or_a_named_error(
    original: Frame, data: st.DataObject
) -> None:
    raw = bytearray(frame.encode(original))
    cut = data.draw(st.integers(0, len(raw)))
    tail = data.draw(st.binary(max_size=6))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    mangled = bytes(raw[:cut]) + tail
    decoded = _decode_or_fault(mangled)
    if isinstance(decoded, Frame):
        assert frame.encode(decoded) == mangled
