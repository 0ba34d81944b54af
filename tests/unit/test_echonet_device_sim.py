"""The simulated ECHONET Lite node over loopback UDP: what it answers to Get (Get_Res, Get_SNA
for unknown properties and objects), how its registers follow the profile in simulated time,
and the faults it can be told to produce."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from reco2.echonet import frame, objects
from reco2.echonet.client import ClientFault, EchonetClient, GetAnswer
from reco2.echonet.device_sim import Garble, Interval, Profile, SimulatedNode, flat_profile
from reco2.echonet.frame import EOJ, ESV, Frame, Property

START_S = 1_748_703_600  # 2025-06-01 00:00 JST
PROFILE = flat_profile(START_S, [(0, 300), (1_200, 400), (500, 500), (2_000, 100)])


@pytest.fixture
def node() -> Iterator[SimulatedNode]:
    with SimulatedNode(PROFILE, port=0) as running:
        yield running


@pytest.fixture
def client() -> Iterator[EchonetClient]:
    with EchonetClient("127.0.0.1", 0, timeout_s=0.3, retries=1) as opened:
        yield opened


def ask(client: EchonetClient, node: SimulatedNode, eoj: EOJ, *epcs: int) -> GetAnswer:
    answer = client.get(node.address, eoj, epcs)
    assert isinstance(answer, GetAnswer), answer
    return answer


def test_the_profile_integrates_to_exact_boundaries() -> None:
    profile = Profile(START_S, (Interval(1_000, 400), Interval(0, 250)))
    assert profile.cumulative_mwh(START_S) == (0, 0, 0)
    assert profile.cumulative_mwh(START_S + 900) == (500_000, 0, 300_000)
    assert profile.cumulative_mwh(START_S + 1_800) == (1_000_000, 0, 600_000)
    assert profile.cumulative_mwh(START_S + 3_600) == (1_000_000, 250_000, 600_000)
    assert profile.cumulative_mwh(START_S + 99_999) == (1_000_000, 250_000, 600_000)
    assert profile.cumulative_mwh(START_S - 5) == (0, 0, 0)
    assert profile.generation_w(START_S + 10) == 2_000


def test_get_res_carries_the_registers_at_the_simulated_time(
    node: SimulatedNode, client: EchonetClient
) -> None:
    node.set_time(START_S + 2 * 1_800 + 600)  # 10 minutes into the third interval
    solar = ask(
        client,
        node,
        objects.SOLAR_EOJ,
        objects.SOLAR_CUMULATIVE_GENERATED,
        objects.SOLAR_CUMULATIVE_SOLD,
        objects.SOLAR_INSTANTANEOUS_W,
    )
    assert solar.esv is ESV.Get_Res and solar.seoj == objects.SOLAR_EOJ
    assert solar.values == {
        0xE1: objects.u32(1_200 + 500 // 3),  # [Wh] = 0.001 kWh steps
        0xE3: objects.u32(800),
        0xE0: objects.u16(1_000),
    }
    meter = ask(
        client,
        node,
        objects.METER_EOJ,
        objects.METER_UNIT,
        objects.METER_COEFFICIENT,
        objects.METER_CUMULATIVE_NORMAL,
        objects.METER_FIXED_TIME_NORMAL,
        objects.METER_FIXED_TIME_REVERSE,
    )
    assert meter.esv is ESV.Get_Res
    boundary = START_S + 2 * 1_800
    assert meter.values[0xE1] == b"\x03" and meter.values[0xD3] == objects.u32(1)
    assert meter.values[0xE0] == objects.u32(300)
    assert meter.values[0xEA] == objects.encode_fixed_time(boundary, 300)
    assert meter.values[0xEB] == objects.encode_fixed_time(boundary, 800)


def test_unknown_properties_and_objects_get_get_sna(
    node: SimulatedNode, client: EchonetClient
) -> None:
    partly = ask(client, node, objects.METER_EOJ, objects.METER_UNIT, 0xF5)
    assert partly.esv is ESV.Get_SNA
    assert partly.values == {0xE1: b"\x03"} and partly.missing == {0xF5}
    nobody = ask(client, node, EOJ(0x0130, 1), 0x80)  # an air conditioner it does not have
    assert nobody.esv is ESV.Get_SNA and nobody.values == {} and nobody.missing == {0x80}
    instances = ask(client, node, frame.NODE_PROFILE, 0xD6)
    assert instances.values[0xD6] == bytes.fromhex("02028801027901")


def test_the_node_is_read_only_and_drops_what_is_not_a_frame(node: SimulatedNode) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        sock.sendto(b"\x10\x81\x00", node.address)  # too short: dropped
        set_c = Frame(7, frame.CONTROLLER, objects.METER_EOJ, ESV.SetC, (Property(0xE1, b"\x01"),))
        sock.sendto(frame.encode(set_c), node.address)
        answer = frame.decode(sock.recv(2_048))
    assert (answer.tid, answer.esv, answer.seoj) == (7, ESV.SetC_SNA, objects.METER_EOJ)
    assert node.stats.undecodable == 1


def test_no_data_is_answered_with_fffffffe(node: SimulatedNode, client: EchonetClient) -> None:
    node.no_data.add((objects.SOLAR_CLASS, objects.SOLAR_CUMULATIVE_GENERATED))
    node.no_data.add((objects.SMART_METER_CLASS, objects.METER_FIXED_TIME_REVERSE))
    solar = ask(client, node, objects.SOLAR_EOJ, objects.SOLAR_CUMULATIVE_GENERATED)
    assert solar.values[0xE1] == b"\xff\xff\xff\xfe"
    meter = ask(client, node, objects.METER_EOJ, objects.METER_FIXED_TIME_REVERSE)
    assert meter.values[0xEB][7:] == b"\xff\xff\xff\xfe"


def test_garbled_answers_and_strays_are_ignored_and_retried(
    node: SimulatedNode, client: EchonetClient
) -> None:
    node.garble_next(Garble.truncated)
    node.stray_next(1)
    answer = ask(client, node, objects.SOLAR_EOJ, objects.SOLAR_CUMULATIVE_GENERATED)
    assert answer.esv is ESV.Get_Res
    assert client.stats.ignored["garbled:edt_runs_past_end"] == 1
    assert client.stats.ignored["other_tid"] == 1
    assert client.stats.ignored["garbled:frame_too_short"] == 1  # the junk after the stray
    assert client.stats.attempts == 2


def test_a_silent_node_gives_no_answer(node: SimulatedNode, client: EchonetClient) -> None:
    node.drop_next(2)
    assert client.get(node.address, objects.SOLAR_EOJ, (0xE1,)) is ClientFault.no_answer
    assert client.stats.timeouts == 2 and node.stats.dropped == 2
    assert isinstance(client.get(node.address, objects.SOLAR_EOJ, (0xE1,)), GetAnswer)


def test_a_reset_starts_the_registers_again_from_zero(
    node: SimulatedNode, client: EchonetClient
) -> None:
    node.set_time(START_S + 2 * 1_800)
    node.reset_registers()
    node.set_time(START_S + 3 * 1_800)
    solar = ask(client, node, objects.SOLAR_EOJ, objects.SOLAR_CUMULATIVE_GENERATED)
    assert solar.values[0xE1] == objects.u32(500)
