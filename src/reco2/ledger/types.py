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


class ReadingRelease(Record):
    """A reviewer released a reading the anomaly model flagged: from then on it may count as
    measured, for these exact bytes and this model version only."""

    device_id: str
    interval_start_s: int  # [UTC s]
    reading_hash: bytes  # SHA-256 of the reading's signed envelope
    model_version: str
    reviewer: str
    note: str
    height: int
    time_ns: int
    tx_hash: bytes


class Reference(Record):
    """A settlement agent's deposit or withdrawal reference, used once."""

    account: str
    amount_sen: int
    height: int


# ---- the market (DESIGN.md section 5) ----------------------------------------------------


class OrderStatus(StrEnum):
    open = "open"
    filled = "filled"
    cancelled = "cancelled"
    expired = "expired"


class BuyConditions(Record):
    """What a buyer requires of the value it buys; an empty field means "any" (不問)."""

    sellers: list[str]  # one of these participants
    places: list[str]  # prefecture (2 digits) or municipality (6 digits) codes, hierarchical
    sources: list[Source]
    period_from_s: int  # generated no earlier than [UTC s]; 0 = any
    period_to_s: int  # generated no later than [UTC s]; 0 = any
    commissioned_after: str  # device commissioned after this ISO date; "" = any
    exclude_estimated: bool  # refuse value that contains estimated intervals


class SellConditions(Record):
    """What a seller requires of its buyer; an empty field means any buyer."""

    buyers: list[str]


class Lot(Record):
    """Value a sell order holds in escrow from one batch, with what conditions look at."""

    batch_id: str
    quantity_g: int
    period_start_s: int
    period_end_s: int
    municipality_code: str
    commissioned_on: str
    estimated: bool


class SellOrder(Record):
    order_id: str
    owner: str
    quantity_g: int  # as placed
    remaining_g: int
    all_or_none: bool
    price_sen_per_kg: int  # the minimum price
    expires_at_ns: int  # 0 = good until cancelled
    seq: int  # ledger position: time priority
    placed_height: int
    source: Source
    place: str  # the listing's place: prefecture or municipality code
    name_public: bool
    conditions: SellConditions
    lots: list[Lot]  # escrowed value, oldest generation first
    rule_id: str  # the standing sell rule that listed it, "" when placed by hand
    status: OrderStatus


class BuyOrder(Record):
    order_id: str
    owner: str
    quantity_g: int
    remaining_g: int
    all_or_none: bool
    price_sen_per_kg: int  # the limit price
    expires_at_ns: int
    seq: int
    placed_height: int
    conditions: BuyConditions
    escrow_sen: int  # yen this order still holds in escrow
    status: OrderStatus


class LotDraw(Record):
    batch_id: str
    quantity_g: int


class Trade(Record):
    trade_seq: int
    height: int
    time_ns: int
    tx_hash: bytes
    buy_order: str
    sell_order: str
    buyer: str
    seller: str
    seller_public: bool
    quantity_g: int
    price_sen_per_kg: int
    value_sen: int
    lots: list[LotDraw]  # batches the value came from, oldest first


class SellRule(Record):
    """A standing sell rule: list each new issuance of a device at a minimum price."""

    rule_id: str
    owner: str
    device_id: str
    price_sen_per_kg: int
    name_public: bool
    conditions: SellConditions
    cap_g: int  # list at most this much in all
    listed_g: int
    active: bool


class MarketCounters(Record):
    next_order_seq: int
    next_trade_seq: int
