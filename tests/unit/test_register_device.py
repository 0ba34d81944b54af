"""RegisterDevice: an owner (or its aggregator) registers a device; it waits for approval."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support import Case, Ledger, add_participant, device_action, public_key, run_case

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import Device, DeviceStatus, GridContract, Role, SchemeEnrollment, Source

J_CREDIT = SchemeEnrollment("j-credit", 1_740_000_000, 1_760_000_000)
NON_FOSSIL = SchemeEnrollment("non-fossil", 1_700_000_000, 1_720_000_000)


def pv2_registered(ledger: Ledger) -> None:
    device = ledger.app.state.device("pv-2")
    assert device == Device(
        device_id="pv-2",
        owner="maekawa",
        aggregator="mrv",
        source=Source.wind,
        capacity_w=7_000,
        prefecture_code="07",
        municipality_code="072036",
        latitude_e2=3740,
        longitude_e2=14036,
        commissioned_on="2021-10-01",
        grid_contract=GridContract.none,
        utility="A0002",
        other_schemes=[NON_FOSSIL, J_CREDIT],  # sorted by start
        meter_public_key=public_key("meter-pv-2"),
        status=DeviceStatus.pending,
        carry_mg=0,
        registered_height=ledger.app.height,
    )
    assert ledger.app.state.device_by_meter_key(public_key("meter-pv-2")) == "pv-2"


PV2 = device_action(
    "pv-2",
    source=Source.wind,
    capacity_w=7_000,
    prefecture_code="07",
    municipality_code="072036",
    latitude_e2=3740,
    longitude_e2=14036,
    commissioned_on="2021-10-01",
    grid_contract=GridContract.none,
    utility="A0002",
    other_schemes=[J_CREDIT, NON_FOSSIL],
)


def tanaka_prosumer(ledger: Ledger) -> None:
    add_participant(ledger, "tanaka", Role.prosumer)


def pending(state: DeviceStatus = DeviceStatus.pending) -> Callable[[Ledger], None]:
    def then(ledger: Ledger) -> None:
        device = ledger.app.state.device("pv-2")
        assert device is not None
        assert device.status is state

    return then


CASES = [
    Case("ok by owner", "maekawa", PV2, Outcome.ok, then=pv2_registered),
    Case("ok by aggregator", "mrv", PV2, Outcome.ok, then=pv2_registered),
    Case(
        "ok capacity 10 MW",
        "maekawa",
        device_action("pv-2", capacity_w=10_000_000),
        Outcome.ok,
        then=pending(),
    ),
    Case(
        "ok edges of Japan",
        "maekawa",
        device_action("pv-2", latitude_e2=2_000, longitude_e2=15_400),
        Outcome.ok,
    ),
    Case(
        "ok other corner",
        "maekawa",
        device_action("pv-2", latitude_e2=4_600, longitude_e2=12_200),
        Outcome.ok,
    ),
    Case(
        "ok sixteen schemes",
        "maekawa",
        device_action(
            "pv-2", other_schemes=[SchemeEnrollment(f"s{i}", i, i + 1) for i in range(16)]
        ),
        Outcome.ok,
    ),
    Case(
        "ok prefecture 47",
        "maekawa",
        device_action("pv-2", prefecture_code="47", municipality_code="472018"),
        Outcome.ok,
    ),
    # who may sign: the owner or the aggregator it names
    Case(
        "signed by a buyer", "buyer", device_action("pv-2"), Outcome.not_device_owner_or_aggregator
    ),
    Case(
        "signed by the authority",
        "authority",
        device_action("pv-2"),
        Outcome.not_device_owner_or_aggregator,
    ),
    Case(
        "signed by the bank", "bank", device_action("pv-2"), Outcome.not_device_owner_or_aggregator
    ),
    Case(
        "signed by another prosumer",
        "tanaka",
        device_action("pv-2"),
        Outcome.not_device_owner_or_aggregator,
        setup=tanaka_prosumer,
    ),
    Case(
        "owner must be a prosumer",
        "buyer",
        device_action("pv-2", owner="buyer"),
        Outcome.owner_not_prosumer,
    ),
    Case(
        "owner unknown", "mrv", device_action("pv-2", owner="nobody"), Outcome.unknown_participant
    ),
    Case(
        "aggregator unknown",
        "maekawa",
        device_action("pv-2", aggregator="nobody"),
        Outcome.unknown_participant,
    ),
    Case(
        "aggregator must aggregate",
        "maekawa",
        device_action("pv-2", aggregator="buyer"),
        Outcome.aggregator_not_aggregator,
    ),
    Case(
        "self-aggregation by a prosumer",
        "maekawa",
        device_action("pv-2", aggregator="maekawa"),
        Outcome.aggregator_not_aggregator,
    ),
    # against state
    Case(
        "device id taken",
        "maekawa",
        device_action("pv-1", meter_public_key=public_key("another meter")),
        Outcome.device_exists,
    ),
    Case(
        "meter key in use",
        "maekawa",
        device_action("pv-2", meter_public_key=public_key("meter-pv-1")),
        Outcome.meter_key_in_use,
    ),
    # fields
    Case("bad device id", "maekawa", device_action("pv 2"), Outcome.invalid_id),
    Case("empty owner", "maekawa", device_action("pv-2", owner=""), Outcome.invalid_id),
    Case(
        "bad aggregator id", "maekawa", device_action("pv-2", aggregator="a/b"), Outcome.invalid_id
    ),
    Case(
        "zero capacity",
        "maekawa",
        device_action("pv-2", capacity_w=0),
        Outcome.capacity_must_be_positive,
    ),
    Case(
        "negative capacity",
        "maekawa",
        device_action("pv-2", capacity_w=-4_500),
        Outcome.capacity_must_be_positive,
    ),
    Case(
        "capacity above 10 MW",
        "maekawa",
        device_action("pv-2", capacity_w=10_000_001),
        Outcome.capacity_must_be_positive,
    ),
    Case(
        "prefecture 48",
        "maekawa",
        device_action("pv-2", prefecture_code="48"),
        Outcome.invalid_place_code,
    ),
    Case(
        "prefecture 00",
        "maekawa",
        device_action("pv-2", prefecture_code="00"),
        Outcome.invalid_place_code,
    ),
    Case(
        "wrong check digit",
        "maekawa",
        device_action("pv-2", municipality_code="131203"),
        Outcome.invalid_place_code,
    ),
    Case(
        "five-digit municipality",
        "maekawa",
        device_action("pv-2", municipality_code="13120"),
        Outcome.invalid_place_code,
    ),
    Case(
        "municipality of another prefecture",
        "maekawa",
        device_action("pv-2", prefecture_code="07", municipality_code="131202"),
        Outcome.invalid_place_code,
    ),
    Case(
        "latitude too low",
        "maekawa",
        device_action("pv-2", latitude_e2=1_999),
        Outcome.invalid_location,
    ),
    Case(
        "latitude too high",
        "maekawa",
        device_action("pv-2", latitude_e2=4_601),
        Outcome.invalid_location,
    ),
    Case(
        "longitude too low",
        "maekawa",
        device_action("pv-2", longitude_e2=12_199),
        Outcome.invalid_location,
    ),
    Case(
        "longitude too high",
        "maekawa",
        device_action("pv-2", longitude_e2=15_401),
        Outcome.invalid_location,
    ),
    Case(
        "degrees, not hundredths",
        "maekawa",
        device_action("pv-2", latitude_e2=35, longitude_e2=139),
        Outcome.invalid_location,
    ),
    Case(
        "date not ISO",
        "maekawa",
        device_action("pv-2", commissioned_on="2019/04/01"),
        Outcome.invalid_date,
    ),
    Case(
        "date impossible",
        "maekawa",
        device_action("pv-2", commissioned_on="2019-02-30"),
        Outcome.invalid_date,
    ),
    Case("date empty", "maekawa", device_action("pv-2", commissioned_on=""), Outcome.invalid_date),
    Case(
        "meter key short",
        "maekawa",
        device_action("pv-2", meter_public_key=bytes(31)),
        Outcome.invalid_public_key,
    ),
    Case(
        "utility too long",
        "maekawa",
        device_action("pv-2", utility="U" * 17),
        Outcome.text_too_long,
    ),
    Case(
        "scheme name empty",
        "maekawa",
        device_action("pv-2", other_schemes=[SchemeEnrollment("", 0, 1)]),
        Outcome.text_required,
    ),
    Case(
        "scheme name too long",
        "maekawa",
        device_action("pv-2", other_schemes=[SchemeEnrollment("s" * 65, 0, 1)]),
        Outcome.text_too_long,
    ),
    Case(
        "seventeen schemes",
        "maekawa",
        device_action(
            "pv-2", other_schemes=[SchemeEnrollment(f"s{i}", i, i + 1) for i in range(17)]
        ),
        Outcome.text_too_long,
    ),
    Case(
        "scheme ends before it starts",
        "maekawa",
        device_action("pv-2", other_schemes=[SchemeEnrollment("j-credit", 100, 100)]),
        Outcome.invalid_period,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_register_device(case: Case) -> None:
    run_case(case)


def test_a_registered_device_cannot_issue_until_approved() -> None:
    from tests.support import issue_action, world

    ledger = world()
    ledger.attempt("maekawa", device_action("pv-2"), Outcome.ok)
    ledger.attempt("mrv", issue_action("b2", device_id="pv-2"), Outcome.device_not_active)
    ledger.attempt("authority", tx.ApproveDevice("pv-2"), Outcome.ok)
    ledger.attempt("mrv", issue_action("b2", device_id="pv-2"), Outcome.ok)
