"""Bad input, against a node process over HTTP and against the embedded Node in-process:
every kind of bad transaction gets its outcome code, the node keeps running, nothing already
committed changes, a valid transaction afterwards succeeds and the chain still audits clean."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from reco2.ledger import tx
from reco2.ledger.outcome import ENVELOPE_OUTCOMES, Outcome
from reco2.ledger.types import Purpose
from reco2.node.audit import audit
from reco2.node.embedded import Node, Receipt, create_chain
from reco2.node.server import MAX_BODY_BYTES
from tests import support
from tests.e2e.harness import (
    HttpLedger,
    NodeProcess,
    audit_json,
    init_chain,
    iter_changed,
    populate,
    sign,
    sign_body,
    snapshot,
    stored_result,
)
from tests.support import seed_of


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    code: Outcome


def retire(retirement_id: str, quantity_g: int = 1, note: str = "") -> tx.RetireValue:
    return tx.RetireValue(retirement_id, "b1", quantity_g, "buyer", Purpose.offset, "FY2025", note)


def door_cases(chain_id: str, buyer_nonce: int, committed: bytes) -> list[Case]:
    """Transactions refused before any block, each with the outcome it must get.
    ``committed`` is a transaction of the buyer already in a block; ``buyer_nonce`` is the
    buyer's next nonce."""
    assert buyer_nonce >= 1

    def as_buyer(
        action: tx.Action,
        nonce: int = buyer_nonce,
        signer: str = "buyer",
        seed: bytes | None = None,
        chain: str = chain_id,
    ) -> bytes:
        return sign(chain, signer, nonce, action, seed or seed_of(signer))

    valid = as_buyer(retire("r-door"))
    other = as_buyer(retire("r-other"))
    assert valid[1] == 0xC4, "a body under 256 bytes (bin8)"
    body = valid[3 : 3 + valid[2]]
    rest = valid[3 + valid[2] :]
    bad_signature = bytearray(valid)
    bad_signature[-1] ^= 0x01
    mint = ["mint_value", "b1", 10]  # no such kind
    unknown_kind = msgspec.msgpack.encode([chain_id, "buyer", buyer_nonce, mint])
    not_utf8 = msgspec.msgpack.encode([chain_id, "buyer", buyer_nonce, ["approve_device", "x"]])
    not_utf8 = not_utf8.replace(chain_id.encode(), b"\xcf" * len(chain_id))
    return [
        Case("empty body", b"", Outcome.malformed_transaction),
        Case("garbage bytes", random.Random(2).randbytes(300), Outcome.malformed_transaction),
        Case(
            "a msgpack map", msgspec.msgpack.encode({"tx": "hello"}), Outcome.malformed_transaction
        ),
        Case("truncated by one byte", valid[:-1], Outcome.malformed_transaction),
        Case("truncated to half", valid[: len(valid) // 2], Outcome.malformed_transaction),
        Case("trailing byte", valid + b"\x00", Outcome.malformed_transaction),
        Case(
            "body is not UTF-8",
            sign_body(not_utf8, seed_of("buyer")),
            Outcome.malformed_transaction,
        ),
        Case(
            "non-canonical envelope (bin16 length)",
            b"\x93\xc5" + len(body).to_bytes(2, "big") + body + rest,
            Outcome.non_canonical_encoding,
        ),
        Case(
            "larger than the genesis max_tx_bytes",
            as_buyer(retire("r-big", note="x" * 20_000)),
            Outcome.transaction_too_large,
        ),
        Case(
            "unknown kind, signed correctly",
            sign_body(unknown_kind, seed_of("buyer")),
            Outcome.unknown_kind,
        ),
        Case(
            "another chain",
            as_buyer(retire("r-chain"), chain="reco2-elsewhere"),
            Outcome.wrong_chain,
        ),
        Case("wrong signature", bytes(bad_signature), Outcome.bad_signature),
        Case(
            "signature of another body",
            valid[: len(valid) - tx.SIGNATURE_BYTES] + other[-tx.SIGNATURE_BYTES :],
            Outcome.bad_signature,
        ),
        Case(
            "unknown signer",
            as_buyer(retire("r-ghost"), nonce=0, signer="ghost"),
            Outcome.unknown_signer,
        ),
        Case(
            "signed with another participant's key",
            as_buyer(retire("r-key"), seed=seed_of("maekawa")),
            Outcome.signer_key_mismatch,
        ),
        Case("replay of a committed transaction", committed, Outcome.nonce_reused),
        Case(
            "reused nonce", as_buyer(retire("r-reuse"), nonce=buyer_nonce - 1), Outcome.nonce_reused
        ),
        Case(
            "nonce too high",
            as_buyer(retire("r-high"), nonce=buyer_nonce + 5),
            Outcome.nonce_too_high,
        ),
        Case(
            "zero quantity",
            as_buyer(tx.TransferValue("b1", "maekawa", 0)),
            Outcome.quantity_must_be_positive,
        ),
    ]


#: Signed correctly with a valid nonce, but by a participant whose role may not do it: these
#: enter a block and are recorded there with their code.
WRONG_ROLE = [
    ("buyer", tx.ApproveDevice("pv-1")),
    ("maekawa", tx.DepositYen("maekawa", 1_000, "self-pay")),
    (
        "bank",
        tx.PublishEmissionFactors("fake", [tx.FactorRowIn(2025, "national", 1, "x", "2026-01-01")]),
    ),
]


def committed_rows_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Every block and transaction of ``before`` is stored unchanged in ``after``."""
    for height, stored in before["blocks"].items():
        assert after["blocks"][height] == stored, f"block {height} changed"
    for place, stored in before["txs"].items():
        assert after["txs"][place] == stored, f"transaction {place} changed"


def test_bad_input_over_http(tmp_path: Path) -> None:
    data_dir = tmp_path / "chain"
    authority = init_chain(data_dir)
    with NodeProcess(data_dir, tmp_path / "node.log") as node:
        ledger = HttpLedger(node.url, {"authority": authority.seed})
        populate(ledger)
        committed = ledger.sign("buyer", retire("r-1"))
        assert ledger.post(committed).json()["code"] == "ok"
        before = snapshot(data_dir)
        status = ledger.status()

        wrong = []
        for case in door_cases(ledger.chain_id, ledger.nonce("buyer"), committed):
            response = ledger.post(case.raw)
            assert node.alive, f"node died on {case.name}:\n{node.log()}"
            if response.status_code != 422:
                wrong.append(f"{case.name}: HTTP {response.status_code} {response.text[:200]}")
                continue
            got = response.json()
            if got["code"] != case.code or got["height"] is not None:
                wrong.append(f"{case.name}: {got}")
        assert not wrong, "\n".join(wrong)

        # Bodies beyond the HTTP limit are cut off before they are read, declared or chunked.
        big = b"\x93" + bytes(MAX_BODY_BYTES + 10)
        assert ledger.post(big).status_code == 413
        chunked = ledger.client.post("/v1/txs", content=iter([bytes(10_000)] * 8))
        assert chunked.status_code == 413
        assert node.alive, node.log()

        assert ledger.status() == status, "a refused transaction changed the chain"
        assert snapshot(data_dir) == before, "a refused transaction changed the store"

        for signer, action in WRONG_ROLE:
            receipt = ledger.submit(signer, action)
            assert receipt["code"] == "role_not_allowed" and receipt["height"], receipt
            recorded = stored_result(data_dir, receipt["height"], receipt["index"])
            assert recorded.code == "role_not_allowed" and recorded.events == []
        after_roles = snapshot(data_dir)
        committed_rows_unchanged(before, after_roles)
        # Only the signers' nonces moved: the signed bytes are in the chain, never replayable.
        assert list(iter_changed(before["state"], after_roles["state"])) == [
            b"participant/bank",
            b"participant/buyer",
            b"participant/maekawa",
        ]

        receipt = ledger.ok("buyer", retire("r-2", 5))
        assert receipt["height"] > status["height"]
        after = snapshot(data_dir)
        committed_rows_unchanged(after_roles, after)
        assert list(iter_changed(after_roles["state"], after["state"])) == [
            b"holding/b1/buyer",
            b"participant/buyer",
            b"retirement/r-2",
        ]
        code, report = audit_json(data_dir)
        assert code == 0 and report["ok"], report["problems"]
        assert report["tip_hash"] == ledger.status()["tip_hash"]
        ledger.close()
        assert node.alive


class EmbeddedLedger:
    """The same calls as HttpLedger, straight into an in-process embedded Node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.chain_id = node.app.chain_id

    def nonce(self, participant_id: str) -> int:
        return self.node.next_nonce(participant_id)

    def sign(self, signer: str, action: tx.Action) -> bytes:
        return sign(self.chain_id, signer, self.nonce(signer), action, seed_of(signer))

    def send(self, raw: bytes) -> Receipt:
        return self.node.submit(raw).result(timeout=120)

    def ok(self, signer: str, action: tx.Action) -> Receipt:
        receipt = self.send(self.sign(signer, action))
        assert receipt.ok and receipt.height is not None, (signer, action, receipt)
        return receipt


def test_bad_input_embedded(tmp_path: Path) -> None:
    create_chain(tmp_path, support.genesis())
    node = Node(tmp_path, block_interval_ms=5).start()
    try:
        ledger = EmbeddedLedger(node)
        populate(ledger)  # type: ignore[arg-type]
        committed = ledger.sign("buyer", retire("r-1"))
        assert ledger.send(committed).ok
        before = snapshot(tmp_path)
        (height, root) = node.state_root()

        cases = door_cases(ledger.chain_id, ledger.nonce("buyer"), committed)
        cases.append(
            Case(
                "beyond the HTTP limit too",
                ledger.sign("buyer", retire("r-huge", note="x" * (MAX_BODY_BYTES + 10))),
                Outcome.transaction_too_large,
            )
        )
        one_by_one = [(c.name, ledger.send(c.raw)) for c in cases]
        many = node.submit_many([c.raw for c in cases])
        together = [(c.name, f.result(timeout=120)) for c, f in zip(cases, many, strict=True)]
        for got in (one_by_one, together):
            wrong = [
                f"{name}: {receipt.code} at {receipt.height}"
                for (name, receipt), case in zip(got, cases, strict=True)
                if receipt.code != case.code.value or receipt.height is not None
            ]
            assert not wrong, "\n".join(wrong)
        assert all(c.code in ENVELOPE_OUTCOMES or c.code.name.endswith("positive") for c in cases)
        assert node.state_root() == (height, root)
        assert snapshot(tmp_path) == before

        for signer, action in WRONG_ROLE:
            receipt = ledger.send(ledger.sign(signer, action))
            assert receipt.code == "role_not_allowed" and receipt.height is not None, receipt
            stored = node.store.find_tx(receipt.tx_hash)
            assert stored is not None and stored.height == receipt.height
        receipt = ledger.ok("buyer", retire("r-2", 5))
        holding = node.app.state.holding("b1", "buyer")
        assert holding is not None and (holding.tradable_g, holding.retired_g) == (94, 6)
        committed_rows_unchanged(before, snapshot(tmp_path))
    finally:
        node.stop()
    report = audit(tmp_path)
    assert report.ok, report.problems
    assert report.txs == len(snapshot(tmp_path)["txs"])
