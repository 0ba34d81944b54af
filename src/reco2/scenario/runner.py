"""Run a scenario on a fresh embedded ledger and report its trades and final book."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from reco2 import factors
from reco2.ledger import tx
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from reco2.ledger.genesis import Genesis, GenesisParticipant
from reco2.ledger.places import is_municipality_code
from reco2.ledger.types import BuyConditions, GridContract, Role, Source
from reco2.node.embedded import Node, Receipt, create_chain
from reco2.node.keys import KeyFile, key_path
from reco2.scenario.model import (
    BuySpec,
    CancelSpec,
    IssueSpec,
    Scenario,
    ScenarioError,
    SellSpec,
    kg_to_g,
    yen_to_sen,
)
from reco2.views import market

DAY_S = 86_400
AUTHORITY, AGGREGATOR, BANK = "authority", "mrv", "bank"


@dataclass
class ScenarioResult:
    data_dir: Path
    receipts: list[tuple[str, Receipt]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    book: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    board: dict[str, list[list[str]]] = field(default_factory=dict)
    height: int = 0

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(label, r.code) for label, r in self.receipts if not r.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "height": self.height,
            "trades": self.trades,
            "book": self.book,
            "steps": [
                {"step": label, "code": r.code, "height": r.height} for label, r in self.receipts
            ],
        }


def _seed(chain_id: str, name: str) -> bytes:
    # Scenario keys are derived from names so a scenario replays to the same chain;
    # they are demo keys, never to be used for real value.
    return hashlib.sha256(f"reco2-scenario/{chain_id}/{name}".encode()).digest()


class _Runner:
    def __init__(self, scenario: Scenario, data_dir: Path, genesis_time_ns: int) -> None:
        self.scenario = scenario
        self.keys: dict[str, KeyFile] = {}
        chain_id = scenario.chain_id
        for name in [AUTHORITY, AGGREGATOR, BANK] + [p.id for p in scenario.participants]:
            if name in self.keys:
                raise ScenarioError(f"participant {name!r} appears twice")
            self.keys[name] = KeyFile(name, _seed(chain_id, name))
        create_chain(
            data_dir,
            Genesis(
                chain_id,
                genesis_time_ns,
                [
                    GenesisParticipant(
                        AUTHORITY,
                        self.keys[AUTHORITY].public_key,
                        [Role.authority],
                        "登録機関 (registry authority)",
                    )
                ],
            ),
        )
        for key in self.keys.values():
            key.save(key_path(data_dir, key.participant_id))
        # One block at a time, written by this thread: no verifier or writer processes to start.
        self.node = Node(data_dir, verify_workers=0, writer_process=False)
        self.nonces: dict[str, int] = {}
        self.result = ScenarioResult(data_dir)
        self.pending: list[tuple[str, bytes]] = []
        self.devices = {d.id: d for d in scenario.devices}

    def sign(self, signer: str, action: tx.Action) -> bytes:
        if signer not in self.keys:
            raise ScenarioError(f"unknown participant {signer!r}")
        nonce = self.nonces.get(signer, 0)
        self.nonces[signer] = nonce + 1
        body = tx.TxBody(self.scenario.chain_id, signer, nonce, action)  # type: ignore[arg-type]
        return tx.sign(body, self.keys[signer].seed)

    def add(self, label: str, signer: str, action: tx.Action) -> None:
        self.pending.append((label, self.sign(signer, action)))

    def cut(self) -> None:
        if not self.pending:
            return
        receipts = self.node.commit_now([raw for _, raw in self.pending])
        self.result.receipts += [
            (label, r) for (label, _), r in zip(self.pending, receipts, strict=True)
        ]
        self.pending = []

    def setup(self) -> None:
        s = self.scenario
        self.add(
            "register mrv",
            AUTHORITY,
            tx.RegisterParticipant(
                AGGREGATOR, self.keys[AGGREGATOR].public_key, [Role.aggregator], "ReCO2 MRV", True
            ),
        )
        self.add(
            "register bank",
            AUTHORITY,
            tx.RegisterParticipant(
                BANK, self.keys[BANK].public_key, [Role.settlement_agent], "決済機関", True
            ),
        )
        for p in s.participants:
            try:
                roles = [Role(r) for r in p.roles]
            except ValueError as exc:
                raise ScenarioError(f"participant {p.id}: {exc}") from exc
            self.add(
                f"register {p.id}",
                AUTHORITY,
                tx.RegisterParticipant(
                    p.id, self.keys[p.id].public_key, roles, p.name, p.name_public
                ),
            )
        self.add("publish factors", AUTHORITY, factors.publish_action())
        self.cut()
        for d in s.devices:
            if not is_municipality_code(d.municipality):
                raise ScenarioError(f"device {d.id}: unknown municipality {d.municipality!r}")
            self.add(
                f"register device {d.id}",
                d.owner,
                tx.RegisterDevice(
                    d.id,
                    d.owner,
                    AGGREGATOR,
                    Source(d.source),
                    d.capacity_w,
                    d.municipality[:2],
                    d.municipality,
                    d.latitude_e2,
                    d.longitude_e2,
                    d.commissioned_on,
                    GridContract(d.grid_contract),
                    "",
                    [],
                    hashlib.sha256(f"meter/{d.id}".encode()).digest(),
                ),
            )
        self.cut()
        for d in s.devices:
            self.add(f"approve {d.id}", AUTHORITY, tx.ApproveDevice(d.id))
            if d.sell_rule is not None:
                r = d.sell_rule
                self.add(
                    f"sell rule {r.id}",
                    d.owner,
                    tx.SetSellRule(
                        r.id,
                        d.id,
                        yen_to_sen(r.price_yen_per_kg),
                        r.name_public,
                        kg_to_g(r.cap_kg),
                        list(r.buyers),
                    ),
                )
        for deposit in s.deposits:
            self.add(
                f"deposit {deposit.account}",
                BANK,
                tx.DepositYen(
                    deposit.account,
                    yen_to_sen(deposit.yen, "deposit"),
                    f"dep-{deposit.account}-{len(self.pending)}",
                ),
            )
        self.cut()
        for issue in s.issuances:
            self.add(f"issue {issue.batch}", AGGREGATOR, self.issue_action(issue))
        self.cut()

    def issue_action(self, issue: IssueSpec) -> tx.IssueValue:
        device = self.devices.get(issue.device)
        if device is None:
            raise ScenarioError(f"issuance {issue.batch}: unknown device {issue.device!r}")
        day = parse_iso_date(issue.day)
        if day is None:
            raise ScenarioError(f"issuance {issue.batch}: bad day {issue.day!r}")
        start = jst_midnight_s(day)
        if issue.self_consumed_wh is not None:
            wh = issue.self_consumed_wh
        elif issue.co2_kg is not None:
            factor = _national_factor(issue.day)
            wh = -(-kg_to_g(issue.co2_kg) * 1000 // factor)  # rounded up [Wh]
        else:
            raise ScenarioError(f"issuance {issue.batch}: give self_consumed_wh or co2_kg")
        return tx.IssueValue(
            issue.batch,
            issue.device,
            start,
            start + DAY_S,
            wh,
            48,
            0,
            0,
            hashlib.sha256(issue.batch.encode()).digest(),
            factors.shipped_table()["version"],
        )

    def step(self, index: int, step: dict[str, Any]) -> None:
        if len(step) != 1:
            raise ScenarioError(f"step {index}: one of sell, buy, cancel, issue, block")
        ((kind, body),) = step.items()
        try:
            if kind == "sell":
                s = msgspec.convert(body, SellSpec)
                self.add(
                    f"sell {s.id}",
                    s.seller,
                    tx.PlaceSellOrder(
                        s.id,
                        kg_to_g(s.quantity_kg),
                        s.all_or_none,
                        yen_to_sen(s.price_yen_per_kg),
                        Source(s.source),
                        s.place,
                        s.name_public,
                        list(s.buyers),
                        s.expires_at_ns,
                    ),
                )
            elif kind == "buy":
                b = msgspec.convert(body, BuySpec)
                conditions = BuyConditions(
                    list(b.sellers),
                    list(b.places),
                    [Source(x) for x in b.sources],
                    _instant(b.period_from),
                    _instant(b.period_to),
                    b.commissioned_after,
                    b.exclude_estimated,
                )
                self.add(
                    f"buy {b.id}",
                    b.buyer,
                    tx.PlaceBuyOrder(
                        b.id,
                        kg_to_g(b.quantity_kg),
                        b.all_or_none,
                        yen_to_sen(b.price_yen_per_kg),
                        conditions,
                        b.expires_at_ns,
                    ),
                )
            elif kind == "cancel":
                c = msgspec.convert(body, CancelSpec)
                self.add(f"cancel {c.id}", c.by, tx.CancelOrder(c.id))
            elif kind == "issue":
                issue = msgspec.convert(body, IssueSpec)
                self.add(f"issue {issue.batch}", AGGREGATOR, self.issue_action(issue))
            elif kind == "block":
                self.cut()
            else:
                raise ScenarioError(f"step {index}: unknown step {kind!r}")
        except (msgspec.ValidationError, ValueError) as exc:
            if isinstance(exc, ScenarioError):
                raise
            raise ScenarioError(f"step {index} ({kind}): {exc}") from exc

    def run(self) -> ScenarioResult:
        try:
            self.setup()
            for index, step in enumerate(self.scenario.steps):
                self.step(index, step)
            self.cut()
            state = self.node.app.state
            self.result.trades = market.trades(state)
            self.result.book = market.book(state)
            self.result.board = market.board_rows(state)
            self.result.height = self.node.height
        finally:
            self.node.stop()
        return self.result


def _instant(day: str) -> int:
    if not day:
        return 0
    parsed = parse_iso_date(day)
    if parsed is None:
        raise ScenarioError(f"bad date {day!r}")
    return jst_midnight_s(parsed)


def _national_factor(day: str) -> int:
    from reco2.ledger.calendar import fiscal_year

    parsed = parse_iso_date(day)
    assert parsed is not None
    year = fiscal_year(jst_midnight_s(parsed))
    for row in factors.shipped_table()["rows"]:
        if row["fiscal_year"] == year and row["utility"] == "national":
            return int(row["factor_mg_per_wh"])
    raise ScenarioError(f"no shipped emission factor for FY{year}")


def run(scenario: Scenario, data_dir: Path, genesis_time_ns: int | None = None) -> ScenarioResult:
    """Run a scenario on a fresh chain in ``data_dir``."""
    if (data_dir / "ledger.sqlite").exists():
        raise ScenarioError(f"{data_dir} already holds a chain; scenarios need a fresh one")
    data_dir.mkdir(parents=True, exist_ok=True)
    return _Runner(scenario, data_dir, genesis_time_ns or time.time_ns()).run()
