"""Key files: a participant's Ed25519 seed, kept in the data directory's keys/ folder (0600)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from reco2.ledger import tx


@dataclass(frozen=True, slots=True)
class KeyFile:
    participant_id: str
    seed: bytes

    @property
    def public_key(self) -> bytes:
        return tx.public_key_of(self.seed)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(
            {
                "participant_id": self.participant_id,
                "public_key": self.public_key.hex(),
                "seed": self.seed.hex(),
            },
            indent=2,
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")

    @classmethod
    def load(cls, path: Path) -> KeyFile:
        data = json.loads(path.read_text())
        seed = bytes.fromhex(data["seed"])
        if len(seed) != 32:
            raise ValueError(f"{path}: a seed is 32 bytes")
        return cls(str(data["participant_id"]), seed)

    @classmethod
    def generate(cls, participant_id: str) -> KeyFile:
        return cls(participant_id, os.urandom(32))


def key_path(data_dir: Path, participant_id: str) -> Path:
    return data_dir / "keys" / f"{participant_id}.key"
