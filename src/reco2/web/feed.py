"""Live market updates: the node's block listener fans out to server-sent-event streams.

The listener runs on the node's writer thread after a block is on disk; it compares the
market counters (orders placed, trades printed) and, when they moved, hands a small message
to each subscriber's queue on the event loop (never blocking the writer).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

from reco2.node.embedded import Node

HEARTBEAT_S = 15.0
QUEUE_SIZE = 16


class MarketFeed:
    def __init__(self, node: Node) -> None:
        self._node = node
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._lock = threading.Lock()
        self._last = self._counters()
        self.closed = asyncio.Event()
        node.on_block(self._on_block)

    def _counters(self) -> tuple[int, int]:
        counters = self._node.app.state.market_counters()
        return counters.next_order_seq, counters.next_trade_seq

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def close(self) -> None:
        self.closed.set()

    def _on_block(self, height: int) -> None:
        counters = self._counters()
        with self._lock:
            if counters == self._last:
                return
            self._last = counters
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        message = json.dumps({"height": height, "orders": counters[0], "trades": counters[1]})
        loop.call_soon_threadsafe(self._publish, message)

    def _publish(self, message: str) -> None:
        for queue in list(self._subscribers):
            if queue.full():  # a slow reader only needs the latest news
                queue.get_nowait()
            queue.put_nowait(message)

    async def stream(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield "retry: 2000\n\n"
            while not self.closed.is_set():
                try:
                    message = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: market\ndata: {message}\n\n"
        finally:
            self._subscribers.discard(queue)
