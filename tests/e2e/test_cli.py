"""The newcomer's path through the real `reco2` command, each call its own process: create a
chain, make keys, submit every transaction kind (straight into the data directory, and over
HTTP to a running `reco2 node run`), query state, audit, and prove a batch's history."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from reco2.ledger import merkle, tx
from reco2.ledger.types import (
    Device,
    Holding,
    Participant,
    Retirement,
    ValueBatch,
    YenAccount,
)
from tests.e2e.harness import NodeProcess, cli_json, one_line, record_dict, run_cli
from tests.support import day_start

FACTOR_VERSION = "moe-meti-r6-results"
DAY_S = 86_400
DEVICE = [
    "--owner",
    "maekawa",
    "--aggregator",
    "mrv",
    "--source",
    "solar",
    "--capacity-w",
    "4500",
    "--prefecture",
    "13",
    "--municipality",
    "131202",
    "--latitude-e2",
    "3574",
    "--longitude-e2",
    "13965",
    "--commissioned-on",
    "2019-04-01",
    "--grid-contract",
    "fit",
]


class Newcomer:
    """Runs `reco2 tx ...` against a data directory, or through a node with --node URL."""

    def __init__(self, data_dir: Path, node_url: str | None) -> None:
        self.data_dir = data_dir
        self.node_url = node_url
        self.heights: list[int] = []

    def tx(
        self, kind: str, *args: object, key: str | None = None, expect: int = 0
    ) -> dict[str, Any]:
        argv: list[object] = ["tx", kind, *args, "-d", self.data_dir, "--json"]
        if key:
            argv += ["-k", key]
        if self.node_url:
            argv += ["--node", self.node_url]
        receipt: dict[str, Any] = cli_json(*argv, expect=expect)
        if expect == 0:
            assert receipt["code"] == "ok" and receipt["height"] is not None, receipt
        if receipt["height"] is not None:  # in a block, whatever its outcome
            assert not self.heights or receipt["height"] > self.heights[-1], receipt
            self.heights.append(receipt["height"])
        return receipt

    def query(self, key: str, record_type: type[msgspec.Struct]) -> dict[str, Any]:
        out = cli_json("query", key, "-d", self.data_dir)
        assert out["key"] == key
        return record_dict(record_type, out["record"])


def keygen(data_dir: Path, participant_id: str) -> str:
    proc = run_cli("keygen", participant_id, "-d", data_dir)
    public = proc.stdout.strip()
    assert len(bytes.fromhex(public)) == 32, proc.stdout
    assert (data_dir / "keys" / f"{participant_id}.key").exists()
    return public


def newcomer_story(me: Newcomer, keys: dict[str, str]) -> None:
    """Every transaction kind, in the order a new chain needs them."""
    for pid, role, extra in (
        ("maekawa", "prosumer", ["--name", "前川敦子"]),
        ("mrv", "aggregator", ["--name", "ReCO2 MRV"]),
        ("buyer", "buyer", ["--name", "〇×株式会社", "--hidden"]),
        ("bank", "settlement_agent", ["--name", "みらい銀行"]),
    ):
        receipt = me.tx(
            "register-participant", pid, "--public-key", keys[pid], "--role", role, *extra
        )
        assert receipt["events"] == [f"participant/{pid}"]
    me.tx(
        "register-device", "pv-1", *DEVICE, "--meter-public-key", keys["meter-pv-1"], key="maekawa"
    )
    me.tx("approve-device", "pv-1")
    me.tx("publish-factors")
    start = day_start("2025-06-01")
    for batch_id, day_start_s, wh in (("b1", start, 9_876), ("b2", start + DAY_S, 8_765)):
        me.tx(
            "issue",
            batch_id,
            "--device",
            "pv-1",
            "--period-start-s",
            day_start_s,
            "--period-end-s",
            day_start_s + DAY_S,
            "--self-consumed-wh",
            wh,
            "--measured-intervals",
            48,
            "--readings-root",
            "00" * 32,
            "--factor-version",
            FACTOR_VERSION,
            key="mrv",
        )
    me.tx("transfer", "b1", "--to", "buyer", "--quantity-g", 2_000, key="maekawa")
    me.tx("deposit", "buyer", "--amount-sen", 500_000, "--reference", "pay-1", key="bank")
    me.tx(
        "retire",
        "ret-1",
        "--batch",
        "b1",
        "--quantity-g",
        1_500,
        "--beneficiary",
        "〇×株式会社",
        "--purpose",
        "offset",
        "--claimed-period",
        "FY2025",
        "--note",
        "社用車の排出をオフセット",
        key="buyer",
    )
    me.tx(
        "withdraw", "--amount-sen", 100_000, "--agent", "bank", "--reference", "wd-1", key="buyer"
    )
    me.tx("deactivate-device", "pv-1", "--reason", "moved house", key="maekawa")

    # Refusals come back with their code and exit 2; the chain records the in-block ones.
    refused = me.tx(
        "transfer", "b1", "--to", "maekawa", "--quantity-g", 10**6, key="buyer", expect=2
    )
    assert refused["code"] == "insufficient_value" and refused["height"] is not None, refused
    late = me.tx(
        "issue",
        "b3",
        "--device",
        "pv-1",
        "--period-start-s",
        start + 2 * DAY_S,
        "--period-end-s",
        start + 3 * DAY_S,
        "--self-consumed-wh",
        1_000,
        "--measured-intervals",
        48,
        "--readings-root",
        "00" * 32,
        "--factor-version",
        FACTOR_VERSION,
        key="mrv",
        expect=2,
    )
    assert late["code"] == "device_not_active", late
    door = me.tx("transfer", "b1", "--to", "maekawa", "--quantity-g", 0, key="buyer", expect=2)
    assert door["code"] == "quantity_must_be_positive" and door["height"] is None, door


def check_state(me: Newcomer) -> None:
    b1 = me.query("batch/b1", ValueBatch)
    b2 = me.query("batch/b2", ValueBatch)
    assert (b1["co2_g"], b1["carried_in_mg"], b1["carried_out_mg"]) == (4_177, 0, 548), b1
    assert (b2["co2_g"], b2["carried_in_mg"], b2["carried_out_mg"]) == (3_708, 548, 143), b2
    assert (b1["factor_mg_per_wh"], b1["factor_version"]) == (423, FACTOR_VERSION)
    assert (b1["owner"], b1["device_id"], b1["municipality_code"]) == ("maekawa", "pv-1", "131202")
    assert me.query("holding/b1/maekawa", Holding) == dict(
        tradable_g=2_177, escrowed_g=0, retired_g=0
    )
    assert me.query("holding/b1/buyer", Holding) == dict(
        tradable_g=500, escrowed_g=0, retired_g=1_500
    )
    assert me.query("holding/b2/maekawa", Holding)["tradable_g"] == 3_708
    assert me.query("yen/buyer", YenAccount) == dict(available_sen=400_000, escrowed_sen=0)
    retirement = me.query("retirement/ret-1", Retirement)
    assert (retirement["holder"], retirement["quantity_g"], retirement["purpose"]) == (
        "buyer",
        1_500,
        "offset",
    )
    assert me.query("device/pv-1", Device)["status"] == "deactivated"
    buyer = me.query("participant/buyer", Participant)
    assert buyer["name_public"] is False and buyer["roles"] == ["buyer"]
    assert buyer["next_nonce"] == 3  # retire, withdraw, the failed transfer (in a block)
    proven = cli_json("query", "batch/b1", "-d", me.data_dir, "--prove")
    ops = merkle.proof_ops_from_json(proven["proof_ops"])
    assert [op.type for op in ops] == ["simple:v", "simple:v"], proven["proof_ops"]
    # The value is proven against the root with CometBFT's VerifyValue semantics: the op keys
    # name the path (outermost, the bucket; innermost, the state key).
    path = merkle.keypath([ops[1].key, ops[0].key])
    assert ops[0].key == b"batch/b1"
    value = base64.b64decode(proven["value"])
    merkle.verify_value(ops, bytes.fromhex(proven["state_root"]), path, value)
    with pytest.raises(merkle.ProofError):
        merkle.verify_value(ops, bytes.fromhex(proven["state_root"]), path, value + b"\x00")
    missing = run_cli("query", "batch/nope", "-d", me.data_dir, expect=3)
    assert "no state" in missing.stderr


def check_audit_and_proof(me: Newcomer, tmp_path: Path) -> None:
    text = run_cli("audit", "-d", me.data_dir)
    assert "audit ok" in text.stdout
    report = cli_json("audit", "-d", me.data_dir, "--json")
    assert report["ok"] and report["problems"] == []
    assert report["blocks"] == me.heights[-1] + 1 == len(me.heights) + 1  # and block 0
    tip = report["tip_hash"]

    bundle_file = tmp_path / f"b1-{'node' if me.node_url else 'dir'}.json"
    run_cli("proof", "b1", "-d", me.data_dir, "--out", bundle_file)
    bundle = json.loads(bundle_file.read_text("utf-8"))
    assert bundle["tip_hash"] == tip and bundle["batch_id"] == "b1"
    # b1's history: its issuance, the transfer to the buyer and the retirement (the story's
    # 8th, 10th and 12th blocks); the buyer's refused transfer moved nothing and is not in it.
    assert [e["height"] for e in bundle["transactions"]] == [me.heights[i] for i in (7, 9, 11)]
    verified = run_cli("verify-proof", bundle_file, "--trusted-hash", tip)
    out = one_line(verified.stdout)
    assert "verified batch b1" in out and "4177 g-CO2" in out, out
    assert "buyer: tradable 500 g, escrowed 0 g, retired 1500 g" in out, out

    for label, tampered in tampered_bundles(bundle, tip):
        path = tmp_path / f"tampered-{label}.json"
        trusted = tampered.pop("_trusted", tip)
        path.write_text(json.dumps(tampered), "utf-8")
        refused = run_cli("verify-proof", path, "--trusted-hash", trusted, expect=None)
        assert refused.returncode != 0, f"{label}: a tampered bundle verified:\n{refused.stdout}"
        assert "proof does not verify" in one_line(refused.stderr), (label, refused.stderr)


def tampered_bundles(bundle: dict[str, Any], tip: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The bundle with one quantity changed in a state value, then in a transaction, and the
    untouched bundle against a block hash that is not its tip."""
    copy = json.loads(json.dumps(bundle))
    entry = next(s for s in copy["state"] if s["key"] == "holding/b1/buyer")
    holding = msgspec.msgpack.decode(base64.b64decode(entry["value"]), type=Holding)
    assert holding == Holding(500, 0, 1_500)
    entry["value"] = base64.b64encode(msgspec.msgpack.encode(Holding(1_500, 0, 500))).decode()
    yield "state-value", copy

    copy = json.loads(json.dumps(bundle))
    for entry in copy["transactions"]:
        raw = base64.b64decode(entry["tx"])
        decoded = tx.decode(raw, 1 << 20)
        assert isinstance(decoded, tx.DecodedTx)
        action = decoded.body.action
        if isinstance(action, tx.TransferValue) and action.quantity_g == 2_000:
            body = msgspec.structs.replace(
                decoded.body, action=msgspec.structs.replace(action, quantity_g=20_000)
            )
            envelope = msgspec.structs.replace(decoded.envelope, body=tx.encode(body))
            entry["tx"] = base64.b64encode(tx.encode(envelope)).decode()
            break
    else:
        raise AssertionError("no transfer of 2,000 g in the bundle")
    yield "tx-quantity", copy

    other = json.loads(json.dumps(bundle))
    other["_trusted"] = tip[:-2] + ("00" if tip[-2:] != "00" else "01")
    yield "untrusted-tip", other


@pytest.mark.parametrize("through", ["data-dir", "node"])
def test_newcomer_path(tmp_path: Path, through: str) -> None:
    data_dir = tmp_path / "chain"
    init = run_cli("init", "-d", data_dir)
    assert "created" in init.stdout and (data_dir / "keys" / "authority.key").exists()
    again = run_cli("init", "-d", data_dir, expect=1)
    assert "already holds a chain" in one_line(again.stderr)
    keys = {pid: keygen(data_dir, pid) for pid in ("maekawa", "mrv", "buyer", "bank", "meter-pv-1")}
    assert len(set(keys.values())) == len(keys)
    if through == "data-dir":
        me = Newcomer(data_dir, None)
        newcomer_story(me, keys)
        check_state(me)
        check_audit_and_proof(me, tmp_path)
        return
    with NodeProcess(data_dir, tmp_path / "node.log") as node:
        me = Newcomer(data_dir, node.url)
        # While a node holds the data directory, direct submission is refused with advice.
        busy = run_cli("tx", "approve-device", "pv-1", "-d", data_dir, expect=1)
        assert "another node is running" in one_line(busy.stderr), busy.stderr
        assert "--node" in one_line(busy.stderr)
        newcomer_story(me, keys)
        assert node.status()["height"] == me.heights[-1]
        # Reads, the audit and proofs work beside the running node.
        check_state(me)
        check_audit_and_proof(me, tmp_path)
        assert node.alive
    assert run_cli("audit", "-d", data_dir).returncode == 0


def test_tour_json(tmp_path: Path) -> None:
    """`reco2 tour`: the ledger's own story (issuance with carry, transfer, retirement, yen)."""
    result = cli_json("tour", "-d", tmp_path / "tour", "--json")
    assert result["audit_ok"] is True and result["proof_ok"] is True
    assert [(b["co2_g"], b["carried_out_mg"]) for b in result["batches"]] == [
        (4_177, 548),
        (3_708, 143),
    ]
    assert all(step["code"] == "ok" for step in result["steps"]), result["steps"]
    assert result["holdings"]["nerima-pv-1:2025-06-01/buyer"] == [500, 0, 1_500]
    report = cli_json("audit", "-d", tmp_path / "tour", "--json")
    assert report["ok"] and report["tip_hash"] == result["tip_hash"]
    again = run_cli("tour", "-d", tmp_path / "tour", expect=1)
    assert "fresh directory" in one_line(again.stderr)


def test_demo_json(tmp_path: Path) -> None:
    """`reco2 demo`: the seed's market, then the audit and a verified history."""
    result = cli_json("demo", "-d", tmp_path / "demo", "--json")
    assert result["audit_ok"] is True and result["proof_ok"] is True
    assert all(step["code"] == "ok" for step in result["steps"]), result["steps"]
    report = cli_json("audit", "-d", tmp_path / "demo", "--json")
    assert report["ok"] and report["tip_hash"] == result["tip_hash"]
    run_cli("audit", "-d", tmp_path / "demo")
