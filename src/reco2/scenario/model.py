"""The scenario file format (JSON).

    {
      "title": "...",
      "chain_id": "reco2-scenario",                   optional
      "participants": [
        {"id": "moe", "name": "環境大臣", "roles": ["prosumer"], "name_public": true}
      ],
      "devices": [
        {"id": "moe-pv", "owner": "moe", "source": "solar", "capacity_w": 10000,
         "municipality": "131202", "latitude_e2": 3574, "longitude_e2": 13965,
         "commissioned_on": "2020-04-01", "sell_rule": {...}}     sell_rule optional:
            {"id": "r1", "price_yen_per_kg": "3", "name_public": true, "cap_kg": "100"}
      ],
      "issuances": [
        {"batch": "moe-2025-06-01", "device": "moe-pv", "day": "2025-06-01",
         "self_consumed_wh": 28369}             or "co2_kg": "12" (Wh derived, rounded up)
      ],
      "deposits": [{"account": "buyer-1", "yen": "10000"}],
      "steps": [
        {"sell": {"id": "S1", "seller": "...", "quantity_kg": "1", "all_or_none": true,
                  "price_yen_per_kg": "3", "source": "solar", "place": "01",
                  "name_public": false, "buyers": []}},
        {"buy":  {"id": "B2", "buyer": "buyer-2", "quantity_kg": "5", "price_yen_per_kg": "4",
                  "sellers": [], "places": ["072036"], "sources": [],
                  "period_from": "", "period_to": "", "commissioned_after": "",
                  "all_or_none": false}},
        {"cancel": {"id": "B1", "by": "buyer-1"}},
        {"issue": {"batch": ..., "device": ..., "day": ..., "self_consumed_wh": ...}},
        {"block": {}}
      ]
    }

Quantities are kg-CO2 and prices yen per kg-CO2, written as decimal strings (or integers)
and converted exactly: "1.5" kg = 1,500 g; "3.25" yen = 325 sen. Steps between two "block"
steps go into one block, in order. The registry authority ("authority"), an aggregator ("mrv")
and a settlement agent ("bank") exist in every scenario.
"""

from __future__ import annotations

from typing import Any

import msgspec


class ScenarioError(ValueError):
    """The scenario file is not valid; the message says where."""


class SellRuleSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    price_yen_per_kg: str | int
    cap_kg: str | int
    name_public: bool = True
    buyers: list[str] = []


class ParticipantSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    name: str
    roles: list[str]
    name_public: bool = True


class DeviceSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    owner: str
    source: str
    capacity_w: int
    municipality: str
    latitude_e2: int
    longitude_e2: int
    commissioned_on: str = "2020-04-01"
    grid_contract: str = "none"
    sell_rule: SellRuleSpec | None = None


class IssueSpec(msgspec.Struct, forbid_unknown_fields=True):
    batch: str
    device: str
    day: str
    self_consumed_wh: int | None = None
    co2_kg: str | int | None = None


class DepositSpec(msgspec.Struct, forbid_unknown_fields=True):
    account: str
    yen: str | int


class SellSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    seller: str
    quantity_kg: str | int
    price_yen_per_kg: str | int
    source: str
    place: str
    all_or_none: bool = False
    name_public: bool = True
    buyers: list[str] = []
    expires_at_ns: int = 0


class BuySpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    buyer: str
    quantity_kg: str | int
    price_yen_per_kg: str | int
    sellers: list[str] = []
    places: list[str] = []
    sources: list[str] = []
    period_from: str = ""
    period_to: str = ""
    commissioned_after: str = ""
    exclude_estimated: bool = False
    all_or_none: bool = False
    expires_at_ns: int = 0


class CancelSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    by: str


class Scenario(msgspec.Struct, forbid_unknown_fields=True):
    title: str
    participants: list[ParticipantSpec]
    devices: list[DeviceSpec] = []
    issuances: list[IssueSpec] = []
    deposits: list[DepositSpec] = []
    steps: list[dict[str, Any]] = []
    chain_id: str = "reco2-scenario"


def load(raw: bytes) -> Scenario:
    try:
        return msgspec.json.decode(raw, type=Scenario)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ScenarioError(f"scenario: {exc}") from exc


def decimal_units(value: str | int, places: int, what: str) -> int:
    """Exact decimal to integer units: decimal_units("1.5", 3) == 1500 (no floats)."""
    text = str(value).strip()
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    whole, _, frac = text.partition(".")
    if not (whole or frac) or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
        raise ScenarioError(f"{what}: {value!r} is not a decimal number")
    if len(frac) > places:
        raise ScenarioError(f"{what}: {value!r} has more than {places} decimals")
    units: int = int(whole or "0") * 10**places + int(frac.ljust(places, "0") or "0")
    return sign * units


def kg_to_g(value: str | int, what: str = "quantity") -> int:
    return decimal_units(value, 3, what)


def yen_to_sen(value: str | int, what: str = "price") -> int:
    return decimal_units(value, 2, what)
