"""Shared test helpers: deterministic keys, a ledger harness driving the Application
directly (no node, no I/O), and a ready-made world of participants and a device."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from reco2.ledger import invariants, tx
from reco2.ledger.app import Application, FinalizeBlockResult
from reco2.ledger.block import TxResult
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from reco2.ledger.genesis import Genesis, GenesisParticipant
from reco2.ledger.types import GridContract, Role, Source

CHAIN_ID = "reco2-test"
DAY_S = 86_400
GENESIS_TIME_NS = 1_750_000_000 * 1_000_000_000  # 2025-06-15


def seed_of(name: str) -> bytes:
    """A deterministic Ed25519 seed for a name (tests only)."""
    return hashlib.sha256(b"reco2-test-seed/" + name.encode()).digest()


def public_key(name: str) -> bytes:
    return tx.public_key_of(seed_of(name))


def day_start(iso: str) -> int:
    day = parse_iso_date(iso)
    assert day is not None
    return jst_midnight_s(day)


def genesis(authority: str = "authority") -> Genesis:
    return Genesis(
        CHAIN_ID,
        GENESIS_TIME_NS,
        [GenesisParticipant(authority, public_key(authority), [Role.authority], "Authority")],
    )


@dataclass
class Ledger:
    """Drives an Application block by block, signing as named participants, and checks the
    DESIGN section 7 invariants after every block."""

    app: Application = field(default_factory=lambda: Application(genesis()))
    nonces: dict[str, int] = field(default_factory=dict)
    time_ns: int = GENESIS_TIME_NS
    check_invariants: bool = True
    _retired: dict[bytes, int] = field(default_factory=dict)

    def sign(self, signer: str, action: tx.Action, nonce: int | None = None,
             key_of: str | None = None) -> bytes:
        if nonce is None:
            nonce = self.nonces.get(signer, 0)
            self.nonces[signer] = nonce + 1
        body = tx.TxBody(CHAIN_ID, signer, nonce, action)  # type: ignore[arg-type]
        return tx.sign(body, seed_of(key_of or signer))

    def block(self, raws: Sequence[bytes], advance_s: int = 10) -> FinalizeBlockResult:
        self.time_ns += advance_s * 1_000_000_000
        result = self.app.finalize_block(raws, self.app.height + 1, self.time_ns)
        self.app.commit()
        if self.check_invariants:
            problems = invariants.check(self.app.state)
            problems += invariants.retired_never_decreases(self._retired, self.app.state)
            assert not problems, problems
            self._retired = invariants.retired_snapshot(self.app.state)
        return result

    def run(self, signer: str, action: tx.Action) -> TxResult:
        """One transaction in its own block; returns its result."""
        return self.block([self.sign(signer, action)]).results[0]

    def ok(self, signer: str, action: tx.Action) -> TxResult:
        result = self.run(signer, action)
        assert result.code == "ok", result
        return result


def world(ledger: Ledger | None = None) -> Ledger:
    """Authority, a prosumer (maekawa), an aggregator (mrv), a buyer, a settlement agent
    (bank), an approved 4.5 kW solar device in Nerima and the FY2025 factor table."""
    from reco2 import factors

    ledger = ledger or Ledger()
    for pid, roles in (
        ("maekawa", [Role.prosumer]),
        ("mrv", [Role.aggregator]),
        ("buyer", [Role.buyer]),
        ("bank", [Role.settlement_agent]),
    ):
        ledger.ok("authority", tx.RegisterParticipant(pid, public_key(pid), roles, pid, True))
    ledger.ok("maekawa", device_action())
    ledger.ok("authority", tx.ApproveDevice("pv-1"))
    ledger.ok("authority", factors.publish_action())
    return ledger


def device_action(device_id: str = "pv-1", **overrides: object) -> tx.RegisterDevice:
    fields: dict[str, object] = dict(
        device_id=device_id, owner="maekawa", aggregator="mrv", source=Source.solar,
        capacity_w=4_500, prefecture_code="13", municipality_code="131202",
        latitude_e2=3574, longitude_e2=13965, commissioned_on="2019-04-01",
        grid_contract=GridContract.fit, utility="", other_schemes=[],
        meter_public_key=public_key("meter-" + device_id),
    )
    fields.update(overrides)
    return tx.RegisterDevice(**fields)  # type: ignore[arg-type]


def issue_action(batch_id: str = "b1", day: str = "2025-06-01", wh: int = 9_876,
                 device_id: str = "pv-1", **overrides: object) -> tx.IssueValue:
    start = day_start(day)
    fields: dict[str, object] = dict(
        batch_id=batch_id, device_id=device_id, period_start_s=start,
        period_end_s=start + DAY_S, self_consumed_wh=wh, measured_intervals=48,
        estimated_intervals=0, estimated_wh=0, readings_root=bytes(32),
        factor_version="moe-meti-r6-results",
    )
    fields.update(overrides)
    return tx.IssueValue(**fields)  # type: ignore[arg-type]
