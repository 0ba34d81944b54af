"""A read-only view of a data directory's committed state (for queries and proofs while a
node may be running: SQLite WAL lets readers in beside the writer)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from reco2.ledger import block, merkle
from reco2.ledger.state import State
from reco2.node.store import Store


class ViewError(RuntimeError):
    pass


@dataclass(slots=True)
class StateView:
    state: State
    commitment: merkle.BucketedCommitment
    height: int
    tip_hash: bytes
    state_root: bytes

    @classmethod
    def open(cls, data_dir: Path) -> StateView:
        store = Store(data_dir, readonly=True)
        try:
            # Read the tip and the rows in one read transaction, so they belong together.
            with store.snapshot():
                height = store.last_height()
                if height is None:
                    raise ViewError(f"{data_dir} holds no chain")
                found = store.header(height)
                assert found is not None
                tip_hash, header_raw = found
                items = store.state_items()
        finally:
            store.close()
        state = State()
        try:
            header = block.decode_header(header_raw)
            state.load(items)
        except (msgspec.DecodeError, UnicodeDecodeError, KeyError) as exc:
            raise ViewError(
                f"stored block {height} or state is unreadable ({exc}) (run `reco2 audit`)"
            ) from exc
        commitment = merkle.BucketedCommitment()
        root = commitment.bulk_load(items)
        if root != header.state_root:
            raise ViewError(
                f"stored state does not match block {height}'s state root (run `reco2 audit`)"
            )
        return cls(state, commitment, height, tip_hash, root)
