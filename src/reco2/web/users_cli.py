"""`reco2 web add-user`: a login for an existing ledger participant, so the web app is usable
beyond the demo. The participant's key file is sealed into the user database under the
server secret (``security.KeyVault``); the password is prompted for, or read from stdin."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from reco2.cli.common import console, fail

app = typer.Typer(help="Web app users.", no_args_is_help=True)


@app.command("add-user")
def add_user(
    username: Annotated[str, typer.Argument(help="The login name.")],
    participant: Annotated[str, typer.Option(help="The ledger participant this user acts as.")],
    key_file: Annotated[Path, typer.Option(help="The participant's key file.")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="The node's data directory.")
    ] = Path("reco2-data"),
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from stdin (one line) instead of a prompt.")
    ] = False,
) -> None:
    """Create a web user for an existing participant whose key you hold."""
    from reco2.node.keys import KeyFile
    from reco2.node.view import StateView
    from reco2.web import demo, security
    from reco2.web.accounts import AccountError, Accounts

    if not demo.has_chain(data_dir):
        fail(f"{data_dir} holds no chain: run `reco2 init` first")
    try:
        key = KeyFile.load(key_file)
    except (OSError, ValueError) as exc:
        fail(f"cannot read key file {key_file}: {exc}")
    if key.participant_id != participant:
        fail(f"{key_file} is the key of {key.participant_id!r}, not of {participant!r}")
    registered = StateView.open(data_dir).state.participant(participant)
    if registered is None:
        fail(f"no participant {participant!r} on the ledger in {data_dir}")
    if registered.public_key != key.public_key:
        fail(f"{key_file} does not hold the ledger key of {participant!r}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        vault = security.KeyVault(security.load_or_create_secret(data_dir))
        accounts = Accounts(data_dir, vault)
    except security.SecretFileError as exc:
        fail(str(exc))
    try:
        accounts.add_user(username, password, participant, key.seed)
    except AccountError as exc:
        fail(str(exc))
    finally:
        accounts.close()
    roles = ", ".join(r.value for r in registered.roles)
    console.print(f"[green]web user {username}[/] acts as {participant} ({roles})")
