"""Shared test helpers: deterministic keys, a ledger harness driving the Application
directly (no node, no I/O), and a ready-made world of participants and a device."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reco2.ledger import invariants, tx
from reco2.ledger.app import Application, FinalizeBlockResult
from reco2.ledger.block import TxResult
from reco2.ledger.calendar import jst_midnight_s, parse_iso_date
from reco2.ledger.genesis import Genesis, GenesisParticipant
from reco2.ledger.outcome import ENVELOPE_OUTCOMES, Outcome
from reco2.ledger.state import TRADE, decode_value, participant_key
from reco2.ledger.types import BuyConditions, GridContract, Participant, Role, Source, Trade

if TYPE_CHECKING:
    from reco2.ai.evaluation import FleetSpec, Simulated
    from reco2.mrv.store import ReadingsStore

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
    "release_reading",  # issue 5: the authority releases a reading the anomaly model flagged
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
        Outcome.text_required,
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
        # the market's own fields (issue 3)
        Outcome.price_must_be_positive,
        Outcome.invalid_conditions,
        Outcome.invalid_expiry,
        # a release of a flagged reading (issue 5)
        Outcome.invalid_reading_hash,
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

    def sign(
        self,
        signer: str,
        action: tx.Action,
        nonce: int | None = None,
        key_of: str | None = None,
        chain_id: str = CHAIN_ID,
    ) -> bytes:
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

    def attempt(
        self,
        signer: str,
        action: tx.Action,
        expected: Outcome,
        nonce: int | None = None,
        key_of: str | None = None,
        chain_id: str = CHAIN_ID,
    ) -> TxResult:
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
        device_id=device_id,
        owner="maekawa",
        aggregator="mrv",
        source=Source.solar,
        capacity_w=4_500,
        prefecture_code="13",
        municipality_code="131202",
        latitude_e2=3574,
        longitude_e2=13965,
        commissioned_on="2019-04-01",
        grid_contract=GridContract.fit,
        utility="",
        other_schemes=[],
        meter_public_key=public_key("meter-" + device_id),
    )
    fields.update(overrides)
    return tx.RegisterDevice(**fields)  # type: ignore[arg-type]


def issue_action(
    batch_id: str = "b1",
    day: str = "2025-06-01",
    wh: int = 9_876,
    device_id: str = "pv-1",
    **overrides: object,
) -> tx.IssueValue:
    start = day_start(day)
    fields: dict[str, object] = dict(
        batch_id=batch_id,
        device_id=device_id,
        period_start_s=start,
        period_end_s=start + DAY_S,
        self_consumed_wh=wh,
        measured_intervals=48,
        estimated_intervals=0,
        estimated_wh=0,
        readings_root=bytes(32),
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


# ---- the market (issue 3) -----------------------------------------------------------------
#: FY2025 national average in the shipped table [mg-CO2/Wh]: issuance helpers aim at grams.
FACTOR_MG_PER_WH = 423
_references = iter(range(10**9))


def ok_block(ledger: Ledger, *signed: tuple[str, tx.Action], advance_s: int = 10) -> None:
    """Several transactions in one block, each of which must succeed."""
    result = ledger.block([ledger.sign(s, a) for s, a in signed], advance_s=advance_s)
    codes = [r.code for r in result.results]
    assert codes == ["ok"] * len(signed), list(zip([s for s, _ in signed], codes, strict=True))


def register_action(pid: str, *roles: Role, name_public: bool = True) -> tx.RegisterParticipant:
    return tx.RegisterParticipant(pid, public_key(pid), list(roles), pid, name_public)


def add_device(
    ledger: Ledger,
    device_id: str,
    owner: str,
    source: Source = Source.solar,
    municipality: str = "131202",
    commissioned_on: str = "2019-04-01",
    capacity_w: int = 1_000_000,
) -> None:
    """Register (as its owner) and approve a device aggregated by mrv."""
    ok_block(
        ledger,
        (
            owner,
            device_action(
                device_id,
                owner=owner,
                source=source,
                prefecture_code=municipality[:2],
                municipality_code=municipality,
                commissioned_on=commissioned_on,
                capacity_w=capacity_w,
            ),
        ),
    )
    ok_block(ledger, ("authority", tx.ApproveDevice(device_id)))


def wh_for_g(grams: int, carry_mg: int) -> tuple[int, int]:
    """Self-consumed Wh that issue exactly ``grams`` at 423 mg/Wh given a device's carry, and
    the carry after it [mg]."""
    wh = max(0, -(-(grams * 1_000 - carry_mg) // FACTOR_MG_PER_WH))
    total = wh * FACTOR_MG_PER_WH + carry_mg
    assert total // 1_000 == grams, (grams, carry_mg)
    return wh, total % 1_000


def issue_g_action(
    ledger: Ledger,
    batch_id: str,
    device_id: str,
    day: str,
    grams: int,
    estimated: bool = False,
    carry_mg: int | None = None,
) -> tx.IssueValue:
    """An issuance of one JST day that creates exactly ``grams`` (the device's carry read from
    the state unless given); ``estimated`` marks one interval as estimated."""
    if carry_mg is None:
        device = ledger.app.state.device(device_id)
        assert device is not None
        carry_mg = device.carry_mg
    wh, _ = wh_for_g(grams, carry_mg)
    if estimated:
        return issue_action(
            batch_id,
            day,
            wh,
            device_id,
            measured_intervals=47,
            estimated_intervals=1,
            estimated_wh=wh // 10,
        )
    return issue_action(batch_id, day, wh, device_id)


def issue_g(
    ledger: Ledger, batch_id: str, device_id: str, day: str, grams: int, estimated: bool = False
) -> None:
    ok_block(ledger, ("mrv", issue_g_action(ledger, batch_id, device_id, day, grams, estimated)))
    batch = ledger.app.state.batch(batch_id)
    assert batch is not None
    assert batch.co2_g == grams


def deposit_action(account: str, amount_sen: int) -> tx.DepositYen:
    return tx.DepositYen(account, amount_sen, f"dep-{next(_references)}")


def deposit(ledger: Ledger, account: str, amount_sen: int) -> None:
    ok_block(ledger, ("bank", deposit_action(account, amount_sen)))


def sell_action(
    order_id: str,
    quantity_g: int,
    price_sen_per_kg: int,
    *,
    source: Source = Source.solar,
    place: str = "131202",
    aon: bool = False,
    name_public: bool = True,
    buyers: Sequence[str] = (),
    expires_at_ns: int = 0,
) -> tx.PlaceSellOrder:
    return tx.PlaceSellOrder(
        order_id,
        quantity_g,
        aon,
        price_sen_per_kg,
        source,
        place,
        name_public,
        list(buyers),
        expires_at_ns,
    )


def buy_conditions(
    sellers: Sequence[str] = (),
    places: Sequence[str] = (),
    sources: Sequence[Source] = (),
    period_from_s: int = 0,
    period_to_s: int = 0,
    commissioned_after: str = "",
    exclude_estimated: bool = False,
) -> BuyConditions:
    return BuyConditions(
        list(sellers),
        list(places),
        list(sources),
        period_from_s,
        period_to_s,
        commissioned_after,
        exclude_estimated,
    )


def buy_action(
    order_id: str,
    quantity_g: int,
    price_sen_per_kg: int,
    *,
    aon: bool = False,
    expires_at_ns: int = 0,
    **conditions: Any,
) -> tx.PlaceBuyOrder:
    return tx.PlaceBuyOrder(
        order_id, quantity_g, aon, price_sen_per_kg, buy_conditions(**conditions), expires_at_ns
    )


def yen_of(ledger: Ledger, account: str) -> tuple[int, int] | None:
    """(available, escrowed) [sen] of an account, None when it has none."""
    record = ledger.app.state.yen(account)
    return None if record is None else (record.available_sen, record.escrowed_sen)


def trades_of(ledger: Ledger) -> list[Trade]:
    return [r for _, r in ledger.app.state.records_with_prefix(TRADE) if isinstance(r, Trade)]


def book_of(ledger: Ledger) -> dict[str, list[tuple[str, int, int]]]:
    """The resting orders of both sides in priority order: (id, remaining g, price)."""
    book = ledger.app.state.book
    sells = sorted(book.sells.values(), key=lambda o: (o.price_sen_per_kg, o.seq))
    buys = sorted(book.buys.values(), key=lambda o: (-o.price_sen_per_kg, o.seq))
    return {
        "sell": [(o.order_id, o.remaining_g, o.price_sen_per_kg) for o in sells],
        "buy": [(o.order_id, o.remaining_g, o.price_sen_per_kg) for o in buys],
    }


def book_records(ledger: Ledger) -> dict[str, bytes]:
    """Every resting order as the book holds it, encoded (a derived index, not in snapshot)."""
    book = ledger.app.state.book
    return {
        f"{side}/{oid}": tx.encode(order)
        for side, orders in (("sell", book.sells), ("buy", book.buys))
        for oid, order in orders.items()
    }


def attempt_market(ledger: Ledger, signer: str, action: tx.Action, expected: Outcome) -> TxResult:
    """``Ledger.attempt``, and for a rejection also the book (derived state) unchanged."""
    before = book_records(ledger)
    result = ledger.attempt(signer, action, expected)
    if expected is not Outcome.ok:
        assert book_records(ledger) == before, "a rejection changed the book"
    return result


#: Who the market tests meet (on top of ``world()``): prosumers moe, maru and hokkaido (name
#: hidden), buyers buyer (from world) and buyer2, and trader (prosumer and buyer).
MARKET_DEVICES = (
    # device, owner, source, municipality, commissioned on
    ("nerima-moe", "moe", Source.solar, "131202", "2019-04-01"),
    ("setagaya-moe", "moe", Source.solar, "131121", "2020-07-15"),
    ("koriyama-wind", "maru", Source.wind, "072036", "2018-10-01"),
    ("fukushima-pv", "maru", Source.solar, "072010", "2022-01-01"),
    ("sapporo-pv", "hokkaido", Source.solar, "011002", "2021-05-10"),
    ("trader-pv", "trader", Source.solar, "131202", "2023-03-01"),
)
MARKET_YEN_SEN = 1_000_000  # each buyer's deposit (10,000 yen)


def market_world() -> Ledger:
    """``world()`` plus the market's people, a device each (see MARKET_DEVICES, every one 1 MW
    and aggregated by mrv) and 1,000,000 sen deposited for buyer, buyer2 and trader."""
    ledger = world()
    ok_block(
        ledger,
        ("authority", register_action("moe", Role.prosumer)),
        ("authority", register_action("maru", Role.prosumer)),
        ("authority", register_action("hokkaido", Role.prosumer, name_public=False)),
        ("authority", register_action("buyer2", Role.buyer)),
        ("authority", register_action("trader", Role.buyer, Role.prosumer)),
    )
    ok_block(
        ledger,
        *[
            (
                owner,
                device_action(
                    device_id,
                    owner=owner,
                    source=source,
                    prefecture_code=municipality[:2],
                    municipality_code=municipality,
                    commissioned_on=commissioned,
                    capacity_w=1_000_000,
                ),
            )
            for device_id, owner, source, municipality, commissioned in MARKET_DEVICES
        ],
    )
    ok_block(
        ledger,
        *[("authority", tx.ApproveDevice(d[0])) for d in MARKET_DEVICES],
        *[("bank", deposit_action(a, MARKET_YEN_SEN)) for a in ("buyer", "buyer2", "trader")],
    )
    return ledger


def stored_fleet(
    directory: Path, fleet: FleetSpec, now_s: int, leave_out: set[tuple[str, int]]
) -> tuple[ReadingsStore, Simulated]:
    """A simulated fleet's readings validated and recorded in a SQLite readings store in
    ``directory``, except the (device, interval start) keys left out; with the simulation."""
    from reco2.ai.evaluation import simulate
    from reco2.mrv.store import open_store
    from reco2.mrv.validation import ReadingHistory, ValidationContext, validate

    simulated = simulate(fleet)
    context = ValidationContext(simulated.devices.get, ReadingHistory(), now_s)
    store = open_store(f"sqlite://{directory / 'readings.sqlite'}")
    verdicts = [
        validate(raw, context)
        for raw, r in zip(simulated.raws, simulated.readings, strict=True)
        if (r.device_id, r.interval_start_s) not in leave_out
    ]
    store.record([v for v in verdicts if not v.rejections], received_at_s=now_s)
    return store, simulated
