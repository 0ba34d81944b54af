"""The `reco2` command."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reco2.ai import command as mrv_command
from reco2.cli import demo as demo_module
from reco2.cli import market as market_cli
from reco2.cli import meter, tx_commands
from reco2.cli import simulate as simulate_cli
from reco2.cli.common import DataDir, console, err_console, fail
from reco2.echonet import command as echonet_command
from reco2.ledger import history as ledger_history
from reco2.ledger.genesis import Genesis, GenesisParticipant
from reco2.ledger.state import decode_value
from reco2.ledger.types import Role
from reco2.node import history as node_history
from reco2.node.audit import audit as run_audit
from reco2.node.embedded import Node, NodeError, create_chain
from reco2.node.keys import KeyFile, key_path
from reco2.node.view import StateView, ViewError
from reco2.views import records
from reco2.web import serve as web_serve
from reco2.web import users_cli as web_users

app = typer.Typer(
    help="ReCO2: CO2-reduction value of self-consumed renewable energy, on a ledger and a market.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(tx_commands.app, name="tx")
app.add_typer(market_cli.scenario_app, name="scenario")
app.add_typer(mrv_command.app, name="mrv")
app.command("demo")(market_cli.demo)
app.command("tour")(demo_module.demo)
app.command("book")(market_cli.book)
app.command("trades")(market_cli.trades)
app.command("simulate")(simulate_cli.simulate)
app.command("intake")(meter.intake)
app.command("issue-days")(meter.issue_days)
app.command("agent")(echonet_command.agent)
app.command("serve")(web_serve.serve)
app.command("verify-statement")(web_serve.verify_statement)
app.add_typer(web_users.app, name="web")


@app.command()
def init(
    data_dir: DataDir = Path("."),
    chain_id: Annotated[str, typer.Option(help="Name of the chain.")] = "reco2-local",
    authority: Annotated[str, typer.Option(help="Participant id of the registry authority.")] = (
        "authority"
    ),
    authority_name: Annotated[str, typer.Option()] = "Registry authority",
) -> None:
    """Create a chain: genesis, block 0 and the registry authority's key."""
    if (data_dir / "ledger.sqlite").exists():
        fail(f"{data_dir} already holds a chain")
    key = KeyFile.generate(authority)
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ns=time.time_ns(),
        participants=[
            GenesisParticipant(authority, key.public_key, [Role.authority], authority_name)
        ],
    )
    block0 = create_chain(data_dir, genesis)
    key.save(key_path(data_dir, authority))
    console.print(f"chain [bold]{chain_id}[/] created in {data_dir}")
    console.print(f"block 0: {block0.hex()}")
    console.print(f"authority key: {key_path(data_dir, authority)}")


@app.command()
def keygen(
    participant_id: str,
    data_dir: DataDir = Path("."),
) -> None:
    """Make an Ed25519 key for a participant in DIR/keys/ and print its public key."""
    path = key_path(data_dir, participant_id)
    if path.exists():
        fail(f"{path} exists")
    key = KeyFile.generate(participant_id)
    key.save(path)
    sys.stdout.write(key.public_key.hex() + "\n")


node_app = typer.Typer(help="Run a node.", no_args_is_help=True)
app.add_typer(node_app, name="node")


@node_app.command("run")
def node_run(
    data_dir: DataDir = Path("."),
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 26657,
    block_ms: Annotated[int, typer.Option(help="Cut a block every N ms...")] = 20,
    block_txs: Annotated[int, typer.Option(help="...or M transactions.")] = 2_000,
) -> None:
    """Run the embedded node with its HTTP interface."""
    import uvicorn

    from reco2.node.server import create_app

    try:
        node = Node(data_dir, block_interval_ms=block_ms, max_block_txs=block_txs)
    except (NodeError, LookupError) as exc:
        fail(str(exc))
    node.start()
    err_console.print(f"node on {data_dir} at height {node.height}, http://{host}:{port}")
    try:
        uvicorn.run(create_app(node), host=host, port=port, log_level="warning")
    finally:
        node.stop()


@app.command()
def audit(
    data_dir: DataDir = Path("."),
    trusted_hash: Annotated[
        str | None, typer.Option(help="Block hash you trust for the tip (hex).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-verify every signature, hash link, Merkle root and state root from genesis."""
    if not (data_dir / "ledger.sqlite").exists():
        fail(f"{data_dir} holds no chain")
    with Progress(
        TextColumn("audit"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("blocks", total=None)

        def step(height: int, total: int) -> None:
            progress.update(task, completed=height, total=total)

        report = run_audit(
            data_dir,
            trusted_hash=bytes.fromhex(trusted_hash) if trusted_hash else None,
            progress=step,
        )
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "ok": report.ok,
                    "blocks": report.blocks,
                    "txs": report.txs,
                    "state_rows": report.state_rows,
                    "tip_hash": report.tip_hash.hex(),
                    "problems": [
                        {
                            "height": p.height,
                            "tx_index": p.tx_index,
                            "key": None if p.key is None else p.key.decode(errors="replace"),
                            "what": p.what,
                        }
                        for p in report.problems
                    ],
                }
            )
            + "\n"
        )
    elif report.ok:
        console.print(
            f"[green]audit ok[/]: {report.blocks} blocks, {report.txs} transactions, "
            f"{report.state_rows} state rows; tip {report.tip_hash.hex()}"
        )
    else:
        first = report.problems[0]
        err_console.print(f"[bold red]audit failed[/]: first bad {first}")
        for problem in report.problems[1:20]:
            err_console.print(f"  also: {problem}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def proof(
    batch_id: str,
    data_dir: DataDir = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="Write the bundle here (default stdout).")
    ] = None,
) -> None:
    """A batch's full history (issuance, transfers, retirements) with its Merkle proofs."""
    try:
        bundle = node_history.build(data_dir, batch_id)
    except (LookupError, ViewError) as exc:
        fail(str(exc))
    text = json.dumps(bundle, ensure_ascii=False, indent=1)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.write_text(text + "\n", "utf-8")
        err_console.print(
            f"history of {batch_id}: {len(bundle['transactions'])} transactions, "
            f"tip {bundle['tip_hash']} -> {out}"
        )


@app.command("verify-proof")
def verify_proof(
    bundle_file: Path,
    trusted_hash: Annotated[str, typer.Option(help="A block hash you trust (hex).")],
) -> None:
    """Verify a history bundle with nothing but the bundle and a trusted block hash."""
    try:
        bundle = json.loads(bundle_file.read_text("utf-8"))
        verified = ledger_history.verify(bundle, bytes.fromhex(trusted_hash))
    except (ValueError, ledger_history.HistoryError) as exc:
        fail(f"proof does not verify: {exc}")
    batch = verified.batch
    console.print(
        f"[green]verified[/] batch {batch.batch_id} against block "
        f"{verified.tip_height} {verified.tip_hash.hex()[:16]}…"
    )
    console.print(
        f"  device {batch.device_id} ({batch.source}) in {batch.municipality_code}, "
        f"period {batch.period_start_s}-{batch.period_end_s}, {batch.self_consumed_wh} Wh x "
        f"{batch.factor_mg_per_wh} mg/Wh ({batch.factor_version}) = {batch.co2_g} g-CO2"
    )
    table = Table("height", "kind", "signer", "outcome", "detail")
    for event in verified.events:
        table.add_row(
            str(event.height), event.kind, event.signer, event.code, _detail(event.action)
        )
    console.print(table)
    for holder, holding in sorted(verified.holdings.items()):
        console.print(
            f"  {holder}: tradable {holding.tradable_g} g, escrowed "
            f"{holding.escrowed_g} g, retired {holding.retired_g} g"
        )


def _detail(action: Any) -> str:
    fields = msgspec.structs.asdict(action)
    return ", ".join(f"{k}={v.hex() if isinstance(v, bytes) else v}" for k, v in fields.items())


@app.command()
def query(
    key: Annotated[str, typer.Argument(help="A state key, e.g. batch/B1 or participant/alice.")],
    data_dir: DataDir = Path("."),
    prove: Annotated[bool, typer.Option(help="Include the Merkle proof.")] = False,
) -> None:
    """Print a state record as JSON (with --prove: and its proof against the state root)."""
    try:
        view = StateView.open(data_dir)
    except (ViewError, FileNotFoundError) as exc:
        fail(str(exc))
    raw_key = key.encode()
    value = view.commitment.get(raw_key)
    if value is None:
        fail(f"no state at {key!r}", 3)
    record = decode_value(raw_key, value)
    out: dict[str, Any] = {
        "key": key,
        "height": view.height,
        "record": records.to_json(record),
    }
    if prove:
        from reco2.ledger import merkle

        out["state_root"] = view.state_root.hex()
        out["value"] = ledger_history.b64(value)
        out["proof_ops"] = merkle.proof_ops_to_json(view.commitment.prove(raw_key))
    sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=1) + "\n")


def main() -> None:
    app()
