"""Property values of the smart meter (0x0288) and the solar unit (0x0279): units, coefficient,
fixed-time data, and "no data" (0xFFFFFFFE) as a named fault, never a number."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reco2.echonet import objects
from reco2.echonet.objects import FixedTimeEnergy, PropertyFault

JST = dt.timezone(dt.timedelta(hours=9))


@pytest.mark.parametrize(
    ("code", "kwh"),
    [
        (0x00, "1"),
        (0x01, "0.1"),
        (0x02, "0.01"),
        (0x03, "0.001"),
        (0x04, "0.0001"),
        (0x0A, "10"),
        (0x0B, "100"),
        (0x0C, "1000"),
        (0x0D, "10000"),
    ],
)
def test_each_unit_code_is_its_kwh_in_mwh(code: int, kwh: str) -> None:
    from decimal import Decimal

    assert objects.decode_unit_mwh(bytes((code,))) == int(Decimal(kwh) * 1_000_000)


@pytest.mark.parametrize("code", [0x05, 0x09, 0x0E, 0xFF])
def test_other_unit_codes_are_unknown(code: int) -> None:
    assert objects.decode_unit_mwh(bytes((code,))) is PropertyFault.unknown_unit


@pytest.mark.parametrize(
    ("edt", "expected"),
    [
        (bytes.fromhex("00000000"), 0),
        (bytes.fromhex("05f5e0ff"), 99_999_999),
        (bytes.fromhex("05f5e100"), PropertyFault.out_of_range),
        (bytes.fromhex("fffffffe"), PropertyFault.no_data),
        (bytes.fromhex("ffffffff"), PropertyFault.overflow_code),
        (bytes.fromhex("000000"), PropertyFault.wrong_length),
        (b"", PropertyFault.wrong_length),
    ],
)
def test_a_meter_register(edt: bytes, expected: int | PropertyFault) -> None:
    assert objects.decode_uint32_register(edt, objects.METER_REGISTER_MAX) == expected


def test_no_data_is_never_a_number() -> None:
    no_data = objects.u32(objects.NO_DATA_U32)
    assert objects.decode_uint32_register(no_data, 2**32) is PropertyFault.no_data
    assert objects.decode_coefficient(no_data) is PropertyFault.no_data
    assert objects.decode_instantaneous_w(objects.u16(0xFFFE)) is PropertyFault.no_data
    stamp = objects.encode_date_time(1_750_000_200)
    assert objects.decode_fixed_time(stamp + no_data) is PropertyFault.no_data


@pytest.mark.parametrize(
    ("edt", "expected"),
    [
        (objects.u32(1), 1),
        (objects.u32(999_999), 999_999),
        (objects.u32(0), PropertyFault.out_of_range),
        (objects.u32(1_000_000), PropertyFault.out_of_range),
        (b"\x01", PropertyFault.wrong_length),
    ],
)
def test_the_coefficient(edt: bytes, expected: int | PropertyFault) -> None:
    assert objects.decode_coefficient(edt) == expected


def test_effective_digits_and_instantaneous_power() -> None:
    assert objects.decode_effective_digits(b"\x08") == 8
    assert objects.decode_effective_digits(b"\x00") is PropertyFault.out_of_range
    assert objects.decode_effective_digits(b"\x09") is PropertyFault.out_of_range
    assert objects.decode_instantaneous_w(objects.u16(3_250)) == 3_250
    assert objects.decode_instantaneous_w(objects.u16(0xFFFF)) is PropertyFault.overflow_code
    assert objects.decode_instantaneous_w(b"\x00") is PropertyFault.wrong_length


def test_fixed_time_data_is_a_jst_stamp_then_the_register() -> None:
    # 2025-06-01 12:30:00 JST, register 0x00012345: written out by hand.
    edt = bytes.fromhex("07e906010c1e0000012345")
    at_s = int(dt.datetime(2025, 6, 1, 12, 30, tzinfo=JST).timestamp())
    assert objects.decode_fixed_time(edt) == FixedTimeEnergy(at_s, 0x12345)
    assert objects.encode_fixed_time(at_s, 0x12345) == edt


@pytest.mark.parametrize(
    ("edt", "fault"),
    [
        (bytes.fromhex("07e90d010c1e0000012345"), PropertyFault.invalid_date_time),
        (bytes.fromhex("07e9021e0c1e0000012345"), PropertyFault.invalid_date_time),
        (bytes.fromhex("07e9060118000000012345"), PropertyFault.invalid_date_time),
        (bytes.fromhex("07e906010c1e00000123"), PropertyFault.wrong_length),
        (bytes.fromhex("07e906010c1e00fffffffe"), PropertyFault.no_data),
    ],
)
def test_bad_fixed_time_data_is_named(edt: bytes, fault: PropertyFault) -> None:
    assert objects.decode_fixed_time(edt) is fault


@given(st.integers(0, 4_102_444_800 // 60).map(lambda m: m * 60))
def test_date_time_round_trips(at_s: int) -> None:
    assert objects.decode_date_time(objects.encode_date_time(at_s)) == at_s


@given(st.binary(max_size=12))
def test_decoders_never_raise(edt: bytes) -> None:
    for result in (
        objects.decode_uint32_register(edt, objects.SOLAR_REGISTER_MAX),
        objects.decode_coefficient(edt),
        objects.decode_effective_digits(edt),
        objects.decode_unit_mwh(edt),
        objects.decode_instantaneous_w(edt),
        objects.decode_fixed_time(edt),
        objects.decode_date_time(edt),
    ):
        assert isinstance(result, int | FixedTimeEnergy | PropertyFault)
