"""Shared test helpers: deterministic keys, a ledger harness driving the Application
directly (no node, no I/O), and a ready-made world of participants and a device."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reco2.ledger import invariants, tx
from reco2.ledger.app import Application, FinalizeBlockResult
from reco2.ledger.block import TxResult
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from reco2.ledger.genesis import Genesis, GenesisParticipant
from reco2.ledger.outcome import ENVELOPE_OUTCOMES, Outcome
from reco2.ledger.state import decode_value, participant_key
from reco2.ledger.types import GridContract, Participant, Role, Source

CHAIN_ID = "reco2-test"
DAY_S = 86_400
GENESIS_TIME_NS = 1_750_000_000 * 1_000_000_000  # 2025-06-15

#: The value ledger's kinds (issue 2), each with its table-driven test module in tests/unit.
LEDGER_KINDS = (
    "register_participant",
    "register_device",
    "approve_device",
    "deactivate_device",
    "publish_emission_factors",
    "issue_value",
    "transfer_value",
    "retire_value",
    "deposit_yen",
    "withdraw_yen",
)

#: Outcome codes some test has asserted (through ``expect``); the unit session's last test
#: (tests/unit/test_outcome_coverage.py) fails when a member of Outcome is missing.
PRODUCED: set[str] = set()
#: File names of the test modules in this session (filled by tests/unit/conftest.py).
COLLECTED_MODULES: set[str] = set()

#: Codes that check_tx itself returns (encoding, chain, signature, signer, a used nonce, the
#: action's own fields). A too-high nonce and every rule against state pass the door.
STATELESS_OUTCOMES = frozenset(
    {
        Outcome.invalid_id,
        Outcome.invalid_public_key,
        Outcome.invalid_roles,
        Outcome.text_too_long,
        Outcome.invalid_place_code,
        Outcome.invalid_location,
        Outcome.invalid_date,
        Outcome.capacity_must_be_positive,
        Outcome.invalid_period,
        Outcome.period_not_on_grid,
        Outcome.period_spans_fiscal_years,
        Outcome.invalid_interval_counts,
        Outcome.energy_must_not_be_negative,
        Outcome.invalid_merkle_root,
        Outcome.invalid_factor_table,
        Outcome.quantity_must_be_positive,
        Outcome.amount_must_be_positive,
        Outcome.amount_too_large,
    }
)
DOOR_OUTCOMES = (ENVELOPE_OUTCOMES - {Outcome.nonce_too_high}) | STATELESS_OUTCOMES


def expect(code: str, expected: Outcome) -> None:
    """Assert an outcome code and record it as produced (see ``PRODUCED``)."""
    assert code == expected.value, f"expected {expected.value}, got {code}"
    PRODUCED.add(expected.value)


def snapshot(app: Application) -> dict[bytes, bytes]:
    """Every state record, encoded: two snapshots are equal iff the states are."""
    return dict(app.state.encoded_items())


def changed_keys(before: dict[bytes, bytes], after: dict[bytes, bytes]) -> set[bytes]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def seed_of(name: str) -> bytes:
    """A deterministic Ed25519 seed for a name (tests only)."""
    return hashlib.sha256(b"reco2-test-seed/" + name.encode()).digest()


def public_key(name: str) -> bytes:
    return tx.public_key_of(seed_of(name))


def day_start(iso: str) -> int:
    day = parse_iso_date(iso)
    assert day is not None
    return jst_midnight_s(day)


def genesis(authority: str = "authority", max_tx_bytes: int | None = None) -> Genesis:
    members = [GenesisParticipant(authority, public_key(authority), [Role.authority], "Authority")]
    if max_tx_bytes is None:
        return Genesis(CHAIN_ID, GENESIS_TIME_NS, members)
    return Genesis(CHAIN_ID, GENESIS_TIME_NS, members, max_tx_bytes=max_tx_bytes)


@dataclass
class Ledger:
    """Drives an Application block by block, signing as named participants, and checks the
    DESIGN section 7 invariants after every block."""

    app: Application = field(default_factory=lambda: Application(genesis()))
    nonces: dict[str, int] = field(default_factory=dict)
    time_ns: int = GENESIS_TIME_NS
    check_invariants: bool = True
    #: every block run: (transactions, height, time [ns], app hash), for replays
    blocks: list[tuple[list[bytes], int, int, bytes]] = field(default_factory=list)
    _retired: dict[bytes, int] = field(default_factory=dict)

    def sign(self, signer: str, action: tx.Action, nonce: int | None = None,
             key_of: str | None = None, chain_id: str = CHAIN_ID) -> bytes:
        if nonce is None:
            nonce = self.nonces.get(signer, 0)
            self.nonces[signer] = nonce + 1
        body = tx.TxBody(chain_id, signer, nonce, action)  # type: ignore[arg-type]
        return tx.sign(body, seed_of(key_of or signer))

    def block(self, raws: Sequence[bytes], advance_s: int = 10) -> FinalizeBlockResult:
        self.time_ns += advance_s * 1_000_000_000
        result = self.app.finalize_block(raws, self.app.height + 1, self.time_ns)
        self.app.commit()
        self.blocks.append((list(raws), self.app.height, self.time_ns, result.app_hash))
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

    def check(self, raw: bytes) -> Outcome:
        """check_tx, asserting that the door changes nothing at all."""
        before = snapshot(self.app)
        root, height = self.app.state_root(), self.app.height
        outcome = self.app.check_tx(raw).outcome
        assert snapshot(self.app) == before, "check_tx changed the state"
        assert self.app.state_root() == root
        assert self.app.height == height
        assert not self.app.state.has_changes()
        return outcome

    def attempt(self, signer: str, action: tx.Action, expected: Outcome,
                nonce: int | None = None, key_of: str | None = None,
                chain_id: str = CHAIN_ID) -> TxResult:
        """Sign and submit one transaction at the door and then in a block of its own.

        Asserts the door's answer (``expected`` when it is a door code, else ok), the block's
        outcome, and for a rejection that nothing changed but the signer's nonce (nothing at
        all for an envelope refusal, whose nonce the harness then hands out again)."""
        raw = self.sign(signer, action, nonce=nonce, key_of=key_of, chain_id=chain_id)
        result = self.attempt_raw(raw, expected, signer)
        if expected in ENVELOPE_OUTCOMES and nonce is None:
            self.nonces[signer] -= 1
        return result

    def attempt_raw(self, raw: bytes, expected: Outcome, signer: str | None = None) -> TxResult:
        before = snapshot(self.app)
        root = self.app.state_root()
        door = self.check(raw)
        if expected in DOOR_OUTCOMES:
            expect(door, expected)
        else:
            assert door is Outcome.ok, f"the door refused with {door}, expected {expected}"
        result = self.block([raw]).results[0]
        expect(result.code, expected)
        if expected is Outcome.ok:
            return result
        after = snapshot(self.app)
        changed = changed_keys(before, after)
        if expected in ENVELOPE_OUTCOMES:
            assert changed == set(), f"an envelope refusal changed {sorted(changed)}"
            assert self.app.state_root() == root
            return result
        assert signer is not None
        key = participant_key(signer)
        assert changed == {key}, f"a rejection changed {sorted(changed)}"
        old, new = decode_value(key, before[key]), decode_value(key, after[key])
        assert isinstance(old, Participant)
        assert isinstance(new, Participant)
        assert new.next_nonce == old.next_nonce + 1, "a rejected transaction uses its nonce"
        old.next_nonce += 1
        assert new == old, "a rejection changes nothing of the signer but its nonce"
        return result


@dataclass(frozen=True)
class Case:
    """One row of a table-driven test: (transaction, state) -> expected outcome and state.

    ``setup`` prepares the state on top of ``world()``; ``then`` checks the state after."""

    name: str
    signer: str
    action: tx.Action
    expected: Outcome
    setup: Callable[[Ledger], None] | None = None
    then: Callable[[Ledger], None] | None = None

    def __str__(self) -> str:
        return self.name


def run_case(case: Case) -> Ledger:
    ledger = world()
    if case.setup is not None:
        case.setup(ledger)
    ledger.attempt(case.signer, case.action, case.expected)
    if case.then is not None:
        case.then(ledger)
    return ledger


def add_participant(ledger: Ledger, pid: str, *roles: Role) -> None:
    """Register a participant (its key is ``public_key(pid)``) as the authority."""
    ledger.ok("authority", tx.RegisterParticipant(pid, public_key(pid), list(roles), pid, True))


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


def holding_of(ledger: Ledger, batch_id: str, holder: str) -> tuple[int, int, int] | None:
    """(tradable, escrowed, retired) [g] of a holder in a batch, None when it has no record."""
    holding = ledger.app.state.holding(batch_id, holder)
    if holding is None:
        return None
    return (holding.tradable_g, holding.escrowed_g, holding.retired_g)


def next_nonce(ledger: Ledger, pid: str) -> int:
    participant = ledger.app.state.participant(pid)
    assert participant is not None
    return participant.next_nonce
