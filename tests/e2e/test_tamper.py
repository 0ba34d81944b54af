"""Tamper test: one flipped byte in a copy of a data directory — in a stored transaction, in a
middle block's header, in a state row — makes `reco2 audit` fail and name the place; the
untouched original still audits clean."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from reco2.ledger import block, tx
from reco2.ledger.state import decode_value
from reco2.ledger.types import Holding
from tests.e2e.harness import DB_FILE, audit_json, cli_json, free_port, one_line, rows, run_cli

TRANSFER_HEIGHT = 11  # `reco2 tour`'s story: one transaction per block (see cli/demo.py)
MIDDLE_HEIGHT = 7
BATCH = "nerima-pv-1:2025-06-01"
HOLDING_KEY = f"holding/{BATCH}/buyer"


@pytest.fixture(scope="module")
def demo_chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("tamper") / "original"
    result = cli_json("tour", "-d", data_dir, "--json")
    assert result["audit_ok"] and result["height"] == 13, result
    steps = {s["height"]: s["step"] for s in result["steps"]}
    assert steps[TRANSFER_HEIGHT].startswith("transfer"), steps
    assert steps[12].startswith("buyer retires"), steps
    return data_dir, result


def copy_of(original: Path, name: str) -> Path:
    target = original.parent / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(original, target)
    return target


def flip(
    data_dir: Path,
    sql_select: str,
    sql_update: str,
    params: tuple[Any, ...],
    position: int | Callable[[bytes], int],
    mask: int = 0x01,
) -> bytes:
    """Change one byte of one stored blob in place; returns the blob as it was."""
    conn = sqlite3.connect(data_dir / DB_FILE)
    try:
        found = conn.execute(sql_select, params).fetchall()
        assert len(found) == 1, (sql_select, params, found)
        before = bytes(found[0][0])
        at = position(before) if callable(position) else position
        after = bytearray(before)
        after[at] ^= mask
        conn.execute(sql_update, (bytes(after), *params))
        conn.commit()
    finally:
        conn.close()
    return before


def flip_tx(
    data_dir: Path, height: int, position: int | Callable[[bytes], int], mask: int = 0x01
) -> bytes:
    return flip(
        data_dir,
        "SELECT tx FROM txs WHERE height = ? AND idx = 0",
        "UPDATE txs SET tx = ? WHERE height = ? AND idx = 0",
        (height,),
        position,
        mask,
    )


def flip_header(
    data_dir: Path, height: int, position: int | Callable[[bytes], int], mask: int = 0x01
) -> bytes:
    return flip(
        data_dir,
        "SELECT header FROM blocks WHERE height = ?",
        "UPDATE blocks SET header = ? WHERE height = ?",
        (height,),
        position,
        mask,
    )


def flip_state(
    data_dir: Path, key: str, position: int | Callable[[bytes], int], mask: int = 0x01
) -> bytes:
    return flip(
        data_dir,
        "SELECT value FROM state WHERE key = ?",
        "UPDATE state SET value = ? WHERE key = ?",
        (key.encode(),),
        position,
        mask,
    )


def failed_audit(data_dir: Path, *, text: bool = True) -> tuple[str, dict[str, Any]]:
    """Audit a damaged copy (as text and as JSON); it must exit non-zero both ways.
    Returns (the text's stderr on one line, the JSON report)."""
    message = ""
    if text:
        proc = run_cli("audit", "-d", data_dir, expect=None)
        assert proc.returncode != 0, f"audit passed a tampered copy:\n{proc.stdout}"
        assert "audit failed" in proc.stderr, proc.stderr
        message = one_line(proc.stderr)
    code, report = audit_json(data_dir)
    assert code != 0 and report["ok"] is False and report["problems"], report
    return message, report


def test_original_audits_clean(demo_chain: tuple[Path, dict[str, Any]]) -> None:
    data_dir, demo = demo_chain
    text = run_cli("audit", "-d", data_dir)
    assert "audit ok" in text.stdout
    code, report = audit_json(data_dir)
    assert code == 0 and report["ok"] and report["problems"] == []
    assert report["blocks"] == 14 and report["txs"] == 13 and report["tip_hash"] == demo["tip_hash"]


def test_flipped_transaction_byte_names_height_and_tx(
    demo_chain: tuple[Path, dict[str, Any]],
) -> None:
    original, _ = demo_chain
    copy = copy_of(original, "copy-a")
    # A byte inside the signature: still a well-formed envelope, but not the signed one.
    raw = flip_tx(copy, TRANSFER_HEIGHT, lambda raw: len(raw) - 10)
    decoded = tx.decode(raw, 1 << 20)
    assert isinstance(decoded, tx.DecodedTx) and isinstance(decoded.body.action, tx.TransferValue)
    text, report = failed_audit(copy)
    assert f"first bad height {TRANSFER_HEIGHT}, tx 0:" in text, text
    first = report["problems"][0]
    assert (first["height"], first["tx_index"]) == (TRANSFER_HEIGHT, 0), report
    assert "transaction" in first["what"], first
    whats = {p["what"] for p in report["problems"]}
    assert "transaction signature does not verify" in whats, whats
    # Nothing before the damaged block is blamed.
    assert all(p["height"] is None or p["height"] >= TRANSFER_HEIGHT for p in report["problems"])
    # The original is untouched by the copy's damage.
    assert audit_json(original)[1]["ok"]


def test_flipped_block_header_byte_names_height(demo_chain: tuple[Path, dict[str, Any]]) -> None:
    original, _ = demo_chain
    copy = copy_of(original, "copy-b")
    # The last byte of the header is inside its state root.
    header = block.decode_header(flip_header(copy, MIDDLE_HEIGHT, -1))
    assert header.height == MIDDLE_HEIGHT
    text, report = failed_audit(copy)
    assert f"first bad height {MIDDLE_HEIGHT}:" in text, text
    first = report["problems"][0]
    assert first["height"] == MIDDLE_HEIGHT and first["tx_index"] is None, report
    assert "header" in first["what"], first
    assert all(p["height"] is None or p["height"] >= MIDDLE_HEIGHT for p in report["problems"])


def test_flipped_state_row_byte_names_key(demo_chain: tuple[Path, dict[str, Any]]) -> None:
    original, _ = demo_chain
    copy = copy_of(original, "copy-c")
    # The holding [tradable, escrowed, retired] = [500, 0, 1500]: its last byte is in "retired",
    # so the row still decodes, to a different quantity.
    before = flip_state(copy, HOLDING_KEY, -1)
    assert decode_value(HOLDING_KEY.encode(), before) == Holding(500, 0, 1_500)
    after = rows(copy, "SELECT value FROM state WHERE key = ?", (HOLDING_KEY.encode(),))[0][0]
    assert decode_value(HOLDING_KEY.encode(), bytes(after)) == Holding(500, 0, 1_501)
    text, report = failed_audit(copy)
    assert f"first bad state row '{HOLDING_KEY}'" in text, text
    first = report["problems"][0]
    assert first["key"] == HOLDING_KEY and first["height"] is None, report
    assert [p["key"] for p in report["problems"]] == [HOLDING_KEY], report
    # A node refuses to serve from the damaged directory.
    refused = run_cli("node", "run", "-d", copy, "--port", free_port(), expect=None, timeout=120)
    assert refused.returncode != 0
    assert "does not match" in one_line(refused.stderr), refused.stderr


def body_offset(raw: bytes) -> int:
    """Where the body bytes start in an envelope: [bin body, bin key, bin signature]."""
    assert raw[0] == 0x93
    return {0xC4: 3, 0xC5: 4, 0xC6: 6}[raw[1]]


def time_marker(header: bytes) -> int:
    """The position of time_ns's uint64 marker (0xcf) in a header [chain_id, height, time...]."""
    chain_id_len = header[1] & 0x1F
    at = 2 + chain_id_len + 1  # array marker, str marker, chain id, fixint height
    assert header[at] == 0xCF, header.hex()
    return at


# Different places a single changed byte can land; each must fail the audit at the same spot.
TX_FLIPS = [
    ("first body byte", body_offset, 0x01),
    (
        "middle of the body",
        lambda raw: body_offset(raw) + (len(raw) - 100 - body_offset(raw)) // 2,
        0x01,
    ),
    ("the quantity", lambda raw: raw.index(msgspec.msgpack.encode(2_000)) + 2, 0x02),
    ("public key", lambda raw: len(raw) - 64 - 2 - 5, 0x80),
    ("last signature byte", lambda raw: len(raw) - 1, 0xFF),
    ("envelope marker", lambda raw: 0, 0x01),
]
HEADER_FLIPS = [
    ("array marker", lambda h: 0, 0x01),
    ("chain id", lambda h: 3, 0x80),  # no longer UTF-8
    ("height", lambda h: time_marker(h) - 1, 0x01),
    ("time, re-encoded non-canonically (uint64 -> int64)", time_marker, 0xCF ^ 0xD3),
    ("previous hash", lambda h: time_marker(h) + 9 + 2 + 5, 0x10),
    ("tx root", lambda h: len(h) - 3 * 34 + 4, 0x01),
]
STATE_FLIPS = [
    ("array marker", lambda v: 0, 0x01),
    ("first value byte", lambda v: 1, 0x40),
    ("last byte", lambda v: len(v) - 1, 0xFF),
]


@pytest.mark.parametrize(("label", "position", "mask"), TX_FLIPS, ids=[f[0] for f in TX_FLIPS])
def test_any_transaction_byte(
    demo_chain: tuple[Path, dict[str, Any]], label: str, position: Callable[[bytes], int], mask: int
) -> None:
    copy = copy_of(demo_chain[0], "sweep-tx")
    flip_tx(copy, TRANSFER_HEIGHT, position, mask)
    _, report = failed_audit(copy, text=False)
    first = report["problems"][0]
    assert (first["height"], first["tx_index"]) == (TRANSFER_HEIGHT, 0), (label, report)


@pytest.mark.parametrize(
    ("label", "position", "mask"), HEADER_FLIPS, ids=[f[0] for f in HEADER_FLIPS]
)
def test_any_header_byte(
    demo_chain: tuple[Path, dict[str, Any]], label: str, position: Callable[[bytes], int], mask: int
) -> None:
    copy = copy_of(demo_chain[0], "sweep-header")
    flip_header(copy, MIDDLE_HEIGHT, position, mask)
    _, report = failed_audit(copy, text=False)
    first = report["problems"][0]
    assert first["height"] == MIDDLE_HEIGHT, (label, report)


@pytest.mark.parametrize(
    ("label", "position", "mask"), STATE_FLIPS, ids=[f[0] for f in STATE_FLIPS]
)
def test_any_state_byte(
    demo_chain: tuple[Path, dict[str, Any]], label: str, position: Callable[[bytes], int], mask: int
) -> None:
    copy = copy_of(demo_chain[0], "sweep-state")
    key = f"batch/{BATCH}"
    flip_state(copy, key, position, mask)
    _, report = failed_audit(copy, text=False)
    assert [p["key"] for p in report["problems"]] == [key], (label, report)


def test_unreadable_state_row_is_a_clear_error(demo_chain: tuple[Path, dict[str, Any]]) -> None:
    """A state row that no longer decodes: the audit names it, and the node, queries and
    proofs refuse the directory with a message instead of a traceback."""
    copy = copy_of(demo_chain[0], "unreadable-state")
    key = f"batch/{BATCH}"
    flip_state(copy, key, 0, 0x01)  # the record's array marker: [24 fields] -> [25 fields]
    _, report = failed_audit(copy, text=False)
    assert [p["key"] for p in report["problems"]] == [key], report
    for argv in (
        ("node", "run", "-d", copy, "--port", free_port()),
        ("query", key, "-d", copy),
        ("proof", BATCH, "-d", copy),
    ):
        proc = run_cli(*argv, expect=1, timeout=120)
        message = one_line(proc.stderr)
        assert "Traceback" not in message and "unreadable" in message, (argv, proc.stderr)
