"""What every transaction kind shares: the execution context and field rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from reco2.ledger.outcome import Outcome
from reco2.ledger.types import Participant, Role

ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
MAX_TEXT_CHARS: Final = 256
#: Upper bound on any single amount [g, sen, Wh]: far above any real quantity, it keeps
#: arithmetic and storage bounded and refuses absurd input early.
MAX_AMOUNT: Final = 10**15


@dataclass(frozen=True, slots=True)
class Context:
    """What a transaction executes with: the block's height and time and the verified signer."""

    height: int
    time_ns: int
    tx_hash: bytes
    signer: Participant


def valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def text_ok(value: str, limit: int = MAX_TEXT_CHARS) -> bool:
    return len(value) <= limit


def has_role(participant: Participant, role: Role) -> bool:
    return role in participant.roles


def positive_amount(value: int, zero_code: Outcome) -> Outcome:
    if value <= 0:
        return zero_code
    if value > MAX_AMOUNT:
        return Outcome.amount_too_large
    return Outcome.ok
