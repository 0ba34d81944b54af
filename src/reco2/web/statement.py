"""Retirement statements: a PDF a person can hand to an auditor, that anyone can verify.

The PDF shows the retirement, the batch's provenance (who, where, when, which source), the
block that recorded it (height and hash) and the proof; the machine-readable statement is
attached to the PDF as ``statement.json``: the retirement, its block, and the batch's history
bundle (``reco2-history/1``: headers, transactions and state with their Merkle proofs).
Verifying checks the bundle against a block hash taken from the ledger itself, then that the
proven history holds this retirement exactly as the statement says.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import WrapMode
from pypdf import PdfReader

from reco2.ledger import block, tx
from reco2.ledger import history as ledger_history
from reco2.ledger.history import unb64
from reco2.node import history as node_history
from reco2.node.store import Store
from reco2.node.view import StateView
from reco2.views.market import SOURCE_JA, UNDISCLOSED, place_name

FORMAT = "reco2-retirement-statement/1"
ATTACHMENT = "statement.json"
JST = timezone(timedelta(hours=9))
FONT_CANDIDATES = (
    Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"),
    Path("/usr/share/fonts/truetype/fonts-japanese-gothic.ttf"),
)


class StatementError(ValueError):
    """The statement is malformed or does not match the ledger."""


def build(data_dir: Path, retirement_id: str) -> dict[str, Any]:
    """The statement of one retirement, proven against the data directory's last block."""
    view = StateView.open(data_dir)
    retirement = view.state.retirement(retirement_id)
    if retirement is None:
        raise LookupError(f"no retirement {retirement_id!r}")
    batch = view.state.batch(retirement.batch_id)
    assert batch is not None, "a retirement names an existing batch"
    owner = view.state.participant(batch.owner)
    owner_public = owner is not None and owner.name_public
    block_hash = _block_hash(data_dir, retirement.height)
    return {
        "format": FORMAT,
        "retirement": {
            "retirement_id": retirement.retirement_id,
            "holder": retirement.holder,
            "batch_id": retirement.batch_id,
            "quantity_g": retirement.quantity_g,
            "beneficiary": retirement.beneficiary,
            "purpose": retirement.purpose.value,
            "claimed_period": retirement.claimed_period,
            "note": retirement.note,
            "tx_hash": retirement.tx_hash.hex(),
        },
        "provenance": {
            "batch_id": batch.batch_id,
            "device_id": batch.device_id,
            "owner": batch.owner if owner_public else UNDISCLOSED,
            "owner_name": owner.display_name if owner is not None and owner_public else "非公表",
            "source": batch.source.value,
            "prefecture_code": batch.prefecture_code,
            "municipality_code": batch.municipality_code,
            "period_start_s": batch.period_start_s,
            "period_end_s": batch.period_end_s,
            "self_consumed_wh": batch.self_consumed_wh,
            "factor_mg_per_wh": batch.factor_mg_per_wh,
            "factor_version": batch.factor_version,
            "co2_g": batch.co2_g,
        },
        "block": {"height": retirement.height, "hash": block_hash.hex()},
        "history": node_history.build(data_dir, retirement.batch_id),
    }


def _block_hash(data_dir: Path, height: int) -> bytes:
    store = Store(data_dir, readonly=True)
    try:
        found = store.header(height)
    finally:
        store.close()
    if found is None:
        raise LookupError(f"no block {height}")
    return found[0]


@dataclass(frozen=True, slots=True)
class Verified:
    retirement_id: str
    batch_id: str
    quantity_g: int
    height: int
    block_hash: bytes
    tip_height: int
    tip_hash: bytes


def verify(statement: dict[str, Any], trusted_tip_hash: bytes) -> Verified:
    """Check a statement against a block hash the verifier trusts (the ledger's)."""
    if statement.get("format") != FORMAT:
        raise StatementError(f"not a {FORMAT} statement")
    try:
        claimed = statement["retirement"]
        claimed_block = statement["block"]
        bundle = statement["history"]
        height = int(claimed_block["height"])
        claimed_hash = bytes.fromhex(claimed_block["hash"])
        retirement_id = str(claimed["retirement_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StatementError(f"statement is incomplete ({exc})") from exc
    try:
        history = ledger_history.verify(bundle, trusted_tip_hash)
    except ledger_history.HistoryError as exc:
        raise StatementError(f"proof does not verify: {exc}") from exc
    if history.batch.batch_id != claimed.get("batch_id"):
        raise StatementError("the proof is of another batch")
    # the claimed block is one of the proven, hash-linked headers
    hashes = {}
    for raw in bundle.get("headers", []):
        header_bytes = unb64(raw, "header")
        header = block.decode_header(header_bytes)
        hashes[header.height] = block.header_hash(header)
    if hashes.get(height) != claimed_hash:
        raise StatementError(f"block {height} of the statement is not the proven block")
    for event in history.events:
        action = event.action
        if isinstance(action, tx.RetireValue) and action.retirement_id == retirement_id:
            if event.code != "ok" or event.height != height:
                raise StatementError("the retirement's transaction did not succeed there")
            expected = {
                "holder": event.signer,
                "batch_id": action.batch_id,
                "quantity_g": action.quantity_g,
                "beneficiary": action.beneficiary,
                "purpose": action.purpose.value,
                "claimed_period": action.claimed_period,
                "note": action.note,
                "tx_hash": event.tx_hash.hex(),
            }
            for key, value in expected.items():
                if claimed.get(key) != value:
                    raise StatementError(f"the statement's {key} differs from the ledger")
            return Verified(
                retirement_id,
                action.batch_id,
                action.quantity_g,
                height,
                claimed_hash,
                history.tip_height,
                history.tip_hash,
            )
    raise StatementError(f"the proven history holds no retirement {retirement_id!r}")


def verify_against_ledger(statement: dict[str, Any], data_dir: Path) -> Verified:
    """Verify with the hash of the statement's tip block as this ledger stores it."""
    try:
        tip_height = int(statement["history"]["tip_height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StatementError("statement names no tip block") from exc
    try:
        trusted = _block_hash(data_dir, tip_height)
    except LookupError as exc:
        raise StatementError(f"the ledger has no block {tip_height}") from exc
    return verify(statement, trusted)


# ---- the PDF ------------------------------------------------------------------------------
def rows(statement: dict[str, Any]) -> list[tuple[str, str]]:
    """What the statement says, as (label, value) lines: the PDF's and the web page's."""
    r = statement["retirement"]
    p = statement["provenance"]
    period = f"{_jst(p['period_start_s'])} - {_jst(p['period_end_s'])} (JST)"
    place = place_name(p["municipality_code"])
    return [
        ("償却ID / Retirement id", r["retirement_id"]),
        ("数量 / Quantity", f"{_kg(r['quantity_g'])} kg-CO2"),
        ("受益者 / Beneficiary", r["beneficiary"]),
        ("目的 / Purpose", r["purpose"]),
        ("対象期間 / Claimed period", r["claimed_period"]),
        ("メモ / Note", r["note"]),
        ("保有者 / Holder", r["holder"]),
        ("バッチ / Batch", p["batch_id"]),
        ("誰が / Who", p["owner_name"]),
        ("どこで / Where", f"{place} ({p['municipality_code']})"),
        ("いつ / When", period),
        ("電源 / Source", f"{SOURCE_JA.get(_source(p['source']), p['source'])} ({p['source']})"),
        (
            "算定 / Quantification",
            f"{p['self_consumed_wh']} Wh x {p['factor_mg_per_wh']} mg/Wh "
            f"({p['factor_version']}) = {_kg(p['co2_g'])} kg",
        ),
        ("ブロック高 / Block height", str(statement["block"]["height"])),
        ("ブロックハッシュ / Block hash", statement["block"]["hash"]),
        ("取引ハッシュ / Tx hash", r["tx_hash"]),
        ("証明の基点 / Proof tip", f"{statement['history']['tip_height']}"),
        ("基点ハッシュ / Tip hash", statement["history"]["tip_hash"]),
    ]


def to_pdf(statement: dict[str, Any]) -> bytes:
    r = statement["retirement"]
    pdf = FPDF(format="A4")
    pdf.set_title(f"ReCO2 retirement statement {r['retirement_id']}")
    pdf.set_creator("ReCO2")
    font = next((f for f in FONT_CANDIDATES if f.exists()), None)
    if font is not None:
        pdf.add_font("jp", fname=str(font))
        family = "jp"
    else:  # no Japanese font installed: Latin text only, the attachment stays exact
        family = "Helvetica"
    pdf.add_page()
    pdf.set_font(family, size=16)
    pdf.cell(
        0,
        10,
        _text(family, "CO2削減価値 償却証明書 / Retirement statement"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font(family, size=10)
    for label, value in rows(statement):
        pdf.set_font(family, size=9)
        pdf.cell(55, 6, _text(family, label))
        pdf.multi_cell(
            0, 6, _text(family, str(value)), new_x="LMARGIN", new_y="NEXT", wrapmode=WrapMode.CHAR
        )
    pdf.ln(4)
    pdf.set_font(family, size=8)
    proof_lines = [
        f"{entry['key']}: {len(entry['proof_ops'])} proof ops"
        for entry in statement["history"]["state"]
    ]
    pdf.multi_cell(
        0,
        5,
        _text(
            family,
            "証明 / Proof: the attached statement.json holds the batch's hash-linked block "
            f"headers, {len(statement['history']['transactions'])} transactions with Merkle "
            "proofs and these state records proven against the tip's state root:\n"
            + "\n".join(proof_lines)
            + "\n検証 / Verify: reco2 verify-statement FILE --data-dir DIR, or the /verify page.",
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.embed_file(
        bytes=json.dumps(statement, ensure_ascii=False, sort_keys=True).encode(),
        basename=ATTACHMENT,
        mime_type="application/json",
        desc="ReCO2 retirement statement with its proofs",
    )
    return bytes(pdf.output())


def from_pdf(data: bytes) -> dict[str, Any]:
    """The statement attached to a PDF."""
    try:
        attachments = PdfReader(io.BytesIO(data)).attachments
        raw = attachments[ATTACHMENT][0]
        statement = json.loads(raw)
    except (KeyError, IndexError, ValueError) as exc:
        raise StatementError(f"no {ATTACHMENT} attached to this PDF") from exc
    except Exception as exc:  # pypdf raises many kinds on a damaged file
        raise StatementError(f"not a readable PDF ({type(exc).__name__})") from exc
    if not isinstance(statement, dict):
        raise StatementError(f"{ATTACHMENT} is not a statement")
    return statement


def _kg(co2_g: int) -> str:
    whole, part = divmod(co2_g, 1000)
    return f"{whole}.{part:03d}"


def _jst(unix_s: int) -> str:
    return datetime.fromtimestamp(unix_s, UTC).astimezone(JST).strftime("%Y-%m-%d %H:%M")


def _source(value: str) -> Any:
    from reco2.ledger.types import Source

    return Source(value)


def _text(family: str, text: str) -> str:
    if family != "Helvetica":
        return text
    return text.encode("latin-1", "replace").decode("latin-1")
