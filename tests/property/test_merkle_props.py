"""Hypothesis properties of reco2.ledger.merkle."""

from __future__ import annotations

import functools
import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reco2.ledger.merkle import (
    HASH_SIZE,
    MAX_AUNTS,
    BucketedCommitment,
    Proof,
    ProofError,
    ValueOp,
    bucket_key,
    keypath,
    keypath_to_keys,
    kv_leaf,
    root_from_leaf_hashes,
    simple_proofs,
    simple_root,
    verify_value,
)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_root(items: list[bytes]) -> bytes:
    """Independent recursive RFC 6962 root."""
    if not items:
        return sha(b"")
    if len(items) == 1:
        return sha(b"\x00" + items[0])
    k = 1
    while k * 2 < len(items):
        k *= 2
    return sha(b"\x01" + ref_root(items[:k]) + ref_root(items[k:]))


@functools.lru_cache(maxsize=4)
def _empty_top_leaf_hashes(n_buckets: int) -> tuple[bytes, ...]:
    return tuple(sha(b"\x00" + kv_leaf(i.to_bytes(2, "big"), sha(b""))) for i in range(n_buckets))


def ref_commitment_root(state: dict[bytes, bytes], n_buckets: int) -> bytes:
    """From-scratch state root written directly from the specification."""
    depth = n_buckets.bit_length() - 1
    buckets: dict[int, list[tuple[bytes, bytes]]] = {}
    for k, v in state.items():
        b = int.from_bytes(sha(k)[:2], "big") >> (16 - depth)
        buckets.setdefault(b, []).append((k, v))
    top = list(_empty_top_leaf_hashes(n_buckets))
    for i, entries in buckets.items():
        broot = simple_root([kv_leaf(k, v) for k, v in sorted(entries)])
        top[i] = sha(b"\x00" + kv_leaf(i.to_bytes(2, "big"), broot))
    return root_from_leaf_hashes(top)


items_st = st.lists(st.binary(max_size=40), max_size=70)
hash_st = st.binary(min_size=HASH_SIZE, max_size=HASH_SIZE)


@given(items_st)
def test_simple_root_is_rfc6962(items: list[bytes]) -> None:
    assert simple_root(items) == ref_root(items)


@given(items_st.filter(bool), st.data())
def test_all_proofs_verify_and_bind_the_leaf(items: list[bytes], data: st.DataObject) -> None:
    root, proofs = simple_proofs(items)
    assert root == ref_root(items)
    for p in proofs:
        assert p.compute_root() == root
    p = proofs[data.draw(st.integers(0, len(items) - 1))]
    other = data.draw(hash_st.filter(lambda h: h != p.leaf_hash))
    assert Proof(p.total, p.index, other, p.aunts).compute_root() != root
    if p.aunts:
        j = data.draw(st.integers(0, len(p.aunts) - 1))
        aunts = list(p.aunts)
        aunts[j] = data.draw(hash_st.filter(lambda h: h != p.aunts[j]))
        assert Proof(p.total, p.index, p.leaf_hash, tuple(aunts)).compute_root() != root


proof_st = st.builds(
    Proof,
    total=st.integers(0, 2**63 - 1),
    index=st.integers(0, 2**63 - 1),
    leaf_hash=hash_st,
    aunts=st.lists(hash_st, max_size=MAX_AUNTS).map(tuple),
)


@given(st.binary(max_size=300), proof_st)
def test_value_op_encode_decode_round_trip(key: bytes, proof: Proof) -> None:
    op = ValueOp(key, proof)
    assert ValueOp.decode(op.encode()) == op
    assert ValueOp.from_proof_op(op.to_proof_op()) == op


@given(st.binary(max_size=200))
def test_decode_is_strict_on_arbitrary_bytes(data: bytes) -> None:
    # Anything decode accepts is exactly the canonical encoding of the result.
    try:
        op = ValueOp.decode(data)
    except ProofError:
        return
    assert op.encode() == data


@given(st.binary(min_size=1, max_size=30), proof_st, st.integers(0, 10_000), st.data())
def test_decode_rejects_corruptions(
    key: bytes, proof: Proof, pos: int, data: st.DataObject
) -> None:
    encoded = bytearray(ValueOp(key, proof).encode())
    pos %= len(encoded)
    encoded[pos] ^= data.draw(st.integers(1, 255))
    try:
        op = ValueOp.decode(bytes(encoded))
    except ProofError:
        return
    assert op.encode() == bytes(encoded) and op != ValueOp(key, proof)


@given(st.lists(st.binary(max_size=12), min_size=1, max_size=6))
def test_keypath_hex_round_trip(keys: list[bytes]) -> None:
    assert keypath_to_keys(keypath(keys)) == keys


@given(st.lists(st.binary(max_size=12).filter(lambda k: not k.startswith(b"x:")), min_size=1))
def test_keypath_url_round_trip(keys: list[bytes]) -> None:
    assert keypath_to_keys(keypath(keys, encoding="url")) == keys


# ----------------------------------------------------------------------------- commitment

small_key_st = st.binary(min_size=1, max_size=3)
change_st = st.dictionaries(small_key_st, st.none() | st.binary(max_size=6), max_size=12)


def _run_sequence(
    n_buckets: int, blocks: list[dict[bytes, bytes | None]], check_bulk_load: bool = True
) -> None:
    c = BucketedCommitment(n_buckets)
    model: dict[bytes, bytes] = {}
    for changes in blocks:
        root = c.apply(changes)
        for k, v in changes.items():
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        assert root == ref_commitment_root(model, n_buckets)
        assert len(c) == len(model)
    assert c.items() == sorted(model.items())
    if check_bulk_load:
        fresh = BucketedCommitment(n_buckets)
        assert fresh.bulk_load(model.items()) == c.root()
    for k, v in model.items():
        ops = c.prove(k)
        path = keypath([bucket_key(c.bucket_of(k)), k])
        verify_value(ops, c.root(), path, v)
        try:
            verify_value(ops, c.root(), path, v + b"\x00")
        except ProofError:
            pass
        else:
            raise AssertionError("proof accepted a wrong value")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([1, 2, 16]), st.lists(change_st, max_size=25))
def test_commitment_matches_from_scratch_small_buckets(
    n_buckets: int, blocks: list[dict[bytes, bytes | None]]
) -> None:
    _run_sequence(n_buckets, blocks)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(change_st, max_size=8))
def test_commitment_matches_from_scratch_default_buckets(
    blocks: list[dict[bytes, bytes | None]],
) -> None:
    # bulk_load with the default bucket count is covered by the unit tests.
    _run_sequence(65_536, blocks, check_bulk_load=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 400), st.none() | st.binary(max_size=4)), max_size=60),
    st.integers(0, 300),
)
def test_single_large_bucket_edits(edits: list[tuple[int, bytes | None]], preload: int) -> None:
    """Many entries in one bucket: partial tree rebuilds at arbitrary positions."""
    c = BucketedCommitment(1)
    model = {b"%03d" % i: b"p" for i in range(0, preload, 2)}
    c.bulk_load(model.items())
    for i, v in edits:
        key = b"%03d" % i
        c.apply({key: v})
        if v is None:
            model.pop(key, None)
        else:
            model[key] = v
    assert c.root() == ref_commitment_root(model, 1)
