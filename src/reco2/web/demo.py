"""Demo data for ``reco2 serve --demo``: the seed's market, plus a web buyer and a web seller.

The seed's participants, devices, batches, orders and trades come from the shipped seed
scenario. Two more participants log in through the web: a buyer with yen on deposit and a
seller (prosumer) with a rooftop solar unit in 福島市 (072010) whose aggregator is the seed's
``mrv``. Their passwords are random and returned once, to be printed once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reco2.ledger import tx
from reco2.ledger.types import GridContract, Role, Source
from reco2.node.client import EmbeddedSubmitter, submit
from reco2.node.keys import KeyFile, key_path
from reco2.scenario import model, runner
from reco2.web import demo_readings, security
from reco2.web.accounts import Accounts

BUYER, SELLER = "web-buyer", "web-seller"
SELLER_DEVICE = "fukushima-pv-web"
BUYER_DEPOSIT_SEN = 1_000_000  # ¥10,000


@dataclass(frozen=True, slots=True)
class DemoUser:
    username: str
    password: str
    participant_id: str
    role: str


class DemoError(RuntimeError):
    pass


def has_chain(data_dir: Path) -> bool:
    return (data_dir / "ledger.sqlite").exists()


def load(data_dir: Path, accounts: Accounts) -> list[DemoUser]:
    """Create the seed market and the web users in a fresh data directory."""
    from reco2.cli.market import seed_scenario

    if has_chain(data_dir):
        raise DemoError(f"{data_dir} already holds a chain; the demo needs a fresh one")
    result = runner.run(model.load(seed_scenario()), data_dir)
    if result.failures:
        raise DemoError(f"the seed scenario failed: {result.failures}")
    keys = {
        name: KeyFile.load(key_path(data_dir, name))
        for name in (runner.AUTHORITY, runner.AGGREGATOR, runner.BANK)
    }
    web = {pid: KeyFile(pid, os.urandom(32)) for pid in (BUYER, SELLER)}
    meter = KeyFile.generate(f"meter-{SELLER_DEVICE}")
    with EmbeddedSubmitter(data_dir) as node:
        steps: list[tuple[KeyFile, tx.Action]] = [
            (
                keys[runner.AUTHORITY],
                tx.RegisterParticipant(
                    BUYER, web[BUYER].public_key, [Role.buyer], "デモ買い手株式会社", True
                ),
            ),
            (
                keys[runner.AUTHORITY],
                tx.RegisterParticipant(
                    SELLER, web[SELLER].public_key, [Role.prosumer], "福島ソーラー合同会社", True
                ),
            ),
            (
                web[SELLER],
                tx.RegisterDevice(
                    SELLER_DEVICE,
                    SELLER,
                    runner.AGGREGATOR,
                    Source.solar,
                    6_000,
                    "07",
                    "072010",
                    3776,
                    14047,
                    "2022-04-01",
                    GridContract.none,
                    "",
                    [],
                    meter.public_key,
                ),
            ),
            (keys[runner.AUTHORITY], tx.ApproveDevice(SELLER_DEVICE)),
            (keys[runner.BANK], tx.DepositYen(BUYER, BUYER_DEPOSIT_SEN, "web-demo-deposit-1")),
        ]
        for key, action in steps:
            receipt = submit(node, key, action)
            if not receipt.ok:
                raise DemoError(f"demo step {tx.kind_of(action)} failed: {receipt.code}")
        demo_readings.add(data_dir, node, SELLER_DEVICE, meter, keys[runner.AGGREGATOR])
    users = []
    for username, pid, role in (("buyer", BUYER, "buyer"), ("seller", SELLER, "prosumer")):
        password = security.new_password()
        accounts.add_user(username, password, pid, web[pid].seed)
        users.append(DemoUser(username, password, pid, role))
    return users
