"""Options and helpers the commands share."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from reco2.ledger import tx
from reco2.node.client import EmbeddedSubmitter, HttpSubmitter, Submitter, submit
from reco2.node.embedded import NodeError, Receipt
from reco2.node.keys import KeyFile, key_path

console = Console()
err_console = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", "-d", help="The node's data directory.", envvar="RECO2_DATA_DIR"),
]
NodeUrl = Annotated[
    str | None,
    typer.Option("--node", help="URL of a running node (default: use --data-dir directly)."),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", "-k", help="Key file, or a participant id with a key in DIR/keys/."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def load_key(data_dir: Path, key: str | None, default: str = "authority") -> KeyFile:
    name = key or default
    path = Path(name)
    if not path.exists():
        path = key_path(data_dir, name)
    if not path.exists():
        fail(f"no key file {name!r} (looked in {path})")
    return KeyFile.load(path)


def open_submitter(data_dir: Path, node: str | None) -> Submitter:
    if node:
        return HttpSubmitter(node)
    try:
        return EmbeddedSubmitter(data_dir, block_interval_ms=1)
    except NodeError as exc:
        fail(f"{exc} (pass --node URL to submit to it)")
    except (FileNotFoundError, LookupError) as exc:
        fail(str(exc))


def send(
    data_dir: Path, node: str | None, key: str | None, action: tx.Action, as_json: bool = False
) -> Receipt:
    signer = load_key(data_dir, key)
    submitter = open_submitter(data_dir, node)
    try:
        receipt = submit(submitter, signer, action)
    finally:
        submitter.close()
    show_receipt(receipt, as_json)
    if not receipt.ok:
        raise typer.Exit(2)
    return receipt


def show_receipt(receipt: Receipt, as_json: bool) -> None:
    data: dict[str, Any] = {
        "tx_hash": receipt.tx_hash.hex(),
        "code": receipt.code,
        "height": receipt.height,
        "index": receipt.index,
        "events": list(receipt.events),
    }
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
    elif receipt.ok:
        console.print(f"[green]ok[/] at height {receipt.height} (tx {receipt.tx_hash.hex()[:16]}…)")
    else:
        where = "refused" if receipt.height is None else f"failed in block {receipt.height}"
        err_console.print(f"[bold red]{receipt.code}[/] ({where})")
