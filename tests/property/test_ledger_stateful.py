"""The ledger beside a small reference model (STYLE.md "Tests", DESIGN.md section 7).

A Hypothesis state machine drives the real Application through signed transactions in blocks
of one to five: participants, devices, issuance over random (sometimes overlapping) periods,
transfers, retirements, yen in and out, releases of flagged readings, and the envelope's
failures (replays, duplicates, wrong keys, bad signatures, wrong chains, bad nonces). A model
written here with plain dicts predicts every result. After every block the results must match
the prediction, the model's balances, nonces, carries, periods and releases must equal the
ledger's, and the invariants must hold
(the Ledger harness checks them). At the end, replaying every block into a fresh Application
must give the same state root at every height.

The model says which rules a transaction breaks; the ledger must answer "ok" when none is
broken and otherwise one of them (their precedence is the unit tests' business). Envelope
and field failures are predicted exactly.

Profiles: RECO2_LEDGER_PROFILE=reco2-ledger (default, about 100 runs of 30 steps) or
reco2-ledger-long.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
)
from tests.support import (
    CHAIN_ID,
    DAY_S,
    Ledger,
    day_start,
    genesis,
    public_key,
    seed_of,
    snapshot,
)

from reco2 import factors
from reco2.ledger import tx
from reco2.ledger.app import Application
from reco2.ledger.outcome import Outcome
from reco2.ledger.state import HOLDING, RELEASE, YEN
from reco2.ledger.types import (
    GridContract,
    Holding,
    Participant,
    Purpose,
    ReadingRelease,
    Role,
    SchemeEnrollment,
    Source,
    YenAccount,
)

settings.register_profile(
    "reco2-ledger",
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "reco2-ledger-long",
    max_examples=1_000,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = settings.get_profile(os.environ.get("RECO2_LEDGER_PROFILE", "reco2-ledger"))

SHIPPED = factors.shipped_table()["version"]
H = 3_600
HALF_DAY = 12 * H
INTERVAL_S = 1_800
BASE_S = day_start("2025-05-01")  # issuance periods start around here (FY2025)
ENROLLED = (day_start("2025-05-10"), day_start("2025-05-12"))  # dev1 is in J-Credit then

AUTHORITY = "authority"
NAMES = ["pro", "agg", "buy", "bank", "p1", "p2", "a1", "u1", "k1"]
SIGNERS = [AUTHORITY, *NAMES, "ghost"]
DEVICES = ["dev0", "dev1", "dev2", "dev3"]
ROLES = list(Role)

# How a transaction's envelope is made: mostly right, sometimes wrong in one named way.
ENVELOPE_FAULTS = ["nonce_reused", "nonce_too_high", "wrong_key", "bad_signature", "wrong_chain"]
ENVELOPE = st.integers(0, 4 * len(ENVELOPE_FAULTS) - 1).map(
    lambda i: ENVELOPE_FAULTS[i] if i < len(ENVELOPE_FAULTS) else "right"
)
#: An index into whatever list the rule picks from when it runs (participants, batches...).
INDEX = st.integers(0, 1_000)
#: Mostly the participant a rule expects to sign ("right"), sometimes anyone at all.
SIGNER = st.one_of(st.just("right"), st.just("right"), st.just("right"), st.sampled_from(SIGNERS))
#: One time in ten a participant that does not exist.
GHOST = st.integers(0, 9).map(lambda i: i == 0)
QUANTITY = st.one_of(st.integers(0, 3_000), st.sampled_from(["all", "all+1", "half"]))


def fiscal_year(instant_s: int) -> int:
    """Japanese fiscal year of an instant [UTC s], computed here without the ledger's code."""
    day = dt.date(1970, 1, 1) + dt.timedelta(days=(instant_s + 9 * H) // DAY_S)
    return day.year if day.month >= 4 else day.year - 1


# ---- the reference model ------------------------------------------------------------------


@dataclass
class MParticipant:
    public_key: bytes
    roles: frozenset[Role]
    next_nonce: int = 0


@dataclass
class MDevice:
    owner: str
    aggregator: str
    capacity_w: int
    utility: str
    schemes: list[tuple[int, int]]
    meter_key: bytes
    status: str = "pending"
    carry_mg: int = 0


@dataclass
class Submission:
    """A signed transaction and what it was made of (so a replay can be judged again)."""

    signer: str
    key_name: str
    nonce: int
    action: tx.Action
    chain_id: str
    bad_signature: bool
    raw: bytes


@dataclass
class Model:
    participants: dict[str, MParticipant] = field(default_factory=dict)
    devices: dict[str, MDevice] = field(default_factory=dict)
    tables: dict[str, dict[tuple[int, str], int]] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)  # batch -> co2 [g]
    holdings: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # [tradable, retired]
    periods: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    yen: dict[str, int] = field(default_factory=dict)
    deposited_sen: int = 0
    withdrawn_sen: int = 0
    deposit_refs: set[str] = field(default_factory=set)
    withdrawal_refs: set[str] = field(default_factory=set)
    retirements: set[str] = field(default_factory=set)
    releases: set[tuple[str, int, str]] = field(default_factory=set)  # device, start, model

    def roles(self, pid: str) -> frozenset[Role]:
        p = self.participants.get(pid)
        return p.roles if p else frozenset()

    # -- the whole transaction --------------------------------------------------------------
    def judge(self, sub: Submission, block_time_ns: int) -> set[Outcome]:
        """The codes the ledger may answer; applies the transaction when it is Outcome.ok."""
        if sub.chain_id != CHAIN_ID:
            return {Outcome.wrong_chain}
        if sub.bad_signature:
            return {Outcome.bad_signature}
        signer = self.participants.get(sub.signer)
        if signer is None:
            return {Outcome.unknown_signer}
        if signer.public_key != public_key(sub.key_name):
            return {Outcome.signer_key_mismatch}
        if sub.nonce < signer.next_nonce:
            return {Outcome.nonce_reused}
        if sub.nonce > signer.next_nonce:
            return {Outcome.nonce_too_high}
        signer.next_nonce += 1
        field_fault = self.stateless(sub.action)
        if field_fault is not None:
            return {field_fault}
        kind = tx.kind_of(sub.action)
        broken: set[Outcome] = getattr(self, f"rules_{kind}")(sub.signer, sub.action, block_time_ns)
        if broken:
            return broken
        getattr(self, f"apply_{kind}")(sub.signer, sub.action)
        return {Outcome.ok}

    def stateless(self, action: tx.Action) -> Outcome | None:
        """The field faults the generators below can make."""
        if isinstance(action, tx.TransferValue | tx.RetireValue) and action.quantity_g <= 0:
            return Outcome.quantity_must_be_positive
        if isinstance(action, tx.DepositYen | tx.WithdrawYen) and action.amount_sen <= 0:
            return Outcome.amount_must_be_positive
        if isinstance(action, tx.IssueValue) and fiscal_year(action.period_start_s) != fiscal_year(
            action.period_end_s - 1
        ):
            return Outcome.period_spans_fiscal_years
        return None

    # -- rules against state: every rule the transaction breaks -----------------------------
    def rules_register_participant(
        self, signer: str, a: tx.RegisterParticipant, _: int
    ) -> set[Outcome]:
        broken: set[Outcome] = set()
        if Role.authority not in self.roles(signer):
            broken.add(Outcome.role_not_allowed)
        if a.participant_id in self.participants:
            broken.add(Outcome.participant_exists)
        if any(p.public_key == a.public_key for p in self.participants.values()):
            broken.add(Outcome.public_key_in_use)
        return broken

    def rules_register_device(self, signer: str, a: tx.RegisterDevice, _: int) -> set[Outcome]:
        broken: set[Outcome] = set()
        if signer not in (a.owner, a.aggregator):
            broken.add(Outcome.not_device_owner_or_aggregator)
        if a.owner not in self.participants:
            broken.add(Outcome.unknown_participant)
        elif Role.prosumer not in self.roles(a.owner):
            broken.add(Outcome.owner_not_prosumer)
        if a.aggregator not in self.participants:
            broken.add(Outcome.unknown_participant)
        elif Role.aggregator not in self.roles(a.aggregator):
            broken.add(Outcome.aggregator_not_aggregator)
        if a.device_id in self.devices:
            broken.add(Outcome.device_exists)
        if any(d.meter_key == a.meter_public_key for d in self.devices.values()):
            broken.add(Outcome.meter_key_in_use)
        return broken

    def rules_approve_device(self, signer: str, a: tx.ApproveDevice, _: int) -> set[Outcome]:
        broken: set[Outcome] = set()
        if Role.authority not in self.roles(signer):
            broken.add(Outcome.role_not_allowed)
        device = self.devices.get(a.device_id)
        if device is None:
            broken.add(Outcome.unknown_device)
        elif device.status != "pending":
            broken.add(Outcome.device_not_pending)
        return broken

    def rules_deactivate_device(self, signer: str, a: tx.DeactivateDevice, _: int) -> set[Outcome]:
        device = self.devices.get(a.device_id)
        if device is None:
            return {Outcome.unknown_device}
        broken: set[Outcome] = set()
        roles = self.roles(signer)
        if Role.authority not in roles and signer != device.owner:
            broken.add(
                Outcome.not_device_owner if Role.prosumer in roles else Outcome.role_not_allowed
            )
        if device.status == "deactivated":
            broken.add(Outcome.device_already_deactivated)
        return broken

    def rules_publish_emission_factors(
        self, signer: str, a: tx.PublishEmissionFactors, _: int
    ) -> set[Outcome]:
        broken: set[Outcome] = set()
        if Role.authority not in self.roles(signer):
            broken.add(Outcome.role_not_allowed)
        if a.version in self.tables:
            broken.add(Outcome.factor_version_exists)
        return broken

    def factor(self, a: tx.IssueValue, device: MDevice) -> int | None:
        table = self.tables[a.factor_version]
        year = fiscal_year(a.period_start_s)
        if device.utility and (year, device.utility) in table:
            return table[(year, device.utility)]
        return table.get((year, "national"))

    def rules_issue_value(self, signer: str, a: tx.IssueValue, time_ns: int) -> set[Outcome]:
        broken: set[Outcome] = set()
        if Role.aggregator not in self.roles(signer):
            broken.add(Outcome.role_not_allowed)
        if a.batch_id in self.batches:
            broken.add(Outcome.batch_exists)
        if a.period_end_s * 1_000_000_000 > time_ns:
            broken.add(Outcome.issuance_in_future)
        device = self.devices.get(a.device_id)
        if device is None:
            broken.add(Outcome.unknown_device)
            return broken
        if device.status != "active":
            broken.add(Outcome.device_not_active)
        if signer != device.aggregator:
            broken.add(Outcome.not_device_aggregator)
        start, end = a.period_start_s, a.period_end_s
        if any(s < end and start < e for s, e in self.periods.get(a.device_id, [])):
            broken.add(Outcome.issuance_period_overlaps)
        if any(s < end and start < e for s, e in device.schemes):
            broken.add(Outcome.device_enrolled_elsewhere)
        if a.self_consumed_wh * H > device.capacity_w * (end - start):
            broken.add(Outcome.energy_exceeds_capacity)
        if a.factor_version not in self.tables:
            broken.add(Outcome.unknown_factor_version)
        elif self.factor(a, device) is None:
            broken.add(Outcome.no_factor_for_period)
        return broken

    def holding(self, batch_id: str, holder: str) -> list[int] | None:
        return self.holdings.get((batch_id, holder))

    def rules_transfer_value(self, signer: str, a: tx.TransferValue, _: int) -> set[Outcome]:
        broken: set[Outcome] = set()
        if a.batch_id not in self.batches:
            broken.add(Outcome.unknown_batch)
        if a.recipient not in self.participants:
            broken.add(Outcome.recipient_unknown)
        if a.recipient == signer:
            broken.add(Outcome.self_transfer)
        holding = self.holding(a.batch_id, signer)
        if holding is None or holding[0] < a.quantity_g:
            broken.add(Outcome.insufficient_value)
        return broken

    def rules_retire_value(self, signer: str, a: tx.RetireValue, _: int) -> set[Outcome]:
        broken: set[Outcome] = set()
        if a.retirement_id in self.retirements:
            broken.add(Outcome.retirement_exists)
        if a.batch_id not in self.batches:
            broken.add(Outcome.unknown_batch)
        holding = self.holding(a.batch_id, signer)
        if holding is None or holding[0] < a.quantity_g:
            broken.add(Outcome.insufficient_value)
        return broken

    def rules_deposit_yen(self, signer: str, a: tx.DepositYen, _: int) -> set[Outcome]:
        broken: set[Outcome] = set()
        if Role.settlement_agent not in self.roles(signer):
            broken.add(Outcome.role_not_allowed)
        if a.account not in self.participants:
            broken.add(Outcome.account_unknown)
        if a.reference in self.deposit_refs:
            broken.add(Outcome.deposit_reference_reused)
        return broken

    def rules_withdraw_yen(self, signer: str, a: tx.WithdrawYen, _: int) -> set[Outcome]:
        broken: set[Outcome] = set()
        if Role.settlement_agent not in self.roles(a.settlement_agent):
            broken.add(Outcome.not_settlement_agent)
        if a.reference in self.withdrawal_refs:
            broken.add(Outcome.withdrawal_reference_reused)
        if signer not in self.yen or self.yen[signer] < a.amount_sen:
            broken.add(Outcome.insufficient_yen)
        return broken

    def rules_release_reading(
        self, signer: str, a: tx.ReleaseReading, time_ns: int
    ) -> set[Outcome]:
        broken: set[Outcome] = set()
        if Role.authority not in self.roles(signer):
            broken.add(Outcome.role_not_allowed)
        device = self.devices.get(a.device_id)
        if device is None:
            broken.add(Outcome.unknown_device)
        elif device.status != "active":
            broken.add(Outcome.device_not_active)
        start = a.interval_start_s
        if (start + INTERVAL_S) * 1_000_000_000 > time_ns:
            broken.add(Outcome.reading_in_future)
        if (a.device_id, start, a.model_version) in self.releases:
            broken.add(Outcome.reading_already_released)
        if any(s < start + INTERVAL_S and start < e for s, e in self.periods.get(a.device_id, [])):
            broken.add(Outcome.reading_already_issued)
        return broken

    # -- effects ----------------------------------------------------------------------------
    def apply_register_participant(self, _: str, a: tx.RegisterParticipant) -> None:
        self.participants[a.participant_id] = MParticipant(a.public_key, frozenset(a.roles))

    def apply_register_device(self, _: str, a: tx.RegisterDevice) -> None:
        schemes = [(e.start_s, e.end_s) for e in a.other_schemes]
        self.devices[a.device_id] = MDevice(
            a.owner, a.aggregator, a.capacity_w, a.utility, schemes, a.meter_public_key
        )

    def apply_approve_device(self, _: str, a: tx.ApproveDevice) -> None:
        self.devices[a.device_id].status = "active"

    def apply_deactivate_device(self, _: str, a: tx.DeactivateDevice) -> None:
        self.devices[a.device_id].status = "deactivated"

    def apply_publish_emission_factors(self, _: str, a: tx.PublishEmissionFactors) -> None:
        self.tables[a.version] = {(r.fiscal_year, r.utility): r.factor_mg_per_wh for r in a.rows}

    def apply_issue_value(self, _: str, a: tx.IssueValue) -> None:
        device = self.devices[a.device_id]
        factor = self.factor(a, device)
        assert factor is not None
        co2_g, device.carry_mg = divmod(a.self_consumed_wh * factor + device.carry_mg, 1_000)
        self.batches[a.batch_id] = co2_g
        self.holdings[(a.batch_id, device.owner)] = [co2_g, 0]
        self.periods.setdefault(a.device_id, []).append((a.period_start_s, a.period_end_s))

    def apply_transfer_value(self, signer: str, a: tx.TransferValue) -> None:
        self.holdings[(a.batch_id, signer)][0] -= a.quantity_g
        self.holdings.setdefault((a.batch_id, a.recipient), [0, 0])[0] += a.quantity_g

    def apply_retire_value(self, signer: str, a: tx.RetireValue) -> None:
        holding = self.holdings[(a.batch_id, signer)]
        holding[0] -= a.quantity_g
        holding[1] += a.quantity_g
        self.retirements.add(a.retirement_id)

    def apply_deposit_yen(self, _: str, a: tx.DepositYen) -> None:
        self.yen[a.account] = self.yen.get(a.account, 0) + a.amount_sen
        self.deposited_sen += a.amount_sen
        self.deposit_refs.add(a.reference)

    def apply_withdraw_yen(self, signer: str, a: tx.WithdrawYen) -> None:
        self.yen[signer] -= a.amount_sen
        self.withdrawn_sen += a.amount_sen
        self.withdrawal_refs.add(a.reference)

    def apply_release_reading(self, _: str, a: tx.ReleaseReading) -> None:
        self.releases.add((a.device_id, a.interval_start_s, a.model_version))


# ---- the machine --------------------------------------------------------------------------


def pick(items: list[str], index: int) -> str:
    return items[index % len(items)]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(app=Application(genesis()), check_invariants=True)
        self.model = Model()
        self.model.participants[AUTHORITY] = MParticipant(
            public_key(AUTHORITY), frozenset({Role.authority})
        )
        self.pending: list[tuple[Submission, set[Outcome]]] = []
        self.history: list[Submission] = []
        self.counter = 0

    # -- plumbing ---------------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def next_block_time_ns(self) -> int:
        return self.ledger.time_ns + 10 * 1_000_000_000  # Ledger.block advances 10 s

    def submit(self, signer: str, action: tx.Action, envelope: str = "right") -> None:
        participant = self.model.participants.get(signer)
        nonce = participant.next_nonce if participant else 0
        key_name = signer
        chain_id = CHAIN_ID
        if envelope == "nonce_reused":
            nonce -= 1
        elif envelope == "nonce_too_high":
            nonce += 1 + self.counter % 3
        elif envelope == "wrong_key":
            key_name = "bank" if signer != "bank" else "pro"
        elif envelope == "wrong_chain":
            chain_id = "reco2-elsewhere"
        raw = tx.sign(tx.TxBody(chain_id, signer, nonce, action), seed_of(key_name))  # type: ignore[arg-type]
        bad_signature = envelope == "bad_signature"
        if bad_signature:
            corrupted = bytearray(raw)
            corrupted[-1] ^= 0x40  # the last byte of the signature
            raw = bytes(corrupted)
        self.resubmit(Submission(signer, key_name, nonce, action, chain_id, bad_signature, raw))

    def resubmit(self, sub: Submission) -> None:
        expected = self.model.judge(sub, self.next_block_time_ns())
        self.pending.append((sub, expected))
        self.history.append(sub)
        if len(self.pending) == 5:
            self.commit_block()

    @precondition(lambda self: self.pending)
    @rule()
    def commit_block(self) -> None:
        batch, self.pending = self.pending, []
        raws = [sub.raw for sub, _ in batch]
        for raw in raws:
            self.ledger.check(raw)  # the door never changes anything
        result = self.ledger.block(raws)  # also checks the invariants
        for (sub, expected), got in zip(batch, result.results, strict=True):
            assert got.code in expected, (
                f"{tx.kind_of(sub.action)} by {sub.signer}: ledger said {got.code}, "
                f"the model expected one of {sorted(expected)}"
            )
        self.compare()

    def compare(self) -> None:
        state, model = self.ledger.app.state, self.model
        ledger_participants = {
            key.decode().split("/", 1)[1]: record
            for key, record in state.records_with_prefix(b"participant/")
        }
        assert set(ledger_participants) == set(model.participants)
        for pid, mp in model.participants.items():
            lp = ledger_participants[pid]
            assert isinstance(lp, Participant), pid
            assert (lp.public_key, frozenset(lp.roles), lp.next_nonce) == (
                mp.public_key,
                mp.roles,
                mp.next_nonce,
            ), pid
        for device_id, md in model.devices.items():
            ld = state.device(device_id)
            assert ld is not None
            assert (ld.status.value, ld.carry_mg, ld.owner) == (md.status, md.carry_mg, md.owner)
            assert state.issued_periods(device_id) == sorted(model.periods.get(device_id, []))
        for device_id in DEVICES:
            if device_id not in model.devices:
                assert state.device(device_id) is None
        for batch_id, co2_g in model.batches.items():
            batch = state.batch(batch_id)
            assert batch is not None
            assert batch.co2_g == co2_g
        holdings = {}
        for key, record in state.records_with_prefix(HOLDING):
            assert isinstance(record, Holding)
            batch_id, holder = key[len(HOLDING) :].decode().split("/", 1)
            holdings[(batch_id, holder)] = (record.tradable_g, record.escrowed_g, record.retired_g)
        assert holdings == {k: (t, 0, r) for k, (t, r) in model.holdings.items()}
        accounts = {}
        for key, record in state.records_with_prefix(YEN):
            assert isinstance(record, YenAccount)
            accounts[key[len(YEN) :].decode()] = (record.available_sen, record.escrowed_sen)
        assert accounts == {k: (v, 0) for k, v in model.yen.items()}
        totals = state.yen_totals()
        assert (totals.deposited_sen, totals.withdrawn_sen) == (
            model.deposited_sen,
            model.withdrawn_sen,
        )
        for retirement_id in model.retirements:
            assert state.retirement(retirement_id) is not None
        released = {
            (r.device_id, r.interval_start_s, r.model_version)
            for _, r in state.records_with_prefix(RELEASE)
            if isinstance(r, ReadingRelease)
        }
        assert released == model.releases

    # -- a world to start from --------------------------------------------------------------
    @initialize()
    def world(self) -> None:
        for pid, roles in (
            ("pro", [Role.prosumer]),
            ("agg", [Role.aggregator]),
            ("buy", [Role.buyer]),
            ("bank", [Role.settlement_agent]),
        ):
            self.submit(AUTHORITY, tx.RegisterParticipant(pid, public_key(pid), roles, pid, True))
        self.submit(AUTHORITY, factors.publish_action())
        self.commit_world()
        utility_rows = [
            tx.FactorRowIn(2025, "national", 423, "test", "2026-01-09"),
            tx.FactorRowIn(2025, "U1", 500, "test", "2026-01-09"),
        ]
        self.submit(AUTHORITY, tx.PublishEmissionFactors("t2", utility_rows))
        self.submit("pro", self.device("dev0", "pro", "agg", 4_500, ""))
        self.submit("agg", self.device("dev1", "pro", "agg", 3_000, "U1", ENROLLED))
        self.submit(AUTHORITY, tx.ApproveDevice("dev0"))
        self.submit(AUTHORITY, tx.ApproveDevice("dev1"))
        self.submit("agg", self.issue("dev0", 0, DAY_S, 9_876, SHIPPED))
        self.submit("agg", self.issue("dev1", 0, DAY_S, 8_765, "t2"))
        self.submit("bank", tx.DepositYen("buy", 500_000, self.fresh("dep")))
        self.submit("bank", tx.DepositYen("pro", 100_000, self.fresh("dep")))
        self.commit_world()
        for device_id in ("dev0", "dev1"):
            assert self.model.devices[device_id].status == "active"
        assert len(self.model.batches) == 2

    def commit_world(self) -> None:
        assert all(expected == {Outcome.ok} for _, expected in self.pending)
        self.commit_block()

    @staticmethod
    def device(
        device_id: str,
        owner: str,
        aggregator: str,
        capacity_w: int,
        utility: str,
        enrolled: tuple[int, int] | None = None,
        meter: str | None = None,
    ) -> tx.RegisterDevice:
        return tx.RegisterDevice(
            device_id=device_id,
            owner=owner,
            aggregator=aggregator,
            source=Source.solar,
            capacity_w=capacity_w,
            prefecture_code="13",
            municipality_code="131202",
            latitude_e2=3574,
            longitude_e2=13965,
            commissioned_on="2019-04-01",
            grid_contract=GridContract.none,
            utility=utility,
            other_schemes=[SchemeEnrollment("j-credit", *enrolled)] if enrolled else [],
            meter_public_key=public_key("meter-" + (meter or device_id)),
        )

    def issue(
        self,
        device_id: str,
        offset_s: int,
        length_s: int,
        wh: int,
        version: str,
        batch_id: str | None = None,
    ) -> tx.IssueValue:
        start = BASE_S + offset_s
        return tx.IssueValue(
            batch_id=batch_id or self.fresh("b"),
            device_id=device_id,
            period_start_s=start,
            period_end_s=start + length_s,
            self_consumed_wh=wh,
            measured_intervals=length_s // INTERVAL_S,
            estimated_intervals=0,
            estimated_wh=0,
            readings_root=bytes(32),
            factor_version=version,
        )

    # -- rules ------------------------------------------------------------------------------
    @rule(
        pid=st.sampled_from(NAMES),
        roles=st.sets(st.sampled_from(ROLES), min_size=1, max_size=3),
        key_of=st.sampled_from(["own", "own", "own", "other"]),
        signer=SIGNER,
        envelope=ENVELOPE,
    )
    def register_participant(
        self, pid: str, roles: set[Role], key_of: str, signer: str, envelope: str
    ) -> None:
        key = public_key(pid if key_of == "own" else pick(NAMES, len(roles) + len(pid)))
        action = tx.RegisterParticipant(pid, key, sorted(roles), pid, True)
        self.submit(AUTHORITY if signer == "right" else signer, action, envelope)

    @rule(
        device_id=st.sampled_from(DEVICES),
        owner=st.sampled_from(["pro", "pro", *NAMES]),
        aggregator=st.sampled_from(["agg", "agg", *NAMES]),
        capacity_w=st.integers(500, 10_000),
        utility=st.sampled_from(["", "U1", "U2"]),
        enrolled=st.one_of(st.none(), st.tuples(st.integers(0, 60), st.integers(1, 6))),
        same_meter=st.booleans(),
        signer_is=st.sampled_from(["owner", "aggregator", "owner", "aggregator", "other"]),
        other=st.sampled_from(SIGNERS),
        envelope=ENVELOPE,
    )
    def register_device(
        self,
        device_id: str,
        owner: str,
        aggregator: str,
        capacity_w: int,
        utility: str,
        enrolled: tuple[int, int] | None,
        same_meter: bool,
        signer_is: str,
        other: str,
        envelope: str,
    ) -> None:
        period = None
        if enrolled is not None:
            start = BASE_S + enrolled[0] * HALF_DAY
            period = (start, start + enrolled[1] * HALF_DAY)
        action = self.device(
            device_id,
            owner,
            aggregator,
            capacity_w,
            utility,
            period,
            meter="dev0" if same_meter else None,
        )
        signer = {"owner": owner, "aggregator": aggregator}.get(signer_is, other)
        self.submit(signer, action, envelope)

    @rule(device_id=st.sampled_from(DEVICES), signer=SIGNER, envelope=ENVELOPE)
    def approve_device(self, device_id: str, signer: str, envelope: str) -> None:
        self.submit(
            AUTHORITY if signer == "right" else signer, tx.ApproveDevice(device_id), envelope
        )

    @rule(
        device_id=st.sampled_from(DEVICES), signer=SIGNER, by_owner=st.booleans(), envelope=ENVELOPE
    )
    def deactivate_device(self, device_id: str, signer: str, by_owner: bool, envelope: str) -> None:
        if signer == "right":
            device = self.model.devices.get(device_id)
            signer = device.owner if device and by_owner else AUTHORITY
        self.submit(signer, tx.DeactivateDevice(device_id, "test"), envelope)

    @rule(
        version=st.sampled_from(["t2", "t3", "t4"]),
        factor_mg_per_wh=st.integers(1, 2_000),
        utility=st.sampled_from(["national", "U1", "U2"]),
        signer=SIGNER,
        envelope=ENVELOPE,
    )
    def publish_emission_factors(
        self, version: str, factor_mg_per_wh: int, utility: str, signer: str, envelope: str
    ) -> None:
        rows = [tx.FactorRowIn(2025, utility, factor_mg_per_wh, "test", "2026-01-09")]
        action = tx.PublishEmissionFactors(version, rows)
        self.submit(AUTHORITY if signer == "right" else signer, action, envelope)

    @rule(
        device_id=st.sampled_from(["dev0", "dev0", "dev1", *DEVICES]),
        offset=st.one_of(st.integers(0, 30), st.integers(-80, 100)),
        length_s=st.sampled_from([INTERVAL_S, HALF_DAY, DAY_S, DAY_S, 2 * DAY_S]),
        wh=st.one_of(st.integers(0, 20_000), st.integers(0, 20_000), st.integers(0, 500_000)),
        version=st.sampled_from([SHIPPED, SHIPPED, "t2", "t3", "t-none"]),
        reuse_batch=st.integers(0, 9),
        signer=SIGNER,
        envelope=ENVELOPE,
    )
    def issue_value(
        self,
        device_id: str,
        offset: int,
        length_s: int,
        wh: int,
        version: str,
        reuse_batch: int,
        signer: str,
        envelope: str,
    ) -> None:
        batch_id = None
        if reuse_batch == 0 and self.model.batches:
            batch_id = pick(sorted(self.model.batches), offset)
        action = self.issue(device_id, offset * HALF_DAY, length_s, wh, version, batch_id)
        if signer == "right":
            device = self.model.devices.get(device_id)
            signer = device.aggregator if device else "agg"
        self.submit(signer, action, envelope)

    def quantity(self, spec: int | str, available: int) -> int:
        if spec == "all":
            return available
        if spec == "all+1":
            return available + 1
        if spec == "half":
            return available // 2
        assert isinstance(spec, int)
        return spec

    def holder_and_batch(self, index: int, signer: str) -> tuple[str, str, int]:
        """Mostly a holder with tradable value; sometimes anyone and any batch id."""
        held = sorted((b, h) for (b, h), (t, _) in self.model.holdings.items() if t > 0)
        if signer != "right" or not held:
            signer = "pro" if signer == "right" else signer
            batch_id = pick([*sorted(self.model.batches), "b-none"], index)
            holding = self.model.holding(batch_id, signer)
            return signer, batch_id, holding[0] if holding else 0
        batch_id, holder = held[index % len(held)]
        return holder, batch_id, self.model.holdings[(batch_id, holder)][0]

    def someone(self, index: int, ghost: bool) -> str:
        """A registered participant, or one time in ten nobody."""
        return "ghost" if ghost else pick(sorted(self.model.participants), index)

    @rule(
        index=INDEX,
        signer=SIGNER,
        recipient=INDEX,
        ghost=GHOST,
        spec=QUANTITY,
        envelope=ENVELOPE,
    )
    def transfer_value(
        self, index: int, signer: str, recipient: int, ghost: bool, spec: int | str, envelope: str
    ) -> None:
        holder, batch_id, available = self.holder_and_batch(index, signer)
        action = tx.TransferValue(
            batch_id, self.someone(recipient, ghost), self.quantity(spec, available)
        )
        self.submit(holder, action, envelope)

    @rule(
        index=INDEX,
        signer=SIGNER,
        spec=QUANTITY,
        reuse_id=st.integers(0, 7).map(lambda i: i == 0),
        purpose=st.sampled_from(list(Purpose)),
        envelope=ENVELOPE,
    )
    def retire_value(
        self,
        index: int,
        signer: str,
        spec: int | str,
        reuse_id: bool,
        purpose: Purpose,
        envelope: str,
    ) -> None:
        holder, batch_id, available = self.holder_and_batch(index, signer)
        retirement_id = self.fresh("r")
        if reuse_id and self.model.retirements:
            retirement_id = pick(sorted(self.model.retirements), index)
        action = tx.RetireValue(
            retirement_id,
            batch_id,
            self.quantity(spec, available),
            "beneficiary",
            purpose,
            "FY2025",
            "",
        )
        self.submit(holder, action, envelope)

    @rule(
        signer=SIGNER,
        account=INDEX,
        ghost=GHOST,
        amount=st.one_of(st.integers(0, 1_000_000), st.just(0)),
        reuse_ref=st.integers(0, 7).map(lambda i: i == 0),
        envelope=ENVELOPE,
    )
    def deposit_yen(
        self, signer: str, account: int, ghost: bool, amount: int, reuse_ref: bool, envelope: str
    ) -> None:
        reference = self.fresh("dep")
        if reuse_ref and self.model.deposit_refs:
            reference = pick(sorted(self.model.deposit_refs), amount)
        action = tx.DepositYen(self.someone(account, ghost), amount, reference)
        self.submit("bank" if signer == "right" else signer, action, envelope)

    @rule(
        index=INDEX,
        signer=SIGNER,
        agent=SIGNER,
        spec=st.one_of(st.integers(0, 1_000_000), st.sampled_from(["all", "all+1", "half"])),
        reuse_ref=st.integers(0, 7).map(lambda i: i == 0),
        envelope=ENVELOPE,
    )
    def withdraw_yen(
        self, index: int, signer: str, agent: str, spec: int | str, reuse_ref: bool, envelope: str
    ) -> None:
        funded = sorted(a for a, v in self.model.yen.items() if v > 0)
        if signer == "right":
            signer = pick(funded, index) if funded else "buy"
        agent = "bank" if agent == "right" else agent
        amount = self.quantity(spec, self.model.yen.get(signer, 0))
        reference = self.fresh("wd")
        if reuse_ref and self.model.withdrawal_refs:
            reference = pick(sorted(self.model.withdrawal_refs), index)
        self.submit(signer, tx.WithdrawYen(amount, agent, reference), envelope)

    @rule(
        device_id=st.sampled_from(["dev0", "dev0", "dev1", *DEVICES]),
        offset=st.one_of(st.integers(0, 30), st.integers(-80, 100)),
        slot=st.integers(0, 23),
        version=st.sampled_from(["1", "1", "2"]),
        again=st.integers(0, 4).map(lambda i: i == 0),
        signer=SIGNER,
        envelope=ENVELOPE,
    )
    def release_reading(
        self,
        device_id: str,
        offset: int,
        slot: int,
        version: str,
        again: bool,
        signer: str,
        envelope: str,
    ) -> None:
        """A reviewer's release of a flagged reading: inside issued periods or not, in the
        future or not, sometimes a reading released before."""
        start = BASE_S + offset * HALF_DAY + slot * INTERVAL_S
        if again and self.model.releases:
            device_id, start, version = sorted(self.model.releases)[
                offset % len(self.model.releases)
            ]
        action = tx.ReleaseReading(device_id, start, bytes(32), version, "test")
        self.submit(AUTHORITY if signer == "right" else signer, action, envelope)

    @precondition(lambda self: self.history)
    @rule(index=INDEX)
    def replay(self, index: int) -> None:
        """The same bytes again, from any earlier block or this one."""
        self.resubmit(self.history[index % len(self.history)])

    @precondition(lambda self: self.pending)
    @rule()
    def duplicate_in_block(self) -> None:
        self.resubmit(self.pending[-1][0])

    def teardown(self) -> None:
        if self.pending:
            self.commit_block()
        fresh = Application(genesis())
        for raws, height, time_ns, app_hash in self.ledger.blocks:
            result = fresh.finalize_block(raws, height, time_ns)
            assert result.app_hash == app_hash, f"replay differs at height {height}"
            fresh.commit()
        assert fresh.state_root() == self.ledger.app.state_root()
        assert snapshot(fresh) == snapshot(self.ledger.app)


LedgerMachine.TestCase.settings = PROFILE
TestLedgerStateful = LedgerMachine.TestCase
