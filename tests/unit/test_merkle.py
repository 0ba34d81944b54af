"""Unit tests for reco2.ledger.merkle (CometBFT-compatible simple Merkle trees)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json

import pytest

from reco2.ledger.merkle import (
    EMPTY_HASH,
    MAX_AUNTS,
    PROOF_OP_VALUE,
    BucketedCommitment,
    Proof,
    ProofError,
    ProofOp,
    ValueOp,
    bucket_key,
    inner_hash,
    keypath,
    keypath_to_keys,
    kv_leaf,
    leaf_hash,
    proof_from_leaf_hashes,
    proof_ops_from_json,
    proof_ops_to_json,
    root_from_leaf_hashes,
    simple_proof,
    simple_proofs,
    simple_root,
    verify_value,
)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def L(x: bytes) -> bytes:
    """Leaf hash written out by hand."""
    return sha(b"\x00" + x)


def I(a: bytes, b: bytes) -> bytes:  # noqa: E743
    """Inner hash written out by hand."""
    return sha(b"\x01" + a + b)


def ref_root(items: list[bytes]) -> bytes:
    """Independent recursive RFC 6962 root (split at largest power of two < n)."""
    if not items:
        return sha(b"")
    if len(items) == 1:
        return L(items[0])
    k = 1
    while k * 2 < len(items):
        k *= 2
    return I(ref_root(items[:k]), ref_root(items[k:]))


def fails(proof: Proof, root: bytes) -> bool:
    """True if the proof is rejected or proves a different root."""
    try:
        return proof.compute_root() != root
    except ProofError:
        return True


def sides(total: int, index: int) -> list[bool]:
    """Root-to-leaf list of 'went left' decisions for leaf ``index`` of ``total``."""
    out = []
    while total > 1:
        k = 1
        while k * 2 < total:
            k *= 2
        out.append(index < k)
        if index < k:
            total = k
        else:
            index, total = index - k, total - k
    return out


A, B, C, D, E = b"a", b"b", b"c", b"d", b"e"


# ----------------------------------------------------------------------------- hashing


def test_primitive_hashes() -> None:
    assert sha(b"") == EMPTY_HASH
    assert EMPTY_HASH.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"xyz") == sha(b"\x00xyz")
    assert inner_hash(b"l", b"r") == sha(b"\x01lr")


def test_known_vectors_by_hand() -> None:
    assert simple_root([]) == sha(b"")
    assert simple_root([A]) == L(A)
    assert simple_root([A, B]) == I(L(A), L(B))
    assert simple_root([A, B, C]) == I(I(L(A), L(B)), L(C))
    assert simple_root([A, B, C, D, E]) == I(I(I(L(A), L(B)), I(L(C), L(D))), L(E))
    # Six items split 4 + 2, seven split 4 + 3 (not 3 + 3 / 4 + 3 by halving).
    assert simple_root([A, B, C, D, E, b"f"]) == I(
        I(I(L(A), L(B)), I(L(C), L(D))), I(L(E), L(b"f"))
    )


def test_known_vector_from_cometbft() -> None:
    # merkle.HashFromByteSlices([][]byte{[]byte("a")}) printed by CometBFT v0.38.26.
    assert simple_root([A]).hex() == (
        "022a6979e6dab7aa5ae4c3e5e45f7e977112a7e63593820dbec1ec738a24f93c"
    )


@pytest.mark.parametrize("n", range(0, 70))
def test_simple_root_matches_reference(n: int) -> None:
    items = [bytes([i % 256]) * (i % 5) for i in range(n)]
    assert simple_root(items) == ref_root(items)
    assert root_from_leaf_hashes([L(x) for x in items]) == ref_root(items)


def test_root_from_leaf_hashes_does_not_mutate_input() -> None:
    hashes = [L(bytes([i])) for i in range(7)]
    copy = list(hashes)
    root_from_leaf_hashes(hashes)
    assert hashes == copy


# ----------------------------------------------------------------------------- proofs


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_every_proof_verifies(n: int) -> None:
    items = [b"item-%d" % i for i in range(n)]
    root, proofs = simple_proofs(items)
    assert root == ref_root(items)
    assert len(proofs) == n
    for i, p in enumerate(proofs):
        assert (p.total, p.index, p.leaf_hash) == (n, i, L(items[i]))
        assert p.compute_root() == root
        assert simple_proof(items, i) == p
        assert proof_from_leaf_hashes([L(x) for x in items], i) == p


def test_aunts_are_ordered_leaf_up() -> None:
    root, proofs = simple_proofs([A, B, C])
    # Leaf 0: sibling L(b) first, then the right subtree L(c).
    assert proofs[0].aunts == (L(B), L(C))
    assert proofs[1].aunts == (L(A), L(C))
    # Leaf 2 is alone on the right: only aunt is the left subtree.
    assert proofs[2].aunts == (I(L(A), L(B)),)
    five_root, five = simple_proofs([A, B, C, D, E])
    assert five[4].aunts == (I(I(L(A), L(B)), I(L(C), L(D))),)
    assert five[2].aunts == (L(D), I(L(A), L(B)), L(E))
    assert root == ref_root([A, B, C]) and five_root == ref_root([A, B, C, D, E])


def test_empty_proofs() -> None:
    assert simple_proofs([]) == (EMPTY_HASH, [])
    with pytest.raises(IndexError):
        simple_proof([], 0)
    with pytest.raises(IndexError):
        simple_proof([A], 1)
    with pytest.raises(IndexError):
        simple_proof([A], -1)


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13])
def test_tampered_proofs_fail(n: int) -> None:
    items = [b"x%d" % i for i in range(n)]
    root, proofs = simple_proofs(items)
    for p in proofs:
        bad_leaf = Proof(p.total, p.index, sha(b"evil"), p.aunts)
        assert fails(bad_leaf, root)
        for j in range(len(p.aunts)):
            aunts = list(p.aunts)
            aunts[j] = bytes([aunts[j][0] ^ 1]) + aunts[j][1:]
            assert fails(Proof(p.total, p.index, p.leaf_hash, tuple(aunts)), root)
        for idx in {p.index + 1, p.index - 1, n, -1}:
            if idx != p.index:
                assert fails(Proof(p.total, idx, p.leaf_hash, p.aunts), root)
        for total in {p.total + 1, p.total - 1, 0, -1, 2 * p.total}:
            if total == p.total:
                continue
            tampered = Proof(total, p.index, p.leaf_hash, p.aunts)
            if 0 <= p.index < total and sides(total, p.index) == sides(p.total, p.index):
                # As in CometBFT, ``total`` only matters through the left/right path
                # it implies: leaf 0 of 3 and leaf 0 of 4 are proven identically.
                assert tampered.compute_root() == root
            else:
                assert fails(tampered, root)
        assert fails(Proof(p.total, p.index, p.leaf_hash, p.aunts[:-1]), root)
        assert fails(Proof(p.total, p.index, p.leaf_hash, (*p.aunts, p.leaf_hash)), root)


def test_compute_root_validation_errors() -> None:
    good = simple_proof([A, B], 0)
    with pytest.raises(ProofError, match="index"):
        Proof(2, 2, good.leaf_hash, good.aunts).compute_root()
    with pytest.raises(ProofError, match="negative"):
        Proof(-1, 0, good.leaf_hash, good.aunts).compute_root()
    with pytest.raises(ProofError, match="leaf hash"):
        Proof(2, 0, good.leaf_hash[:31], good.aunts).compute_root()
    with pytest.raises(ProofError, match="aunt"):
        Proof(2, 0, good.leaf_hash, (b"short",)).compute_root()
    with pytest.raises(ProofError, match="aunts"):
        Proof(2, 0, good.leaf_hash, ()).compute_root()
    with pytest.raises(ProofError, match="at most"):
        Proof(2, 0, good.leaf_hash, (good.leaf_hash,) * (MAX_AUNTS + 1)).compute_root()
    single = simple_proof([A], 0)
    assert single.aunts == () and single.compute_root() == L(A)


# ----------------------------------------------------------------------------- ValueOp


def test_kv_leaf_layout() -> None:
    assert kv_leaf(b"key", b"value") == b"\x03key\x20" + sha(b"value")
    long_key = b"k" * 300
    # uvarint(300) = 0xAC 0x02
    assert kv_leaf(long_key, b"") == b"\xac\x02" + long_key + b"\x20" + sha(b"")


def test_value_op_run() -> None:
    leaves = [kv_leaf(b"a", b"1"), kv_leaf(b"b", b"2"), kv_leaf(b"c", b"3")]
    root, proofs = simple_proofs(leaves)
    op = ValueOp(b"b", proofs[1])
    assert op.run(b"2") == root
    with pytest.raises(ProofError, match="leaf hash mismatch"):
        op.run(b"3")
    with pytest.raises(ProofError, match="leaf hash mismatch"):
        ValueOp(b"c", proofs[1]).run(b"2")


def test_value_op_encoding_by_hand() -> None:
    leaf = bytes(range(32))
    aunt = bytes(range(32, 64))
    op = ValueOp(b"k", Proof(total=3, index=1, leaf_hash=leaf, aunts=(aunt,)))
    proof_bytes = b"\x08\x03" + b"\x10\x01" + b"\x1a\x20" + leaf + b"\x22\x20" + aunt
    expected = b"\x0a\x01k" + b"\x12" + bytes([len(proof_bytes)]) + proof_bytes
    assert op.encode() == expected
    assert ValueOp.decode(expected) == op
    # index 0 and empty key are proto3 defaults and are omitted entirely.
    op0 = ValueOp(b"", Proof(total=1, index=0, leaf_hash=leaf, aunts=()))
    assert op0.encode() == b"\x12\x24\x08\x01\x1a\x20" + leaf
    assert ValueOp.decode(op0.encode()) == op0
    # Large totals use multi-byte varints: 300 -> AC 02.
    big = ValueOp(b"k", Proof(total=300, index=299, leaf_hash=leaf, aunts=(aunt,) * 9))
    assert b"\x08\xac\x02\x10\xab\x02" in big.encode()
    assert ValueOp.decode(big.encode()) == big


def test_encode_rejects_out_of_range_int64() -> None:
    leaf = bytes(32)
    with pytest.raises(ProofError, match="int64"):
        ValueOp(b"k", Proof(1 << 63, 0, leaf, ())).encode()
    with pytest.raises(ProofError, match="int64"):
        ValueOp(b"k", Proof(1, -(1 << 63) - 1, leaf, ())).encode()
    # Negative values are legal int64s: ten-byte two's complement varints.
    neg = ValueOp(b"k", Proof(-1, 0, leaf, ())).encode()
    assert b"\x08" + b"\xff" * 9 + b"\x01" in neg


def _valid_op() -> ValueOp:
    _, proofs = simple_proofs([kv_leaf(b"a", b"1"), kv_leaf(b"b", b"2"), kv_leaf(b"c", b"3")])
    return ValueOp(b"b", proofs[1])


def test_value_op_round_trip() -> None:
    op = _valid_op()
    assert ValueOp.decode(op.encode()) == op
    pop = op.to_proof_op()
    assert pop == ProofOp(PROOF_OP_VALUE, b"b", op.encode())
    assert ValueOp.from_proof_op(pop) == op


def _proof_bytes(op: ValueOp) -> bytes:
    data = op.encode()
    return data[data.index(b"\x12") + 2 :]


GARBAGE = [
    pytest.param(b"", id="empty-no-proof"),
    pytest.param(b"\x0a\x01k", id="key-only-no-proof"),
    pytest.param(b"\xff", id="truncated-varint"),
    pytest.param(b"\x0a\x05ab", id="length-past-end"),
    pytest.param(b"\x12\x80", id="truncated-length"),
    pytest.param(b"\x08\x01", id="wrong-wire-type-for-key"),
    pytest.param(b"\x1a\x00", id="unknown-field"),
    pytest.param(b"\x0d\x00\x00\x00\x00", id="fixed32-wire-type"),
    pytest.param(b"\x00", id="field-zero"),
    pytest.param(b"\x12\x00", id="empty-proof-bad-leaf-size"),
    pytest.param(b"\x12\x02\x08\x00", id="explicit-zero-total-non-canonical"),
    pytest.param(b"\x12\x02\x1a\x00", id="leaf-hash-empty-non-canonical"),
    pytest.param(b"\x12\x0b\x08" + b"\xff" * 9 + b"\x01", id="negative-total"),
    pytest.param(b"\x12\x0c\x08" + b"\x80" * 10 + b"\x01", id="varint-too-long"),
    pytest.param(b"\x12\x04\x2a\x02\x00\x00", id="proof-unknown-field"),
    pytest.param(b"\x12\x02\x1a\x05", id="proof-truncated-bytes"),
    pytest.param(b"\x12\x02\x08\x01\x12\x02\x08\x01", id="duplicate-proof"),
    pytest.param(b"not a protobuf at all, just text", id="text"),
]


@pytest.mark.parametrize("data", GARBAGE)
def test_decode_garbage_raises(data: bytes) -> None:
    with pytest.raises(ProofError):
        ValueOp.decode(data)


def test_decode_rejects_bad_proof_shapes() -> None:
    op = _valid_op()
    leaf, aunts = op.proof.leaf_hash, op.proof.aunts
    for bad in [
        Proof(3, 1, leaf[:31], aunts),
        Proof(3, 1, leaf, (aunts[0][:5], aunts[1])),
        Proof(3, 1, leaf, (leaf,) * (MAX_AUNTS + 1)),
        Proof(-3, 1, leaf, aunts),
        Proof(3, -1, leaf, aunts),
    ]:
        with pytest.raises(ProofError):
            ValueOp.decode(ValueOp(b"b", bad).encode())
    data = op.encode()
    # A trailing byte or a non-minimal length varint is malformed/non-canonical.
    with pytest.raises(ProofError):
        ValueOp.decode(data + b"\x00")
    with pytest.raises(ProofError):
        ValueOp.decode(data[:-1])
    non_minimal = b"\x0a\x81\x00b" + data[3:]
    with pytest.raises(ProofError):
        ValueOp.decode(non_minimal)
    # Fields out of order are not what gogoproto writes.
    proof_field = data[3:]
    with pytest.raises(ProofError):
        ValueOp.decode(proof_field + data[:3])


def test_from_proof_op_takes_key_from_op_not_data() -> None:
    op = _valid_op()
    pop = ProofOp(PROOF_OP_VALUE, b"other", op.encode())
    assert ValueOp.from_proof_op(pop).key == b"other"
    with pytest.raises(ProofError, match="unexpected proof op type"):
        ValueOp.from_proof_op(ProofOp("iavl:v", b"b", op.encode()))


# ----------------------------------------------------------------------------- JSON


def test_proof_op_json_round_trip() -> None:
    pop = _valid_op().to_proof_op()
    obj = pop.to_json()
    assert obj == {
        "type": "simple:v",
        "key": base64.b64encode(b"b").decode(),
        "data": base64.b64encode(pop.data).decode(),
    }
    assert ProofOp.from_json(json.loads(json.dumps(obj))) == pop
    wrapped = proof_ops_to_json([pop, pop])
    assert list(wrapped) == ["ops"] and len(wrapped["ops"]) == 2
    assert proof_ops_from_json(json.loads(json.dumps(wrapped))) == [pop, pop]
    assert ProofOp("simple:v", b"", b"").to_json() == {"type": "simple:v"}
    assert ProofOp.from_json({"type": "simple:v"}) == ProofOp("simple:v", b"", b"")
    assert proof_ops_from_json({"ops": None}) == []
    assert proof_ops_from_json({"ops": []}) == []


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"type": 5},
        {"type": "simple:v", "key": "!!!"},
        {"type": "simple:v", "key": "YQ"},  # missing padding
        {"type": "simple:v", "data": 12},
        {"type": "simple:v", "extra": "x"},
    ],
)
def test_proof_op_from_json_rejects(obj: object) -> None:
    with pytest.raises(ProofError):
        ProofOp.from_json(obj)


@pytest.mark.parametrize("obj", [[], {"op": []}, {"ops": "x"}, {"ops": [1]}])
def test_proof_ops_from_json_rejects(obj: object) -> None:
    with pytest.raises(ProofError):
        proof_ops_from_json(obj)


# ----------------------------------------------------------------------------- key paths


def test_keypath_builder() -> None:
    assert keypath([b"\x00\x03", b"abc"]) == "/x:0003/x:616263"
    assert keypath([b"App", b"IBC", b"\x01\x02\x03"]) == "/x:417070/x:494243/x:010203"
    assert keypath([b"App", b"a/b c"], encoding="url") == "/App/a%2Fb%20c"
    # Go url.PathEscape leaves $&+:=@ and -._~ alone and escapes ;,?/ and bytes >= 0x80.
    assert keypath([b"a$&+:=@-._~;,?\xff"], encoding="url") == "/a$&+:=@-._~%3B%2C%3F%FF"
    assert keypath([]) == ""
    with pytest.raises(ValueError, match="ambiguous"):
        keypath([b"x:ab"], encoding="url")


def test_keypath_to_keys() -> None:
    assert keypath_to_keys("/x:0003/x:616263") == [b"\x00\x03", b"abc"]
    assert keypath_to_keys("/x:abCD") == [b"\xab\xcd"]
    assert keypath_to_keys("/App/a%2Fb%20c") == [b"App", b"a/b c"]
    assert keypath_to_keys("/a+b") == [b"a+b"]  # '+' is not a space in paths
    assert keypath_to_keys("/") == [b""]
    assert keypath_to_keys("/x:") == [b""]
    assert keypath_to_keys("/a//b") == [b"a", b"", b"b"]
    assert keypath_to_keys("/\u00e9") == ["\u00e9".encode()]
    for bad in ["", "abc", "x:00", "/x:0", "/x:zz", "/x: 0", "/%4", "/%zz", "/a%"]:
        with pytest.raises(ProofError):
            keypath_to_keys(bad)


# ----------------------------------------------------------------------------- verify_value


def _two_level() -> tuple[list[ProofOp], bytes, bytes]:
    """Inner map {a:1, b:2, c:3} stored under key "store" of an outer map."""
    inner_items = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    inner_root, inner_proofs = simple_proofs([kv_leaf(k, v) for k, v in inner_items])
    outer_items = [(b"other", b"x"), (b"store", inner_root)]
    outer_root, outer_proofs = simple_proofs([kv_leaf(k, v) for k, v in outer_items])
    ops = [
        ValueOp(b"b", inner_proofs[1]).to_proof_op(),
        ValueOp(b"store", outer_proofs[1]).to_proof_op(),
    ]
    return ops, outer_root, inner_root


def test_verify_value_chains_ops() -> None:
    ops, root, _ = _two_level()
    verify_value(ops, root, keypath([b"store", b"b"]), b"2")
    verify_value(ops, root, "/store/b", b"2")


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("/store/b", b"3", "leaf hash mismatch"),
        ("/b/store", b"2", "key mismatch"),  # path must be outermost first
        ("/store/c", b"2", "key mismatch"),
        ("/b", b"2", "no key left"),
        ("/extra/store/b", b"2", "not fully consumed"),
        ("store/b", b"2", "must start with"),
    ],
)
def test_verify_value_failures(path: str, value: bytes, match: str) -> None:
    ops, root, _ = _two_level()
    with pytest.raises(ProofError, match=match):
        verify_value(ops, root, path, value)


def test_verify_value_other_failures() -> None:
    ops, root, inner_root = _two_level()
    with pytest.raises(ProofError, match="does not match"):
        verify_value(ops, sha(b"other root"), "/store/b", b"2")
    # Only the inner op: its output is the inner root, not the outer root.
    with pytest.raises(ProofError, match="does not match"):
        verify_value(ops[:1], root, "/b", b"2")
    verify_value(ops[:1], inner_root, "/b", b"2")
    # Ops in the wrong order fail on the key check.
    with pytest.raises(ProofError):
        verify_value(ops[::-1], root, "/store/b", b"2")
    with pytest.raises(ProofError, match="unrecognized proof type"):
        verify_value([ProofOp("iavl:v", b"b", ops[0].data), ops[1]], root, "/store/b", b"2")
    with pytest.raises(ProofError, match="op #1"):
        verify_value([ops[0], ProofOp(PROOF_OP_VALUE, b"store", b"\xff")], root, "/store/b", b"2")
    # No ops: the value itself would have to be the root, and "/" leaves one key.
    with pytest.raises(ProofError, match="not fully consumed"):
        verify_value([], b"v", "/", b"v")


def test_verify_value_empty_op_key_consumes_nothing() -> None:
    # CometBFT skips the key-path check for ops whose key is empty.
    root, proofs = simple_proofs([kv_leaf(b"", b"v")])
    op = ValueOp(b"", proofs[0]).to_proof_op()
    # The path "/x:" holds one (empty) key that no op consumes, and every path has
    # at least one key, so a state key of b"" could never be proven.
    with pytest.raises(ProofError, match="not fully consumed"):
        verify_value([op], root, "/x:", b"v")


# ----------------------------------------------------------------------------- BucketedCommitment


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


@pytest.mark.parametrize("n_buckets", [1, 2, 16, 65_536])
def test_empty_commitment_root(n_buckets: int) -> None:
    c = BucketedCommitment(n_buckets)
    assert c.root() == ref_commitment_root({}, n_buckets)
    assert len(c) == 0 and c.items() == [] and c.n_buckets == n_buckets


def test_bucket_index_and_key() -> None:
    c = BucketedCommitment()
    key = b"hello"
    assert c.bucket_of(key) == int.from_bytes(sha(key)[:2], "big")
    assert BucketedCommitment(16).bucket_of(key) == sha(key)[0] >> 4
    assert BucketedCommitment(1).bucket_of(key) == 0
    assert bucket_key(0x1234) == b"\x12\x34"


@pytest.mark.parametrize("n_buckets", [1, 4, 16, 65_536])
def test_apply_insert_update_delete(n_buckets: int) -> None:
    c = BucketedCommitment(n_buckets)
    state: dict[bytes, bytes] = {}
    for step in range(30):
        changes: dict[bytes, bytes | None] = {}
        for i in range(step % 7 + 1):
            changes[b"k%d" % ((step * 5 + i * 3) % 40)] = b"v%d-%d" % (step, i)
        if step % 3 == 0:
            changes[b"k%d" % (step % 40)] = None
        root = c.apply(changes)
        for k, v in changes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        assert root == c.root() == ref_commitment_root(state, n_buckets)
        assert len(c) == len(state)
    assert c.items() == sorted(state.items())
    for k, v in state.items():
        assert c.get(k) == v and k in c
        ops = c.prove(k)
        assert [op.type for op in ops] == [PROOF_OP_VALUE, PROOF_OP_VALUE]
        assert ops[0].key == k and ops[1].key == bucket_key(c.bucket_of(k))
        verify_value(ops, c.root(), keypath([bucket_key(c.bucket_of(k)), k]), v)
        verify_value(ops, c.root(), c.keypath_for(k), v)
        with pytest.raises(ProofError):
            verify_value(ops, c.root(), c.keypath_for(k), v + b"!")
        with pytest.raises(ProofError):
            verify_value(ops, c.root(), keypath([k, bucket_key(c.bucket_of(k))]), v)
    assert c.get(b"absent") is None and b"absent" not in c
    with pytest.raises(KeyError):
        c.prove(b"absent")


def test_apply_noops() -> None:
    c = BucketedCommitment(16)
    empty_root = c.root()
    assert c.apply({}) == empty_root
    assert c.apply({b"missing": None}) == empty_root
    c.apply({b"a": b"1"})
    assert c.apply({b"a": None}) == empty_root
    assert len(c) == 0
    # Re-writing the same value keeps the root.
    r = c.apply({b"a": b"1", b"b": b"2"})
    assert c.apply({b"a": b"1"}) == r


def test_apply_validates_before_mutating() -> None:
    c = BucketedCommitment(16)
    c.apply({b"a": b"1"})
    before = c.root()
    with pytest.raises(ValueError, match="non-empty"):
        c.apply({b"b": b"2", b"": b"x"})
    with pytest.raises(TypeError):
        c.apply({b"b": b"2", "str": b"x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        c.apply({b"b": "text"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        c.apply({b"b": bytearray(b"x")})  # type: ignore[dict-item]
    assert c.root() == before and len(c) == 1 and c.get(b"b") is None


@pytest.mark.parametrize("bad", [0, 3, 100, 65_537, 131_072, -1])
def test_invalid_bucket_counts(bad: int) -> None:
    with pytest.raises(ValueError):
        BucketedCommitment(bad)
    with pytest.raises(TypeError):
        BucketedCommitment(True)


@pytest.mark.parametrize("n_buckets", [1, 16, 65_536])
def test_bulk_load_matches_apply(n_buckets: int) -> None:
    state = {b"key-%d" % i: b"value-%d" % (i * i) for i in range(500)}
    a = BucketedCommitment(n_buckets)
    a.apply(dict(state))
    b = BucketedCommitment(n_buckets)
    b.apply({b"stale": b"gone"})
    assert b.bulk_load(reversed(list(state.items()))) == a.root()
    assert b.root() == ref_commitment_root(state, n_buckets)
    assert len(b) == 500 and b.get(b"stale") is None
    assert b.items() == a.items() == sorted(state.items())
    # A loaded commitment keeps working incrementally.
    changes: dict[bytes, bytes | None] = {b"key-1": None, b"key-2": b"new", b"fresh": b"f"}
    assert a.apply(changes) == b.apply(changes)
    for k, v in b.items():
        verify_value(b.prove(k), b.root(), b.keypath_for(k), v)


def test_bulk_load_rejects_duplicates_and_keeps_state() -> None:
    c = BucketedCommitment(4)
    c.apply({b"a": b"1"})
    before = c.root()
    with pytest.raises(ValueError, match="duplicate"):
        c.bulk_load([(b"x", b"1"), (b"y", b"2"), (b"x", b"3")])
    with pytest.raises(ValueError):
        c.bulk_load([(b"", b"1")])
    with pytest.raises(TypeError):
        c.bulk_load([(b"x", None)])  # type: ignore[list-item]
    assert c.root() == before and c.items() == [(b"a", b"1")]


def test_large_bucket_partial_rebuilds() -> None:
    """One bucket with many entries: inserts/deletes at every position reuse the cached tree."""
    c = BucketedCommitment(1)
    state = {b"%04d" % i: b"v" for i in range(0, 200, 2)}
    c.bulk_load(state.items())
    for i in range(-1, 201):
        key = b"%04d" % i if i >= 0 else b"!"
        changes: dict[bytes, bytes | None] = (
            {key: None} if key in state else {key: b"n%d" % i, b"0000": b"w%d" % i}
        )
        c.apply(changes)
        for k, v in changes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        assert c.root() == ref_commitment_root(state, 1), i
