"""`reco2 serve`: the embedded node with the HTTP API and the web market."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reco2.cli.common import console, err_console, fail

if TYPE_CHECKING:
    from reco2.ingest.devices import LedgerDevices
    from reco2.ingest.engine import IntakeEngine
    from reco2.mrv.store import ReadingsStore

READINGS_FILE = "readings.sqlite"  # the default store of `reco2 intake` too


def serve(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="The node's data directory.")
    ] = Path("reco2-data"),
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    demo_data: Annotated[
        bool,
        typer.Option(
            "--demo", help="Load the seed market and two web users into a fresh data directory."
        ),
    ] = False,
    insecure_cookies: Annotated[
        bool,
        typer.Option(help="Send cookies without Secure (only behind plain HTTP off loopback)."),
    ] = False,
    block_ms: Annotated[int, typer.Option(help="Cut a block every N ms.")] = 20,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Readings store for POST /api/v1/readings: sqlite:///path/readings.sqlite "
            "(default DIR/readings.sqlite) or postgresql://user@host:port/db.",
            envvar="RECO2_STORE",
        ),
    ] = None,
    intake: Annotated[
        bool, typer.Option("--intake/--no-intake", help="Take signed readings at /api/v1/readings.")
    ] = True,
) -> None:
    """Start the API and the web app with the embedded node (API reference at /docs)."""
    import uvicorn

    from reco2.ingest.devices import LedgerDevices, LedgerUnavailable
    from reco2.ingest.engine import IntakeEngine
    from reco2.mrv.store import StoreError, open_store
    from reco2.node.embedded import Node, NodeError
    from reco2.web import demo, security
    from reco2.web.accounts import Accounts
    from reco2.web.app import WebConfig, create_app

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        vault = security.KeyVault(security.load_or_create_secret(data_dir))
    except security.SecretFileError as exc:
        fail(str(exc))
    accounts = Accounts(data_dir, vault)
    if demo_data:
        if demo.has_chain(data_dir):
            fail(f"{data_dir} already holds a chain; --demo needs a fresh directory")
        try:
            users = demo.load(data_dir, accounts)
        except demo.DemoError as exc:
            fail(str(exc))
        console.print("[bold]demo web users[/] (passwords are shown only this once):")
        for user in users:
            print(
                f"demo-user role={user.role} username={user.username} "
                f"password={user.password} participant={user.participant_id}",
                flush=True,
            )
    elif not demo.has_chain(data_dir):
        fail(f"{data_dir} holds no chain: run `reco2 init` first, or pass --demo")
    readings: ReadingsStore | None = None
    devices: LedgerDevices | None = None
    engine: IntakeEngine | None = None
    if intake:
        url = store or f"sqlite://{(data_dir / READINGS_FILE).absolute()}"
        try:
            readings = open_store(url)
            devices = LedgerDevices(data_dir)
        except (StoreError, LedgerUnavailable, OSError) as exc:
            if readings is not None:
                readings.close()
            fail(f"cannot open the readings intake: {exc}")
        engine = IntakeEngine(readings, devices).start()
    try:
        node = Node(data_dir, block_interval_ms=block_ms)
    except (NodeError, LookupError) as exc:
        _close_intake(engine, readings, devices)
        fail(str(exc))
    node.start()
    app = create_app(
        node, accounts, WebConfig(data_dir, secure_cookies=not insecure_cookies), engine
    )
    err_console.print(f"node on {data_dir} at height {node.height}")
    if readings is not None:
        err_console.print(f"readings intake into {readings.display_url}")
    print(f"serving http://{host}:{port}/board", flush=True)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    try:
        uvicorn.Server(config).run()
    finally:
        _close_intake(engine, readings, devices)  # stores what was queued first
        node.stop()
        accounts.close()


def _close_intake(
    engine: IntakeEngine | None, readings: ReadingsStore | None, devices: LedgerDevices | None
) -> None:
    if engine is not None:
        engine.stop()
    if readings is not None:
        readings.close()
    if devices is not None:
        devices.close()


def verify_statement(
    statement_file: Annotated[Path, typer.Argument(help="A retirement statement PDF.")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="The ledger to check it against.")
    ] = Path("reco2-data"),
) -> None:
    """Verify a retirement statement PDF against a ledger's data directory."""
    from reco2.web import statement

    try:
        doc = statement.from_pdf(statement_file.read_bytes())
        verified = statement.verify_against_ledger(doc, data_dir)
    except (OSError, statement.StatementError) as exc:
        fail(f"statement does not verify: {exc}")
    console.print(
        f"[green]verified[/] retirement {verified.retirement_id}: {verified.quantity_g} g of "
        f"batch {verified.batch_id}, block {verified.height} {verified.block_hash.hex()}; "
        f"proof against block {verified.tip_height} {verified.tip_hash.hex()}"
    )
