"""Records the ledger keeps in its state: nouns, integers with their unit, no behaviour.

Every record is a msgspec Struct encoded as a MessagePack array (field order is the
encoding order), so one record always gives the same bytes.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Role(StrEnum):
    authority = "authority"
    prosumer = "prosumer"
    aggregator = "aggregator"
    buyer = "buyer"
    settlement_agent = "settlement_agent"


class Source(StrEnum):
    solar = "solar"
    wind = "wind"
    hydro = "hydro"
    biomass = "biomass"
    geothermal = "geothermal"


class GridContract(StrEnum):
    fit = "fit"
    fip = "fip"
    none = "none"


class DeviceStatus(StrEnum):
    pending = "pending"
    active = "active"
    deactivated = "deactivated"


class Purpose(StrEnum):
    """Why value is retired (償却): the claim a buyer makes with it."""

    offset = "offset"  # carbon offset (カーボン・オフセット)
    ghg_report = "ghg_report"  # 温対法 (Act on Promotion of Global Warming Countermeasures) report
    re100 = "re100"
    cdp = "cdp"
    sbt = "sbt"
    other = "other"


class Record(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
    """Base of every state record."""


class Participant(Record):
    participant_id: str
    public_key: bytes
    roles: list[Role]  # sorted, no duplicates
    display_name: str
    name_public: bool
    next_nonce: int
    registered_height: int


class SchemeEnrollment(Record):
    """Another scheme (J-Credit, non-fossil certificates...) a device is enrolled in [UTC s]."""

    scheme: str
    start_s: int
    end_s: int


class Device(Record):
    device_id: str
    owner: str
    aggregator: str
    source: Source
    capacity_w: int
    prefecture_code: str  # JIS X 0401, two digits
    municipality_code: str  # 全国地方公共団体コード, six digits with check digit
    latitude_e2: int  # [0.01 degree], rounded for privacy
    longitude_e2: int  # [0.01 degree]
    commissioned_on: str  # ISO date, JST
    grid_contract: GridContract
    utility: str  # retail utility registration number (e.g. "A0002"), "" when unknown
    other_schemes: list[SchemeEnrollment]
    meter_public_key: bytes
    status: DeviceStatus
    carry_mg: int  # sub-gram remainder carried to the next issuance [mg]
    registered_height: int


class FactorRow(Record):
    fiscal_year: int  # Japanese fiscal year (April-March) whose electricity the factor applies to
    utility: str  # "national" for 全国平均係数, else a utility registration number
    factor_mg_per_wh: int
    source: str
    published_on: str  # ISO date


class FactorTable(Record):
    version: str
    rows: list[FactorRow]
    published_height: int


class ValueBatch(Record):
    """One issuance: provenance of a quantity of CO2-reduction value."""

    batch_id: str
    device_id: str
    owner: str
    aggregator: str
    source: Source
    prefecture_code: str
    municipality_code: str
    period_start_s: int  # [UTC s], inclusive
    period_end_s: int  # [UTC s], exclusive
    self_consumed_wh: int
    measured_intervals: int
    estimated_intervals: int
    estimated_wh: int
    factor_version: str
    factor_fiscal_year: int
    factor_utility: str
    factor_mg_per_wh: int
    carried_in_mg: int
    carried_out_mg: int
    co2_g: int
    readings_root: bytes
    issued_height: int
    issued_time_ns: int
    issue_tx: bytes  # SHA-256 of the issuing transaction


class Holding(Record):
    """What one holder has of one batch [g-CO2]."""

    tradable_g: int
    escrowed_g: int
    retired_g: int


class YenAccount(Record):
    available_sen: int
    escrowed_sen: int


class YenTotals(Record):
    deposited_sen: int
    withdrawn_sen: int


class Retirement(Record):
    retirement_id: str
    holder: str
    batch_id: str
    quantity_g: int
    beneficiary: str
    purpose: Purpose
    claimed_period: str
    note: str
    height: int
    time_ns: int
    tx_hash: bytes


class IssuedPeriod(Record):
    """Index entry: a device's issued period, kept so overlaps can be refused."""

    batch_id: str
    end_s: int


class Reference(Record):
    """A settlement agent's deposit or withdrawal reference, used once."""

    account: str
    amount_sen: int
    height: int
