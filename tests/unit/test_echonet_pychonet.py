"""A cross-check with an independent ECHONET Lite implementation, pychonet (PyPI, MIT): its frame
builder and parser and its 0x0288 / 0x0279 value functions against our codec and the simulated
node over loopback UDP. pychonet's network client always sends to port 3610 and joins the
multicast group, so the datagrams here go through a plain socket; the bytes on the wire are
built and read by pychonet alone."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pychonet.HomeSolarPower import HomeSolarPower
from pychonet.lib.functions import buildEchonetMsg, decodeEchonetMsg
from pychonet.LowVoltageSmartElectricEnergyMeter import (
    _0288EA,
    LowVoltageSmartElectricEnergyMeter,
)

from reco2.echonet import frame, objects
from reco2.echonet.device_sim import SimulatedNode, flat_profile

START_S = 1_748_703_600  # 2025-06-01 00:00 JST
PROFILE = flat_profile(START_S, [(0, 300), (1_200, 400), (900, 1_000), (2_000, 100)] * 6)
AT_S = START_S + 7 * 1_800 + 600  # ten minutes into the eighth interval


@pytest.fixture
def node() -> Iterator[SimulatedNode]:
    with SimulatedNode(PROFILE, port=0, meter_unit_code=0x02) as running:
        running.set_time(AT_S)
        yield running


def exchange(node: SimulatedNode, request: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5.0)
        sock.sendto(request, node.address)
        answer: dict[str, Any] = decodeEchonetMsg(sock.recv(2_048))
    return answer


def pychonet_get(tid: int, class_code: int, epcs: list[int]) -> bytes:
    return bytes(
        buildEchonetMsg(
            {
                "TID": tid,
                "DEOJGC": class_code >> 8,
                "DEOJCC": class_code & 0xFF,
                "DEOJCI": 1,
                "ESV": 0x62,
                "OPC": [{"EPC": epc} for epc in epcs],
            }
        )
    )


def test_pychonet_and_our_codec_build_the_same_get() -> None:
    epcs = [0xE1, 0xD3, 0xEA, 0xEB]
    ours = frame.encode(frame.get_request(0x1234, objects.METER_EOJ, tuple(epcs)))
    assert pychonet_get(0x1234, objects.SMART_METER_CLASS, epcs) == ours


def test_pychonet_reads_the_simulated_meter(node: SimulatedNode) -> None:
    epcs = [0xE1, 0xD3, 0xE0, 0xE3, 0xEA, 0xEB]
    answer = exchange(node, pychonet_get(41, objects.SMART_METER_CLASS, epcs))
    assert (answer["TID"], answer["ESV"]) == (41, 0x72)
    assert (answer["SEOJGC"], answer["SEOJCC"], answer["SEOJCI"]) == (0x02, 0x88, 0x01)
    assert [o["EPC"] for o in answer["OPC"]] == epcs
    edt = {o["EPC"]: o["EDT"] for o in answer["OPC"]}
    functions = LowVoltageSmartElectricEnergyMeter.EPC_FUNCTIONS
    unit_fn, unit_table, _ = functions[0xE1]
    unit_kwh = unit_fn(edt[0xE1], unit_table, None)
    assert unit_kwh == 0.01  # 0x02
    assert functions[0xD3](edt[0xD3]) == 1
    # The registers, from the profile computed here: 10 Wh steps of what went each way.
    _, imported_mwh, exported_mwh = PROFILE.cumulative_mwh(AT_S)
    assert functions[0xE0](edt[0xE0]) == imported_mwh // 10_000
    assert functions[0xE3](edt[0xE3]) == exported_mwh // 10_000
    boundary = AT_S - AT_S % 1_800
    _, imported_then, exported_then = PROFILE.cumulative_mwh(boundary)
    local = dt.datetime.fromtimestamp(boundary, dt.timezone(dt.timedelta(hours=9)))
    stamp = local.replace(tzinfo=None).isoformat()
    assert _0288EA(edt[0xEA]) == {"time": stamp, "culmative_value": imported_then // 10_000}
    assert _0288EA(edt[0xEB]) == {"time": stamp, "culmative_value": exported_then // 10_000}


def test_pychonet_reads_the_simulated_solar_unit(node: SimulatedNode) -> None:
    answer = exchange(node, pychonet_get(42, objects.SOLAR_CLASS, [0xE0, 0xE1, 0xE3]))
    assert (answer["TID"], answer["ESV"], answer["SEOJCC"]) == (42, 0x72, 0x79)
    edt = {o["EPC"]: o["EDT"] for o in answer["OPC"]}
    functions = HomeSolarPower.EPC_FUNCTIONS
    generated_mwh, _, exported_mwh = PROFILE.cumulative_mwh(AT_S)
    assert functions[0xE1](edt[0xE1]) == generated_mwh // 1_000  # 0.001 kWh steps
    assert functions[0xE3](edt[0xE3]) == exported_mwh // 1_000
    assert functions[0xE0](edt[0xE0]) == 2_000 * 2  # 2,000 Wh in half an hour [W]


def test_pychonet_sees_no_data_as_no_measurement(node: SimulatedNode) -> None:
    node.no_data.add((objects.SMART_METER_CLASS, 0xE0))
    answer = exchange(node, pychonet_get(43, objects.SMART_METER_CLASS, [0xE0]))
    assert LowVoltageSmartElectricEnergyMeter.EPC_FUNCTIONS[0xE0](answer["OPC"][0]["EDT"]) is None


def test_pychonet_gets_get_sna_for_an_unknown_property(node: SimulatedNode) -> None:
    answer = exchange(node, pychonet_get(44, objects.SMART_METER_CLASS, [0xE1, 0xF5]))
    assert answer["ESV"] == 0x52
    assert [(o["EPC"], o["PDC"]) for o in answer["OPC"]] == [(0xE1, 1), (0xF5, 0)]
