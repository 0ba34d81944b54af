"""Transaction bytes under Hypothesis: every action of every kind round-trips through sign and
decode to identical bytes; no byte string crashes decoding or the door; a signed action of any
shape never crashes the ledger; and changing any single byte of a signed transaction makes the
door refuse it."""

from __future__ import annotations

import enum
import typing

import msgspec
import nacl.bindings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support import CHAIN_ID, add_participant, day_start, public_key, seed_of, world

from reco2.ledger import tx
from reco2.ledger.outcome import Outcome
from reco2.ledger.types import Role

PROPS = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

#: Every msgpack integer (int64 and uint64), with small and ledger-meaningful values favoured.
INTS = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.integers(-2, 5_000),
    st.sampled_from([0, 1, 1_800, 86_400, 10**15, 10**15 + 1, day_start("2025-06-01")]),
)
#: Any text, with ids and codes the world knows favoured so deeper rules are reached.
TEXT = st.one_of(
    st.text(max_size=24),
    st.sampled_from(
        [
            "pv-1",
            "b1",
            "maekawa",
            "mrv",
            "buyer",
            "bank",
            "authority",
            "moe-meti-r6-results",
            "13",
            "131202",
            "2019-04-01",
            "national",
            "",
            "x" * 65,
        ]
    ),
)
BYTES = st.one_of(st.binary(max_size=70), st.binary(min_size=32, max_size=32))


def strategy_for(annotation: typing.Any) -> st.SearchStrategy[typing.Any]:
    """A strategy for any field type used in transactions (built from the type itself, so
    new kinds and fields are covered without editing this file)."""
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return INTS
    if annotation is str:
        return TEXT
    if annotation is bytes:
        return BYTES
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from(list(annotation))
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return st.lists(strategy_for(item), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return struct_strategy(annotation)
    raise TypeError(f"no strategy for {annotation!r}")


def struct_strategy(cls: type[msgspec.Struct]) -> st.SearchStrategy[typing.Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{name: strategy_for(hints[name]) for name in cls.__struct_fields__})


ACTION_TYPES = typing.get_args(tx.AnyAction)
ACTIONS = st.one_of([struct_strategy(cls) for cls in ACTION_TYPES])


def test_every_kind_has_a_strategy() -> None:
    assert {cls.__struct_config__.tag for cls in ACTION_TYPES} == set(tx.KINDS)


@PROPS
@given(
    action=ACTIONS,
    chain_id=TEXT,
    signer=TEXT,
    nonce=INTS,
    seed=st.binary(min_size=32, max_size=32),
)
def test_sign_decode_round_trip(
    action: tx.Action, chain_id: str, signer: str, nonce: int, seed: bytes
) -> None:
    body = tx.TxBody(chain_id, signer, nonce, action)  # type: ignore[arg-type]
    raw = tx.sign(body, seed)
    decoded = tx.decode(raw, 1 << 24)
    assert isinstance(decoded, tx.DecodedTx), decoded
    assert decoded.body == body
    assert type(decoded.body.action) is type(action)
    assert tx.encode(decoded.body) == decoded.envelope.body
    assert tx.encode(decoded.envelope) == raw
    assert tx.sign(decoded.body, seed) == raw
    assert decoded.envelope.public_key == tx.public_key_of(seed)
    assert tx.verify_signature(decoded.envelope)


WORLD = world()  # only check_tx touches it below: the door never changes the state


@PROPS
@given(raw=st.binary(max_size=600))
def test_random_bytes_never_crash(raw: bytes) -> None:
    result = tx.decode(raw, WORLD.app.max_tx_bytes)
    assert isinstance(result, Outcome | tx.DecodedTx)
    assert WORLD.app.check_tx(raw).outcome in Outcome


#: Any msgpack value: what a peer can put where a transaction's parts belong.
MSGPACK = st.recursive(
    st.none() | st.booleans() | INTS | st.floats() | TEXT | BYTES,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)


def envelope(body: bytes, signer: str) -> bytes:
    pk, sk = nacl.bindings.crypto_sign_seed_keypair(seed_of(signer))
    signature = nacl.bindings.crypto_sign(tx.SIGNING_DOMAIN + body, sk)[: tx.SIGNATURE_BYTES]
    return tx.encode(tx.SignedTx(body, pk, signature))


@PROPS
@given(
    kind=st.sampled_from([*sorted(tx.KINDS), "mint_value"]),
    fields=st.lists(MSGPACK, max_size=12),
    nonce=MSGPACK,
    shape=st.sampled_from(["body", "action", "whole"]),
    whole=MSGPACK,
)
def test_correctly_signed_bodies_of_any_shape_never_crash(
    kind: str, fields: list[typing.Any], nonce: typing.Any, shape: str, whole: typing.Any
) -> None:
    """Signed, canonical envelopes whose body is any msgpack value: decoding and the door
    answer with an Outcome (unknown kinds as unknown_kind) and never raise."""
    if shape == "whole":
        value = whole
    elif shape == "action":
        value = [CHAIN_ID, "maekawa", nonce, [kind, *fields]]
    else:
        value = [CHAIN_ID, "maekawa", nonce, fields]
    raw = envelope(msgspec.msgpack.encode(value), "maekawa")
    result = tx.decode(raw, 1 << 24)
    assert isinstance(result, Outcome | tx.DecodedTx)
    if shape == "action" and kind == "mint_value":
        assert result is Outcome.unknown_kind
    assert WORLD.app.check_tx(raw).outcome in Outcome


SIGNERS = ["authority", "maekawa", "mrv", "buyer", "bank", "tanaka"]


@settings(PROPS, max_examples=60)
@given(actions=st.lists(st.tuples(st.sampled_from(SIGNERS), ACTIONS), min_size=1, max_size=4))
def test_signed_actions_of_any_value_never_crash_the_ledger(
    actions: list[tuple[str, tx.Action]],
) -> None:
    """Any field values, signed by real participants with the right nonces: the door and the
    block answer with outcome codes, never an exception, and the invariants hold after."""
    ledger = world()
    add_participant(
        ledger,
        "tanaka",
        Role.authority,
        Role.prosumer,
        Role.aggregator,
        Role.buyer,
        Role.settlement_agent,
    )
    raws = []
    for signer, action in actions:
        raw = ledger.sign(signer, action)
        assert len(raw) <= ledger.app.max_tx_bytes
        assert ledger.app.check_tx(raw).outcome in Outcome
        raws.append(raw)
    result = ledger.block(raws)  # Ledger.block checks the invariants
    assert {r.code for r in result.results} <= {o.value for o in Outcome}


VALID_AT_THE_DOOR = [
    ("authority", tx.RegisterParticipant("tanaka", public_key("tanaka"), [Role.buyer], "t", True)),
    ("maekawa", tx.TransferValue("b1", "buyer", 1_000)),
    (
        "mrv",
        tx.IssueValue(
            "b2",
            "pv-1",
            day_start("2025-06-02"),
            day_start("2025-06-03"),
            5_000,
            48,
            0,
            0,
            bytes(32),
            "moe-meti-r6-results",
        ),
    ),
    ("bank", tx.DepositYen("buyer", 100_000, "ref-9")),
]


@PROPS
@given(
    which=st.integers(0, len(VALID_AT_THE_DOOR) - 1),
    position=st.integers(0, 10_000),
    delta=st.integers(1, 255),
)
def test_any_single_byte_change_is_refused_at_the_door(
    which: int, position: int, delta: int
) -> None:
    signer, action = VALID_AT_THE_DOOR[which]
    participant = WORLD.app.state.participant(signer)
    assert participant is not None
    raw = WORLD.sign(signer, action, nonce=participant.next_nonce)
    assert WORLD.app.check_tx(raw).outcome is Outcome.ok
    mutated = bytearray(raw)
    index = position % len(raw)
    mutated[index] = (mutated[index] + delta) % 256
    assert bytes(mutated) != raw
    assert WORLD.app.check_tx(bytes(mutated)).outcome is not Outcome.ok


def test_every_single_byte_change_of_one_transaction_is_refused() -> None:
    """The exhaustive version for one transfer: every position, eight replacement values."""
    participant = WORLD.app.state.participant("maekawa")
    assert participant is not None
    raw = WORLD.sign(
        "maekawa", tx.TransferValue("b1", "buyer", 1_000), nonce=participant.next_nonce
    )
    assert WORLD.app.check_tx(raw).outcome is Outcome.ok
    for index in range(len(raw)):
        for delta in (1, 2, 0x10, 0x40, 0x7F, 0x80, 0xC0, 0xFF):
            mutated = bytearray(raw)
            mutated[index] = (mutated[index] + delta) % 256
            outcome = WORLD.app.check_tx(bytes(mutated)).outcome
            assert outcome is not Outcome.ok, (index, delta)
