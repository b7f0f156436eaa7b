"""Decoded records to table rows, and rows to insert blocks.

A row is a list in :data:`COLUMN_NAMES` order. Datetimes in rows are always
timezone-aware UTC: clickhouse-connect converts an aware value by its epoch,
while a naive one would be read in the host's zone and shift.

:func:`insert_groups` splits the rows of one partition's flush into one group
per month of ``occurred_at``, the table's partition key. ClickHouse writes an
insert that spans several partitions as several blocks, and only a one-block
insert is atomic and deduplicated as a whole by its token.

A group's token names the block by where it starts, not by what it holds:
``topic/partition/month/first offset``. Two sinks that both see the same first
unstored record of a month therefore send the same token, and ClickHouse keeps
only the first block (``sinks.connector`` explains why that rules out
duplicates, and how the rows of a dropped block are sent again).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas import load_event_schema
from sinks.defaults import python_value
from sinks.types import (
    KAFKA_COLUMNS,
    Column,
    envelope_columns,
    named_types,
    payload_columns,
    payload_records,
    table_columns,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

COLUMNS = table_columns()
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
"""The contract's columns, in the order of :func:`to_row`'s rows."""
_INDEX = {name: i for i, name in enumerate(COLUMN_NAMES)}
_REQUIRED = ("event_id", "booking_id", "seq", "event_type", "occurred_at", "source")
_KAFKA = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
INGESTED_AT = _INDEX["ingested_at"]
OCCURRED_AT = _INDEX["occurred_at"]
_MISSING = object()


def utc(value: datetime) -> datetime:
    """Return ``value`` as aware UTC; a naive value is taken as UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def kafka_time(timestamp_ms: int) -> datetime:
    """Return a Kafka timestamp (milliseconds since the epoch) as aware UTC."""
    return _EPOCH + timedelta(milliseconds=timestamp_ms)


class RowLayout:
    """Which column each position of a row holds, and how a record fills it.

    It starts with the contract's columns and grows when the sink meets a
    writer schema with fields the contract lacks (:meth:`learn`). New columns
    are appended, so every position, ``OCCURRED_AT`` and ``INGESTED_AT``
    included, keeps its meaning; the sink flushes the rows built with the
    shorter layout before it grows (``sinks.migrations``).

    A field the record's writer did not have takes the default the newest
    known schema gives it for that event type: the value Avro resolution
    would give, so an old producer's event reads as a new one's would.
    """

    def __init__(self) -> None:
        self.columns: list[Column] = []
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._envelope: list[tuple[str, int]] = []
        self._payload: list[tuple[str, int]] = []
        self._utc: list[int] = []
        self._empty: list[tuple[int, type]] = []  # arrays, maps: never NULL
        self._envelope_fills: dict[str, Any] = {}
        self._payload_fills: dict[str, dict[str, Any]] = {}
        self._add(envelope_columns(), self._envelope)
        self._add(payload_columns(), self._payload)
        self._add(list(KAFKA_COLUMNS), [])
        self._fills(load_event_schema())

    def learn(self, event_schema: dict[str, Any]) -> list[Column]:
        """Take a writer schema's fields and defaults; return the new columns."""
        payload = payload_columns(
            payload_records(event_schema), named_types(event_schema)
        )
        new = self._add(envelope_columns(event_schema), self._envelope)
        new += self._add(payload, self._payload)
        self._fills(event_schema)
        return new

    def _add(self, columns: list[Column], kind: list[tuple[str, int]]) -> list[Column]:
        new = [c for c in columns if c.name not in self._index]
        for column in new:
            position = len(self.names)
            self.columns.append(column)
            self.names.append(column.name)
            self._index[column.name] = position
            kind.append((column.name, position))
            if column.type.startswith(("Array(", "Map(")):
                self._empty.append((position, list if column.type[0] == "A" else dict))
            if "DateTime" in column.type and not column.type.startswith(
                ("Array", "Map", "Tuple")
            ):
                self._utc.append(position)
        return new

    def _fills(self, event_schema: dict[str, Any]) -> None:
        names = named_types(event_schema)
        for spec in event_schema["fields"]:
            if spec["name"] != "payload" and "default" in spec:
                value = python_value(spec["type"], spec["default"], names)
                self._envelope_fills[spec["name"]] = value
        for record_name, record in payload_records(event_schema).items():
            fills = self._payload_fills.setdefault(record_name, {})
            for spec in record["fields"]:
                if "default" in spec:
                    value = python_value(spec["type"], spec["default"], names)
                    fills[spec["name"]] = value

    def to_row(
        self,
        record: dict[str, Any],
        *,
        topic: str,
        partition: int,
        offset: int,
        timestamp: datetime,
    ) -> list[Any]:
        """Return the table row of a decoded record; ``ingested_at`` is left None.

        Args:
            record: A record decoded with its writer's schema: the envelope
                fields and ``payload`` as ``(record_name, fields)``.
            topic: Kafka topic of the record.
            partition: Its partition.
            offset: Its offset.
            timestamp: The Kafka record's timestamp, aware.

        Raises:
            KeyError: The record lacks a core envelope field.
        """
        row: list[Any] = [None] * len(self.names)
        for name, i in self._envelope:
            value = record.get(name, _MISSING)
            if value is _MISSING:
                if name in _REQUIRED:
                    raise KeyError(name)
                value = self._envelope_fills.get(name)
            row[i] = value

        payload = record["payload"]
        kind = ""
        if isinstance(payload, tuple):
            kind, payload = payload
        fills = self._payload_fills.get(str(kind).rsplit(".", 1)[-1], {})
        for name, i in self._payload:
            value = payload.get(name, _MISSING)
            row[i] = fills.get(name) if value is _MISSING else value

        index = self._index
        row[index["kafka_topic"]] = topic
        row[index["kafka_partition"]] = partition
        row[index["kafka_offset"]] = offset
        row[index["kafka_timestamp"]] = timestamp

        event_id = row[index["event_id"]]
        if not isinstance(event_id, uuid.UUID):
            row[index["event_id"]] = uuid.UUID(str(event_id))
        for i in self._utc:
            value = row[i]
            if isinstance(value, datetime):
                row[i] = utc(value)
        for i, empty in self._empty:
            if row[i] is None:
                row[i] = empty()
        return row


_CONTRACT = RowLayout()
assert tuple(_CONTRACT.names) == COLUMN_NAMES


def to_row(
    record: dict[str, Any],
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp: datetime,
) -> list[Any]:
    """Return the row of a record in the contract's layout (:data:`COLUMN_NAMES`).

    See :meth:`RowLayout.to_row`; fields the contract does not list are left out.
    """
    return _CONTRACT.to_row(
        record, topic=topic, partition=partition, offset=offset, timestamp=timestamp
    )


def month_of(row: Sequence[Any]) -> int:
    """Return the table partition (``toYYYYMM(occurred_at)``) of a row."""
    occurred: date = row[OCCURRED_AT]
    return occurred.year * 100 + occurred.month


@dataclass(slots=True)
class InsertGroup:
    """Rows of one Kafka partition and one table partition: one insert, one block.

    Attributes:
        topic: Kafka topic.
        partition: Kafka partition.
        month: ``toYYYYMM(occurred_at)`` of every row.
        offsets: Kafka offsets of the rows, ascending.
        rows: The rows, in offset order.
    """

    topic: str
    partition: int
    month: int
    offsets: list[int] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)

    @property
    def token(self) -> str:
        """The insert_deduplication_token of this group: where the block starts.

        Deliberately blind to how far the block reaches: a sink that planned
        offsets 100-149 and one that planned 100-199 send the same token, so
        ClickHouse stores only one of the two blocks. The other sink finds its
        missing rows by the check after the insert and sends them as a block
        that starts where the stored one ended.
        """
        return f"{self.topic}/{self.partition}/{self.month}/{self.offsets[0]}"


def insert_groups(
    topic: str,
    partition: int,
    offsets: Sequence[int],
    rows: Sequence[list[Any]],
    stored: Collection[int] = (),
) -> list[InsertGroup]:
    """Split one partition's pending rows into one group per month.

    Args:
        topic: Kafka topic of the rows.
        partition: Their Kafka partition.
        offsets: Offset of each row, ascending.
        rows: The rows, parallel to ``offsets``.
        stored: Offsets the table already holds; their rows are left out.
    """
    groups: dict[int, InsertGroup] = {}
    for offset, row in zip(offsets, rows, strict=True):
        if offset in stored:
            continue
        month = month_of(row)
        group = groups.get(month)
        if group is None:
            group = groups[month] = InsertGroup(topic, partition, month)
        group.offsets.append(offset)
        group.rows.append(row)
    return [groups[month] for month in sorted(groups)]
