"""Cross-check reco2.ledger.merkle against CometBFT's own crypto/merkle (Go).

Builds ``tests/interop/cometbft_proof`` (requires ``github.com/cometbft/cometbft
v0.38.26`` from the Go module proxy or the module cache) once per session and
feeds it our proofs, roots and key paths.  A missing ``go`` toolchain is a test
failure, not a skip: this is the only check that the formats really match.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reco2.ledger.merkle import (
    BucketedCommitment,
    ValueOp,
    bucket_key,
    keypath,
    proof_ops_to_json,
    simple_proofs,
    simple_root,
)

GO_PROGRAM = Path(__file__).parent / "cometbft_proof"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="session")
def cometbft_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "the Go toolchain ('go') is not on PATH: it is required to cross-check the "
            "Merkle proofs against CometBFT (install Go >= 1.22)"
        )
    out = tmp_path_factory.mktemp("cometbft_proof") / "cometbft_proof"
    # go.mod/go.sum are committed and tidy, so the default -mod=readonly works;
    # -buildvcs=false avoids depending on git metadata of the enclosing checkout.
    proc = subprocess.run(
        [go, "build", "-buildvcs=false", "-o", str(out), "."],
        cwd=GO_PROGRAM,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"go build of {GO_PROGRAM} failed:\n{proc.stdout}\n{proc.stderr}")
    return out


def call(binary: Path, request: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        errors="replace",  # CometBFT's error messages may quote raw key bytes
        timeout=60,
        check=False,
    )


def query(binary: Path, request: dict[str, Any]) -> Any:
    proc = call(binary, request)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def cometbft_verifies(binary: Path, root: bytes, path: str, value: bytes, ops: Any) -> bool:
    proc = call(
        binary,
        {
            "mode": "verify",
            "root": root.hex(),
            "keypath": path,
            "value": b64(value),
            "proof_ops": ops,
        },
    )
    assert proc.returncode in (0, 1), f"bad request: {proc.stderr}"
    return proc.returncode == 0


def test_hash_from_byte_slices_matches(cometbft_bin: Path) -> None:
    cases = [[b"item-%d-" % i * (i % 4) for i in range(n)] for n in range(21)]
    cases.append([b"", b"\x00", b"\xff" * 100])
    roots = query(cometbft_bin, {"mode": "hash", "cases": [[b64(x) for x in c] for c in cases]})
    assert roots == [simple_root(c).hex() for c in cases]


def test_value_op_encoding_is_byte_identical(cometbft_bin: Path) -> None:
    for n in (1, 2, 3, 5, 8, 13, 20):
        items = [b"k%d" % i for i in range(n)]
        out = query(cometbft_bin, {"mode": "proofs", "items": [b64(x) for x in items]})
        root, proofs = simple_proofs(items)
        assert out["root"] == root.hex()
        ours = [b64(ValueOp(items[i], p).encode()) for i, p in enumerate(proofs)]
        assert out["ops"] == ours


def test_keypath_strings_match(cometbft_bin: Path) -> None:
    keys = [b"\x00\x03", b"App", b"a/b c;d,e?f", b"$&+:=@-._~", bytes(range(0, 256, 7))]
    out = query(cometbft_bin, {"mode": "keypath", "keys": [b64(k) for k in keys]})
    assert out["hex"] == keypath(keys)
    assert out["url"] == keypath(keys, encoding="url")


@pytest.mark.parametrize("n_buckets", [16, 65_536])
def test_commitment_proofs_verify_under_cometbft(cometbft_bin: Path, n_buckets: int) -> None:
    c = BucketedCommitment(n_buckets)
    c.apply({b"acct/%d" % i: b"balance=%d" % (i * 7) for i in range(200)})
    c.apply({b"acct/3": None, b"acct/4": b"changed", b"\x00binary\xffkey": b""})
    root = c.root()
    keys = [b"acct/0", b"acct/4", b"acct/199", b"\x00binary\xffkey", b"acct/57"]
    for key in keys:
        value = c.get(key)
        assert value is not None
        ops = proof_ops_to_json(c.prove(key))
        path = keypath([bucket_key(c.bucket_of(key)), key])
        assert cometbft_verifies(cometbft_bin, root, path, value, ops), key
        # Wrong value, wrong root and reversed key path are all refused.
        assert not cometbft_verifies(cometbft_bin, root, path, value + b"x", ops)
        assert not cometbft_verifies(cometbft_bin, bytes(32), path, value, ops)
        reversed_path = keypath([key, bucket_key(c.bucket_of(key))])
        assert not cometbft_verifies(cometbft_bin, root, reversed_path, value, ops)
    # Multi-entry buckets (16 buckets, ~200 keys) really exercise bucket proofs.
    if n_buckets == 16:
        sizes = {ValueOp.from_proof_op(c.prove(k)[0]).proof.total for k in keys}
        assert max(sizes) > 1


def test_url_encoded_keypath_accepted_by_cometbft(cometbft_bin: Path) -> None:
    c = BucketedCommitment(16)
    c.apply({b"plain-key": b"v"})
    key = b"plain-key"
    path = keypath([bucket_key(c.bucket_of(key)), key], encoding="url")
    ops = proof_ops_to_json(c.prove(key))
    assert cometbft_verifies(cometbft_bin, c.root(), path, b"v", ops)
