"""Order status changes through one table: an order is open until it is filled, cancelled
or expired, and a closed order never opens again."""

from __future__ import annotations

from typing import Final

from reco2.ledger.types import OrderStatus

TRANSITIONS: Final[dict[OrderStatus, frozenset[OrderStatus]]] = {
    OrderStatus.open: frozenset({OrderStatus.filled, OrderStatus.cancelled, OrderStatus.expired}),
    OrderStatus.filled: frozenset(),
    OrderStatus.cancelled: frozenset(),
    OrderStatus.expired: frozenset(),
}


def can_move(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


def moved(current: OrderStatus, target: OrderStatus) -> OrderStatus:
    assert can_move(current, target), f"order status {current} cannot become {target}"
    return target
