"""Market commands: `reco2 scenario run`, `reco2 book`, `reco2 trades`, and the seed demo."""

from __future__ import annotations

import json
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from reco2.cli.common import DataDir, console, err_console, fail
from reco2.ledger import history as ledger_history
from reco2.ledger import units
from reco2.node import history as node_history
from reco2.node.audit import audit
from reco2.node.view import StateView, ViewError
from reco2.scenario import model, runner
from reco2.views import market

scenario_app = typer.Typer(help="Run market scenarios from a file.", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def seed_scenario() -> bytes:
    return resources.files("reco2.data.scenarios").joinpath("seed_market.json").read_bytes()


def show_board(board: dict[str, list[list[str]]], title: str | None = None) -> None:
    if title:
        console.print(f"[bold]{title}[/]")
    sell = Table("注文", "売量 (kg)", "売価 (円/kg)", "売り手", "場所", "電源", title="売り場")
    for row in board["sell"]:
        sell.add_row(*row)
    buy = Table("注文", "買量 (kg)", "買価 (円/kg)", "売り手", "場所", "電源", title="買い場")
    for row in board["buy"]:
        buy.add_row(*row)
    trades = Table("買い注文", "売り注文", "数量 (kg)", "価格 (円/kg)", title="約定")
    for row in board["trades"]:
        trades.add_row(*row)
    console.print(sell)
    console.print(buy)
    console.print(trades)


def _trade_json(trade: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "buy_order",
        "sell_order",
        "quantity_g",
        "price_sen_per_kg",
        "value_sen",
        "seller",
        "buyer",
        "batches",
        "height",
    )
    return {k: trade[k] for k in keep}


def run_file(raw: bytes, data_dir: Path | None, as_json: bool) -> runner.ScenarioResult:
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="reco2-scenario-"))
    try:
        scenario = model.load(raw)
        result = runner.run(scenario, data_dir)
    except model.ScenarioError as exc:
        fail(str(exc))
    if as_json:
        return result
    show_board(result.board, scenario.title)
    for label, code in result.failures:
        err_console.print(f"[yellow]step {label}: {code}[/]")
    return result


@scenario_app.command("run")
def scenario_run(
    file: Path,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", "-d")] = None,
    as_json: Json = False,
) -> None:
    """Run a scenario file on a fresh ledger; print the trades and the final book."""
    result = run_file(file.read_bytes(), data_dir, as_json)
    if as_json:
        out = result.to_json()
        out["trades"] = [_trade_json(t) for t in result.trades]
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")


def demo(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", "-d", help="Fresh directory (default: temp).")
    ] = None,
    as_json: Json = False,
) -> None:
    """The seed's market on a fresh embedded ledger, then the audit and a verified history."""
    result = run_file(seed_scenario(), data_dir, as_json)
    report = audit(result.data_dir)
    traded = result.trades[0]["batches"][0][0] if result.trades else None
    proof_ok = False
    if traded is not None:
        try:
            ledger_history.verify(node_history.build(result.data_dir, traded), report.tip_hash)
            proof_ok = True
        except ledger_history.HistoryError as exc:
            err_console.print(f"[red]history of {traded} does not verify: {exc}[/]")
    if as_json:
        out = result.to_json()
        out["trades"] = [_trade_json(t) for t in result.trades]
        out["audit_ok"] = report.ok
        out["tip_hash"] = report.tip_hash.hex()
        out["proof_ok"] = proof_ok
        out["proof_batch"] = traded
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    else:
        mark = "[green]ok[/]" if report.ok else "[red]FAILED[/]"
        console.print(
            f"audit {mark}: {report.blocks} blocks, {report.txs} transactions, "
            f"tip {report.tip_hash.hex()}"
        )
        if traded:
            console.print(
                f"history of {traded} {'verified' if proof_ok else 'FAILED'} "
                "against the tip (reco2 proof / reco2 verify-proof)"
            )
        console.print(f"data: {result.data_dir}  ·  reco2 book -d {result.data_dir}")
    if result.failures or not report.ok or not proof_ok:
        raise typer.Exit(1)


def _view(data_dir: Path) -> StateView:
    try:
        return StateView.open(data_dir)
    except (ViewError, FileNotFoundError) as exc:
        fail(str(exc))


def book(data_dir: DataDir = Path("."), as_json: Json = False) -> None:
    """The live book of a data directory (hidden sellers show as undisclosed)."""
    view = _view(data_dir)
    if as_json:
        sys.stdout.write(json.dumps(market.book(view.state), ensure_ascii=False) + "\n")
    else:
        show_board(market.board_rows(view.state), f"height {view.height}")


def trades(data_dir: DataDir = Path("."), as_json: Json = False) -> None:
    """Every trade of a data directory, oldest first."""
    view = _view(data_dir)
    rows = market.trades(view.state)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("#", "height", "buy", "sell", "seller", "kg", "yen/kg", "yen", title="約定")
    for t in rows:
        table.add_row(
            str(t["trade_seq"]),
            str(t["height"]),
            t["buy_order"],
            t["sell_order"],
            t["seller"],
            units.format_kg(t["quantity_g"]),
            units.format_yen(t["price_sen_per_kg"]),
            units.format_yen(t["value_sen"]),
        )
    console.print(table)
