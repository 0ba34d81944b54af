"""`reco2 tour`: a short end-to-end story of the ledger on a fresh embedded chain.

Participants are admitted, a rooftop solar unit in Nerima is registered and approved, the
shipped emission factors are published, two days of self-consumed energy become value, part
of it is transferred to a buyer who retires it, yen goes in and out, and the whole chain is
audited and the batch's history proven.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from reco2 import factors
from reco2.cli.common import console, fail
from reco2.ledger import history as ledger_history
from reco2.ledger import tx, units
from reco2.ledger.calendar import INTERVAL_S, jst_midnight_s, parse_iso_date
from reco2.ledger.genesis import Genesis, GenesisParticipant
from reco2.ledger.types import GridContract, Purpose, Role, Source
from reco2.node import history as node_history
from reco2.node.audit import audit
from reco2.node.client import EmbeddedSubmitter, submit
from reco2.node.embedded import Receipt, create_chain
from reco2.node.keys import KeyFile, key_path

DAY_S = 86_400


def _day_start(iso: str) -> int:
    day = parse_iso_date(iso)
    assert day is not None
    return jst_midnight_s(day)


def demo(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", "-d", help="Fresh directory (default: a temp one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """A tour of the ledger: issuance with carry, transfer, retirement, yen, audit, proof."""
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="reco2-demo-"))
    if (data_dir / "ledger.sqlite").exists():
        fail(f"{data_dir} already holds a chain; the demo needs a fresh directory")
    result = run_story(data_dir, quiet=as_json)
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    if not result["audit_ok"] or not result["proof_ok"]:
        raise typer.Exit(1)


def run_story(data_dir: Path, quiet: bool = False) -> dict[str, Any]:
    def say(text: str) -> None:
        if not quiet:
            console.print(text)

    keys = {
        name: KeyFile.generate(name) for name in ("authority", "maekawa", "mrv", "buyer", "bank")
    }
    genesis = Genesis(
        "reco2-demo",
        time.time_ns(),
        [
            GenesisParticipant(
                "authority",
                keys["authority"].public_key,
                [Role.authority],
                "環境省 (registry authority)",
            )
        ],
    )
    create_chain(data_dir, genesis)
    for key in keys.values():
        key.save(key_path(data_dir, key.participant_id))
    meter = KeyFile.generate("meter-nerima-1")
    say(f"[bold]ReCO2 demo[/] on {data_dir}")

    steps: list[tuple[str, Receipt]] = []
    with EmbeddedSubmitter(data_dir, block_interval_ms=1) as node:

        def do(label: str, signer: str, action: tx.Action) -> Receipt:
            receipt = submit(node, keys[signer], action)
            steps.append((label, receipt))
            mark = "[green]ok[/]" if receipt.ok else f"[red]{receipt.code}[/]"
            say(f"  {mark} h{receipt.height}  {label}")
            if not receipt.ok:
                raise RuntimeError(f"demo step {label!r} failed: {receipt.code}")
            return receipt

        for pid, roles, name, public in (
            ("maekawa", [Role.prosumer], "前川敦子", True),
            ("mrv", [Role.aggregator], "ReCO2 MRV 株式会社", True),
            ("buyer", [Role.buyer], "〇×株式会社", True),
            ("bank", [Role.settlement_agent], "みらい銀行 (settlement agent)", True),
        ):
            do(
                f"register {pid} ({', '.join(roles)})",
                "authority",
                tx.RegisterParticipant(pid, keys[pid].public_key, roles, name, public),
            )
        do(
            "register rooftop solar 4.5 kW in 練馬区 (131202)",
            "maekawa",
            tx.RegisterDevice(
                "nerima-pv-1",
                "maekawa",
                "mrv",
                Source.solar,
                4_500,
                "13",
                "131202",
                3574,
                13965,
                "2019-04-01",
                GridContract.fit,
                "",
                [],
                meter.public_key,
            ),
        )
        do("approve the device", "authority", tx.ApproveDevice("nerima-pv-1"))
        table = factors.publish_action()
        do(f"publish emission factors {table.version}", "authority", table)
        day1 = _day_start("2025-06-01")
        issued = []
        for batch_id, start, wh in (
            ("nerima-pv-1:2025-06-01", day1, 9_876),
            ("nerima-pv-1:2025-06-02", day1 + DAY_S, 8_765),
        ):
            do(
                f"issue {batch_id}: {wh} Wh self-consumed",
                "mrv",
                tx.IssueValue(
                    batch_id,
                    "nerima-pv-1",
                    start,
                    start + DAY_S,
                    wh,
                    DAY_S // INTERVAL_S,
                    0,
                    0,
                    bytes(32),
                    table.version,
                ),
            )
            issued.append(batch_id)
        do("deposit ¥5,000 for the buyer", "bank", tx.DepositYen("buyer", 500_000, "pay-0001"))
        do("transfer 2.000 kg to the buyer", "maekawa", tx.TransferValue(issued[0], "buyer", 2_000))
        do(
            "buyer retires 1.500 kg (offset, FY2025)",
            "buyer",
            tx.RetireValue(
                "ret-0001",
                issued[0],
                1_500,
                "〇×株式会社",
                Purpose.offset,
                "FY2025",
                "社用車の排出をオフセット",
            ),
        )
        do(
            "withdraw ¥1,000 of the buyer's yen",
            "buyer",
            tx.WithdrawYen(100_000, "bank", "wd-0001"),
        )
        state = node.node.app.state
        batches = [state.batch(b) for b in issued]
        holdings = {(b, h): state.holding(b, h) for b in issued for h in ("maekawa", "buyer")}
        tip_height = node.node.height
    rows = Table("batch", "Wh", "factor", "issued", "carry out")
    for batch in batches:
        assert batch is not None
        rows.add_row(
            batch.batch_id,
            str(batch.self_consumed_wh),
            f"{batch.factor_mg_per_wh} mg/Wh",
            f"{units.format_kg(batch.co2_g)} kg",
            f"{batch.carried_out_mg} mg",
        )
    if not quiet:
        console.print(rows)
        for (batch_id, holder), holding in holdings.items():
            if holding is not None:
                console.print(
                    f"  {batch_id} / {holder}: tradable {units.format_kg(holding.tradable_g)} kg, "
                    f"retired {units.format_kg(holding.retired_g)} kg"
                )
    report = audit(data_dir)
    say(
        ("[green]audit ok[/]" if report.ok else "[red]audit FAILED[/]")
        + f": {report.blocks} blocks, {report.txs} transactions, tip {report.tip_hash.hex()}"
    )
    bundle = node_history.build(data_dir, issued[0])
    proof_ok = True
    try:
        verified = ledger_history.verify(bundle, report.tip_hash)
        say(
            f"[green]history of {issued[0]} verified[/] against the tip: "
            f"{len(verified.events)} transactions, holdings "
            + ", ".join(
                f"{h}={v.tradable_g}+{v.retired_g}r g" for h, v in sorted(verified.holdings.items())
            )
        )
    except ledger_history.HistoryError as exc:
        proof_ok = False
        say(f"[red]history does not verify: {exc}[/]")
    if not quiet:
        console.print(
            f"\nTry: reco2 audit -d {data_dir}   ·   reco2 proof {issued[0]} -d {data_dir}"
        )
    return {
        "data_dir": str(data_dir),
        "height": tip_height,
        "batches": [
            {"batch_id": b.batch_id, "co2_g": b.co2_g, "carried_out_mg": b.carried_out_mg}
            for b in batches
            if b is not None
        ],
        "holdings": {
            f"{b}/{h}": [v.tradable_g, v.escrowed_g, v.retired_g]
            for (b, h), v in holdings.items()
            if v is not None
        },
        "steps": [{"step": label, "code": r.code, "height": r.height} for label, r in steps],
        "audit_ok": report.ok,
        "tip_hash": report.tip_hash.hex(),
        "proof_ok": proof_ok,
    }
