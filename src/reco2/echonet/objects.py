"""The ECHONET Lite device objects and properties the agent reads, and their value encodings.

Source: ECHONET Consortium, "APPENDIX Detailed Requirements for ECHONET Device Objects"
(Release M and later; machine-readable appendix MRA), section 3.3.25 "Requirements for
low-voltage smart electric energy meter class" (class group 0x02, class 0x88) and the section
"Requirements for household solar power generation class" (0x02, 0x79); summarised in
/work/shared/FACTS.md ("ECHONET Lite"). The codes were cross-checked against two independent
open implementations (SonyCSL OpenECHO ``HouseholdSolarPowerGeneration.java`` and pychonet's
``LowVoltageSmartElectricEnergyMeter``); no code was taken from either.

Energies are carried as exact integers in milliwatt-hours [mWh] so that every register unit
(0.0001 kWh = 100 mWh up to 10,000 kWh) converts without rounding; readings use whole Wh.

Expected failures are results: each decoder returns its value or a ``PropertyFault`` naming
what is wrong (``no_data`` for the "no data" code 0xFFFFFFFE, never a number).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from reco2.echonet.frame import EOJ

# ---- classes -------------------------------------------------------------------------------

#: Low-voltage smart electric energy meter (低圧スマート電力量メータ).
SMART_METER_CLASS: Final = 0x0288
#: Household solar power generation (住宅用太陽光発電).
SOLAR_CLASS: Final = 0x0279
#: The first instance of each: what a home with one meter and one solar unit has.
METER_EOJ: Final = EOJ(SMART_METER_CLASS, 1)
SOLAR_EOJ: Final = EOJ(SOLAR_CLASS, 1)

# ---- 0x0288 low-voltage smart electric energy meter -----------------------------------------

#: Coefficient (係数), uint32 1..999,999; kWh = value x coefficient x unit. Optional: when the
#: meter does not have it the coefficient is 1.
METER_COEFFICIENT: Final = 0xD3
#: Number of effective digits for cumulative amounts (積算電力量有効桁数), 1 byte, 1..8.
METER_EFFECTIVE_DIGITS: Final = 0xD7
#: Measured cumulative amount of electric energy, normal direction (grid -> home), uint32
#: 0..99,999,999 in the unit of 0xE1.
METER_CUMULATIVE_NORMAL: Final = 0xE0
#: Unit for cumulative amounts of electric energy (0xE0, 0xE3, 0xEA, 0xEB), 1 byte.
METER_UNIT: Final = 0xE1
#: Measured cumulative amount of electric energy, reverse direction (home -> grid), uint32.
METER_CUMULATIVE_REVERSE: Final = 0xE3
#: Cumulative amount of electric energy measured at fixed time (on the 30-minute grid), normal
#: direction: date-time (YYYY uint16, MM, DD, hh, mm, ss) then uint32; 11 bytes.
METER_FIXED_TIME_NORMAL: Final = 0xEA
#: The same, reverse direction.
METER_FIXED_TIME_REVERSE: Final = 0xEB

#: 0xE1 unit code -> one register step [mWh] (0x00 = 1 kWh, ..., 0x04 = 0.0001 kWh,
#: 0x0A = 10 kWh, ..., 0x0D = 10,000 kWh).
METER_UNIT_MWH: Final[dict[int, int]] = {
    0x00: 1_000_000,
    0x01: 100_000,
    0x02: 10_000,
    0x03: 1_000,
    0x04: 100,
    0x0A: 10_000_000,
    0x0B: 100_000_000,
    0x0C: 1_000_000_000,
    0x0D: 10_000_000_000,
}

# ---- 0x0279 household solar power generation ---------------------------------------------

#: Measured instantaneous amount of electricity generated [W], uint16 0..65,533.
SOLAR_INSTANTANEOUS_W: Final = 0xE0
#: Measured cumulative amount of electricity generated, uint32 in 0.001 kWh (= 1 Wh),
#: 0..999,999,999.
SOLAR_CUMULATIVE_GENERATED: Final = 0xE1
#: Measured cumulative amount of electricity sold, uint32 in 0.001 kWh, 0..999,999,999.
SOLAR_CUMULATIVE_SOLD: Final = 0xE3
#: One step of the solar unit's cumulative registers [mWh] (0.001 kWh).
SOLAR_STEP_MWH: Final = 1_000

# ---- special values ------------------------------------------------------------------------

#: "No data" in a uint32 register (and 0xFFFE in a uint16 one): the device has no value now.
NO_DATA_U32: Final = 0xFFFFFFFE
NO_DATA_U16: Final = 0xFFFE
#: "Overflow" code of unsigned registers (0xFFFFFFFF / 0xFFFF): never a measurement either.
OVERFLOW_U32: Final = 0xFFFFFFFF
OVERFLOW_U16: Final = 0xFFFF

#: Largest measurement a cumulative register holds before it wraps to 0 (8 digits for the
#: meter's 0xE0/0xE3 with 0xD7 = 8; 9 digits for the solar unit's 0xE1/0xE3).
METER_REGISTER_MAX: Final = 99_999_999
SOLAR_REGISTER_MAX: Final = 999_999_999

JST: Final = _dt.timezone(_dt.timedelta(hours=9), "JST")


class PropertyFault(StrEnum):
    """Why a property's data gives no value."""

    wrong_length = "wrong_length"
    no_data = "no_data"
    overflow_code = "overflow_code"
    out_of_range = "out_of_range"
    unknown_unit = "unknown_unit"
    invalid_date_time = "invalid_date_time"


@dataclass(frozen=True, slots=True)
class FixedTimeEnergy:
    """A cumulative register as the meter recorded it at a 30-minute boundary."""

    at_s: int  # the boundary [UTC s], from the meter's local (JST) date-time
    value: int  # register steps (unit 0xE1, coefficient 0xD3)


def _unsigned(edt: bytes, size: int) -> int | PropertyFault:
    if len(edt) != size:
        return PropertyFault.wrong_length
    return int.from_bytes(edt, "big")


def decode_uint32_register(edt: bytes, maximum: int) -> int | PropertyFault:
    """A cumulative uint32 register: its value, or why it has none (0xFFFFFFFE = no data)."""
    value = _unsigned(edt, 4)
    if isinstance(value, PropertyFault):
        return value
    if value == NO_DATA_U32:
        return PropertyFault.no_data
    if value == OVERFLOW_U32:
        return PropertyFault.overflow_code
    if value > maximum:
        return PropertyFault.out_of_range
    return value


def decode_instantaneous_w(edt: bytes) -> int | PropertyFault:
    """The solar unit's 0xE0 [W], uint16 (0xFFFE = no data)."""
    value = _unsigned(edt, 2)
    if isinstance(value, PropertyFault):
        return value
    if value == NO_DATA_U16:
        return PropertyFault.no_data
    if value == OVERFLOW_U16:
        return PropertyFault.overflow_code
    return value


def decode_coefficient(edt: bytes) -> int | PropertyFault:
    """The meter's 0xD3 coefficient, 1..999,999."""
    value = _unsigned(edt, 4)
    if isinstance(value, PropertyFault):
        return value
    if value == NO_DATA_U32:
        return PropertyFault.no_data
    if not 1 <= value <= 999_999:
        return PropertyFault.out_of_range
    return value


def decode_effective_digits(edt: bytes) -> int | PropertyFault:
    """The meter's 0xD7 number of effective digits, 1..8."""
    value = _unsigned(edt, 1)
    if isinstance(value, PropertyFault):
        return value
    if not 1 <= value <= 8:
        return PropertyFault.out_of_range
    return value


def decode_unit_mwh(edt: bytes) -> int | PropertyFault:
    """The meter's 0xE1 unit code as one register step [mWh]."""
    code = _unsigned(edt, 1)
    if isinstance(code, PropertyFault):
        return code
    step = METER_UNIT_MWH.get(code)
    return PropertyFault.unknown_unit if step is None else step


def encode_date_time(at_s: int) -> bytes:
    """An instant [UTC s] as the meter's 7-byte local (JST) date-time."""
    local = _dt.datetime.fromtimestamp(at_s, JST)
    return local.year.to_bytes(2, "big") + bytes(
        (local.month, local.day, local.hour, local.minute, local.second)
    )


def decode_date_time(raw: bytes) -> int | PropertyFault:
    """The meter's 7-byte date-time (JST) as an instant [UTC s]."""
    if len(raw) != 7:
        return PropertyFault.wrong_length
    year = int.from_bytes(raw[:2], "big")
    month, day, hour, minute, second = raw[2:7]
    try:
        local = _dt.datetime(year, month, day, hour, minute, second, tzinfo=JST)
    except ValueError:
        return PropertyFault.invalid_date_time
    return int(local.timestamp())


def encode_fixed_time(at_s: int, value: int) -> bytes:
    """0xEA/0xEB data: the boundary's date-time, then the register (or 0xFFFFFFFE)."""
    return encode_date_time(at_s) + value.to_bytes(4, "big")


def decode_fixed_time(edt: bytes) -> FixedTimeEnergy | PropertyFault:
    """0xEA/0xEB data: when (a 30-minute boundary) and the register at that moment."""
    if len(edt) != 11:
        return PropertyFault.wrong_length
    at_s = decode_date_time(edt[:7])
    if isinstance(at_s, PropertyFault):
        return at_s
    value = decode_uint32_register(edt[7:], METER_REGISTER_MAX)
    if isinstance(value, PropertyFault):
        return value
    return FixedTimeEnergy(at_s, value)


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def u8(value: int) -> bytes:
    return bytes((value,))
