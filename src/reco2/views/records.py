"""State records as JSON objects with their field names (bytes as hex)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import msgspec


def to_json(value: Any) -> Any:
    """Records become objects keyed by field name; lists recurse; bytes become hex."""
    if isinstance(value, msgspec.Struct):
        return {name: to_json(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.value
    return value
