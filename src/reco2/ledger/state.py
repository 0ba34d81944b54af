"""The ledger state: one ordered map of keys to records, with the keys a block changed.

Keys are ASCII byte strings ``<table>/<id>[/<id>]``; ids never contain "/" (see ``ids``).
Values are records from ``types`` encoded as MessagePack arrays. The state keeps decoded
records in memory and remembers which keys changed since the last commit, so the state root and
the storage writes cost what the block changed, not what the state holds.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Final, TypeVar

import msgspec

from reco2.ledger.market.book import Book
from reco2.ledger.types import (
    BuyOrder,
    Device,
    FactorTable,
    Holding,
    IssuedPeriod,
    MarketCounters,
    OrderStatus,
    Participant,
    ReadingRelease,
    Record,
    Reference,
    Retirement,
    SellOrder,
    SellRule,
    Trade,
    ValueBatch,
    YenAccount,
    YenTotals,
)

R = TypeVar("R", bound=Record)

PARTICIPANT: Final = b"participant/"
DEVICE: Final = b"device/"
FACTORS: Final = b"factors/"
BATCH: Final = b"batch/"
HOLDING: Final = b"holding/"
YEN: Final = b"yen/"
RETIREMENT: Final = b"retirement/"
ISSUED: Final = b"issued/"
DEPOSIT_REF: Final = b"deposit_ref/"
WITHDRAWAL_REF: Final = b"withdrawal_ref/"
YEN_TOTALS: Final = b"totals/yen"
SELL_ORDER: Final = b"sell_order/"
BUY_ORDER: Final = b"buy_order/"
TRADE: Final = b"trade/"
SELL_RULE: Final = b"sell_rule/"
MARKET_COUNTERS: Final = b"market/counters"
RELEASE: Final = b"release/"

#: Which record type lives under which key prefix (longest prefixes are distinct).
TABLES: Final[dict[bytes, type[Record]]] = {
    PARTICIPANT: Participant,
    DEVICE: Device,
    FACTORS: FactorTable,
    BATCH: ValueBatch,
    HOLDING: Holding,
    YEN: YenAccount,
    RETIREMENT: Retirement,
    ISSUED: IssuedPeriod,
    DEPOSIT_REF: Reference,
    WITHDRAWAL_REF: Reference,
    YEN_TOTALS: YenTotals,
    SELL_ORDER: SellOrder,
    BUY_ORDER: BuyOrder,
    TRADE: Trade,
    SELL_RULE: SellRule,
    MARKET_COUNTERS: MarketCounters,
    RELEASE: ReadingRelease,
}
SINGLETONS: Final = frozenset({YEN_TOTALS, MARKET_COUNTERS})

_encoder = msgspec.msgpack.Encoder()
_decoders: dict[bytes, msgspec.msgpack.Decoder[Record]] = {
    prefix: msgspec.msgpack.Decoder(record_type) for prefix, record_type in TABLES.items()
}


def table_of(key: bytes) -> bytes:
    """The table prefix of a state key (raises KeyError for a key of no table)."""
    if key in SINGLETONS:
        return key
    slash = key.find(b"/")
    prefix = key[: slash + 1]
    if slash < 0 or prefix not in TABLES:
        raise KeyError(key)
    return prefix


def decode_value(key: bytes, value: bytes) -> Record:
    """Decode a stored value by its key's table; raises msgspec errors on bad bytes."""
    return _decoders[table_of(key)].decode(value)


def encode_value(record: Record) -> bytes:
    return _encoder.encode(record)


def participant_key(participant_id: str) -> bytes:
    return PARTICIPANT + participant_id.encode()


def device_key(device_id: str) -> bytes:
    return DEVICE + device_id.encode()


def factors_key(version: str) -> bytes:
    return FACTORS + version.encode()


def batch_key(batch_id: str) -> bytes:
    return BATCH + batch_id.encode()


def holding_key(batch_id: str, holder: str) -> bytes:
    return HOLDING + batch_id.encode() + b"/" + holder.encode()


def yen_key(account: str) -> bytes:
    return YEN + account.encode()


def retirement_key(retirement_id: str) -> bytes:
    return RETIREMENT + retirement_id.encode()


def issued_key(device_id: str, start_s: int) -> bytes:
    return ISSUED + device_id.encode() + b"/" + b"%012d" % start_s


def deposit_ref_key(reference: str) -> bytes:
    return DEPOSIT_REF + reference.encode()


def withdrawal_ref_key(reference: str) -> bytes:
    return WITHDRAWAL_REF + reference.encode()


def sell_order_key(order_id: str) -> bytes:
    return SELL_ORDER + order_id.encode()


def buy_order_key(order_id: str) -> bytes:
    return BUY_ORDER + order_id.encode()


def trade_key(trade_seq: int) -> bytes:
    return TRADE + b"%012d" % trade_seq


def sell_rule_key(rule_id: str) -> bytes:
    return SELL_RULE + rule_id.encode()


def release_key(device_id: str, interval_start_s: int, model_version: str) -> bytes:
    """``release/<device>/<interval start, 12 digits>/<model version>``: one release per
    reading and flagging model, found (and proven) from what the issuer knows of the reading."""
    return (
        RELEASE
        + device_id.encode()
        + b"/"
        + b"%012d" % interval_start_s
        + b"/"
        + model_version.encode()
    )


class State:
    """All ledger records in memory, plus derived indexes rebuilt from them.

    Mutate only through ``put`` / ``touch`` / ``delete`` so the changed keys are known.
    """

    def __init__(self) -> None:
        self._records: dict[bytes, Record] = {}
        self._dirty: set[bytes] = set()
        # derived indexes (not part of the state root; rebuilt by ``load``)
        self._participant_by_key: dict[bytes, str] = {}
        self._device_by_meter_key: dict[bytes, str] = {}
        self._periods: dict[str, list[tuple[int, int]]] = {}
        self._holdings_of: dict[str, set[str]] = {}
        self._rule_of_device: dict[str, str] = {}
        self.book = Book()

    # ---- generic access -------------------------------------------------------------
    def get(self, key: bytes, record_type: type[R]) -> R | None:
        record = self._records.get(key)
        if record is None:
            return None
        assert isinstance(record, record_type), f"{key!r} holds a {type(record).__name__}"
        return record

    def put(self, key: bytes, record: Record) -> None:
        assert isinstance(record, TABLES[table_of(key)]), f"wrong record type for {key!r}"
        self._records[key] = record
        self._dirty.add(key)
        self._index(key, record)

    def touch(self, key: bytes) -> None:
        """Mark a record changed in place."""
        assert key in self._records, f"touch of a missing key {key!r}"
        self._dirty.add(key)

    def __contains__(self, key: bytes) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def keys(self) -> list[bytes]:
        return sorted(self._records)

    def items(self) -> Iterator[tuple[bytes, Record]]:
        for key in sorted(self._records):
            yield key, self._records[key]

    def records_with_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, Record]]:
        for key in sorted(k for k in self._records if k.startswith(prefix)):
            yield key, self._records[key]

    # ---- changes ----------------------------------------------------------------------
    def take_changes(self) -> dict[bytes, bytes | None]:
        """Encoded values of every key changed since the last call (None = deleted)."""
        changes: dict[bytes, bytes | None] = {}
        for key in sorted(self._dirty):
            record = self._records.get(key)
            changes[key] = None if record is None else _encoder.encode(record)
        self._dirty.clear()
        return changes

    def has_changes(self) -> bool:
        return bool(self._dirty)

    def load(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Fill an empty state from stored (key, value) rows; rebuilds the indexes."""
        assert not self._records, "load into an empty state only"
        for key, value in items:
            record = decode_value(key, value)
            self._records[key] = record
            self._index(key, record)
        # The book is rebuilt in ledger order, so priority within a price is as it was.
        open_orders: list[SellOrder | BuyOrder] = [
            r
            for r in self._records.values()
            if isinstance(r, SellOrder | BuyOrder) and r.status is OrderStatus.open
        ]
        for order in sorted(open_orders, key=lambda o: o.seq):
            if isinstance(order, SellOrder):
                self.book.add_sell(order)
            else:
                self.book.add_buy(order)

    def encoded_items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(self._records):
            yield key, _encoder.encode(self._records[key])

    # ---- typed access -----------------------------------------------------------------
    def participant(self, participant_id: str) -> Participant | None:
        return self.get(participant_key(participant_id), Participant)

    def participant_by_public_key(self, public_key: bytes) -> str | None:
        return self._participant_by_key.get(public_key)

    def device(self, device_id: str) -> Device | None:
        return self.get(device_key(device_id), Device)

    def device_by_meter_key(self, meter_public_key: bytes) -> str | None:
        return self._device_by_meter_key.get(meter_public_key)

    def factors(self, version: str) -> FactorTable | None:
        return self.get(factors_key(version), FactorTable)

    def batch(self, batch_id: str) -> ValueBatch | None:
        return self.get(batch_key(batch_id), ValueBatch)

    def holding(self, batch_id: str, holder: str) -> Holding | None:
        return self.get(holding_key(batch_id, holder), Holding)

    def holdings_of(self, holder: str) -> list[str]:
        """Batch ids a holder has (or had) a holding in, sorted."""
        return sorted(self._holdings_of.get(holder, ()))

    def yen(self, account: str) -> YenAccount | None:
        return self.get(yen_key(account), YenAccount)

    def yen_totals(self) -> YenTotals:
        totals = self.get(YEN_TOTALS, YenTotals)
        return totals if totals is not None else YenTotals(0, 0)

    def retirement(self, retirement_id: str) -> Retirement | None:
        return self.get(retirement_key(retirement_id), Retirement)

    def sell_order(self, order_id: str) -> SellOrder | None:
        return self.get(sell_order_key(order_id), SellOrder)

    def buy_order(self, order_id: str) -> BuyOrder | None:
        return self.get(buy_order_key(order_id), BuyOrder)

    def order_exists(self, order_id: str) -> bool:
        return sell_order_key(order_id) in self._records or buy_order_key(order_id) in self

    def trade(self, trade_seq: int) -> Trade | None:
        return self.get(trade_key(trade_seq), Trade)

    def sell_rule(self, rule_id: str) -> SellRule | None:
        return self.get(sell_rule_key(rule_id), SellRule)

    def release(
        self, device_id: str, interval_start_s: int, model_version: str
    ) -> ReadingRelease | None:
        return self.get(release_key(device_id, interval_start_s, model_version), ReadingRelease)

    def sell_rule_of_device(self, device_id: str) -> SellRule | None:
        rule_id = self._rule_of_device.get(device_id)
        if rule_id is None:
            return None
        rule = self.sell_rule(rule_id)
        return rule if rule is not None and rule.active else None

    def forget_rule(self, device_id: str) -> None:
        self._rule_of_device.pop(device_id, None)

    def take_order_seq(self) -> int:
        """The next order's ledger position (time priority), counted once."""
        counters = self.market_counters()
        seq = counters.next_order_seq
        counters.next_order_seq += 1
        self.touch(MARKET_COUNTERS)
        return seq

    def take_trade_seq(self) -> int:
        """The next trade's number, counted once."""
        counters = self.market_counters()
        seq = counters.next_trade_seq
        counters.next_trade_seq += 1
        self.touch(MARKET_COUNTERS)
        return seq

    def market_counters(self) -> MarketCounters:
        counters = self.get(MARKET_COUNTERS, MarketCounters)
        if counters is None:
            counters = MarketCounters(0, 0)
            self.put(MARKET_COUNTERS, counters)
        return counters

    def issued_periods(self, device_id: str) -> list[tuple[int, int]]:
        """A device's issued periods [UTC s), sorted by start."""
        return self._periods.get(device_id, [])

    def period_overlaps(self, device_id: str, start_s: int, end_s: int) -> bool:
        periods = self._periods.get(device_id)
        if not periods:
            return False
        i = bisect.bisect_right(periods, (start_s, end_s))
        if i > 0 and periods[i - 1][1] > start_s:
            return True
        return i < len(periods) and periods[i][0] < end_s

    # ---- indexes ----------------------------------------------------------------------
    def _index(self, key: bytes, record: Record) -> None:
        if isinstance(record, Participant):
            self._participant_by_key[record.public_key] = record.participant_id
        elif isinstance(record, Device):
            self._device_by_meter_key[record.meter_public_key] = record.device_id
        elif isinstance(record, IssuedPeriod):
            device_id, start = key[len(ISSUED) :].rsplit(b"/", 1)
            entry = (int(start), record.end_s)
            periods = self._periods.setdefault(device_id.decode(), [])
            if entry not in periods:
                bisect.insort(periods, entry)
        elif isinstance(record, Holding):
            batch_id, holder = key[len(HOLDING) :].split(b"/", 1)
            self._holdings_of.setdefault(holder.decode(), set()).add(batch_id.decode())
        elif isinstance(record, SellRule) and record.active:
            self._rule_of_device[record.device_id] = record.rule_id
