"""`reco2 web add-user`: a login for an existing participant, refused for a wrong key."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from reco2.cli.main import app
from reco2.cli.market import seed_scenario
from reco2.node.keys import KeyFile, key_path
from reco2.scenario import model, runner
from reco2.web import security
from reco2.web.accounts import Accounts

PASSWORD = "a long enough password"


def test_add_user_logs_in_and_holds_the_participants_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert not runner.run(model.load(seed_scenario()), data).failures
    key_file = key_path(data, runner.AGGREGATOR)
    cli = CliRunner()
    args = ["web", "add-user", "agg", "-d", str(data), "--password-stdin"]
    ok = cli.invoke(
        app, [*args, "--participant", runner.AGGREGATOR, "--key-file", str(key_file)],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    wrong = cli.invoke(
        app, [*args, "--participant", runner.BANK, "--key-file", str(key_file)],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert wrong.exit_code != 0 and "not of" in wrong.output
    accounts = Accounts(data, security.KeyVault(security.load_or_create_secret(data)))
    try:
        found = accounts.login("agg", PASSWORD)
        assert found is not None and found[1].participant_id == runner.AGGREGATOR
        assert accounts.seed_of("agg") == KeyFile.load(key_file).seed
        assert accounts.login("agg", "wrong password!") is None
    finally:
        accounts.close()
