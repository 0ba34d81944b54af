"""Build a batch's verifiable history bundle from a data directory (see ledger.history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reco2.ledger import block, merkle
from reco2.ledger.history import FORMAT, b64, proof_to_json
from reco2.ledger.state import HOLDING, batch_key, retirement_key, trade_key
from reco2.ledger.types import Retirement
from reco2.node.store import Store
from reco2.node.view import StateView


def build(data_dir: Path, batch_id: str) -> dict[str, Any]:
    """The history of one batch, proven against the data directory's last block."""
    view = StateView.open(data_dir)
    store = Store(data_dir, readonly=True)
    try:
        if view.state.batch(batch_id) is None:
            raise LookupError(f"no batch {batch_id!r}")
        places = store.events(f"batch/{batch_id}")
        first = places[0][0] if places else view.height
        entries = []
        for height in sorted({h for h, _ in places}):
            stored = store.block_txs(height)
            tx_leaves = [merkle.leaf_hash(s.hash) for s in stored]
            result_leaves = [merkle.leaf_hash(s.result) for s in stored]
            for h, index in places:
                if h != height:
                    continue
                entries.append(
                    {
                        "height": height,
                        "index": index,
                        "tx": b64(stored[index].raw),
                        "result": b64(stored[index].result),
                        "tx_proof": proof_to_json(merkle.proof_from_leaf_hashes(tx_leaves, index)),
                        "result_proof": proof_to_json(
                            merkle.proof_from_leaf_hashes(result_leaves, index)
                        ),
                    }
                )
        keys = [batch_key(batch_id)]
        # trades that drew from this batch, named in the events of its transactions
        for h, index in places:
            result = block.decode_result(store.block_txs(h)[index].result)
            for tag in result.events:
                if not tag.startswith("trade/"):
                    continue
                trade = view.state.trade(int(tag.split("/", 1)[1]))
                if trade is not None and any(d.batch_id == batch_id for d in trade.lots):
                    keys.append(trade_key(trade.trade_seq))
        keys += [k for k, _ in view.state.records_with_prefix(HOLDING + batch_id.encode() + b"/")]
        keys += [
            retirement_key(r.retirement_id)
            for _, r in view.state.records_with_prefix(b"retirement/")
            if isinstance(r, Retirement) and r.batch_id == batch_id
        ]
        state = [
            {
                "key": key.decode(),
                "value": b64(value),
                "proof_ops": merkle.proof_ops_to_json(view.commitment.prove(key)),
            }
            for key in keys
            if (value := view.commitment.get(key)) is not None
        ]
        headers = [b64(raw) for _, _, raw in store.headers(first, view.height)]
        tip = block.decode_header(store.headers(view.height, view.height)[0][2])
        return {
            "format": FORMAT,
            "chain_id": tip.chain_id,
            "batch_id": batch_id,
            "tip_height": view.height,
            "tip_hash": view.tip_hash.hex(),
            "headers": headers,
            "transactions": entries,
            "state": state,
        }
    finally:
        store.close()
