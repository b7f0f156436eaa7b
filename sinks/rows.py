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

from sinks.types import table_columns

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

COLUMNS = table_columns()
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
_INDEX = {name: i for i, name in enumerate(COLUMN_NAMES)}
_ENVELOPE = ("event_id", "booking_id", "seq", "event_type", "occurred_at", "source")
_KAFKA = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")
_PAYLOAD = tuple(
    name
    for name in COLUMN_NAMES
    if name not in (*_ENVELOPE, *_KAFKA, "schema_version", "ingested_at")
)
_UTC_COLUMNS = frozenset(c.name for c in COLUMNS if "DateTime" in c.type)
INGESTED_AT = _INDEX["ingested_at"]
OCCURRED_AT = _INDEX["occurred_at"]


def utc(value: datetime) -> datetime:
    """Return ``value`` as aware UTC; a naive value is taken as UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def kafka_time(timestamp_ms: int) -> datetime:
    """Return a Kafka timestamp (milliseconds since the epoch) as aware UTC."""
    return _EPOCH + timedelta(milliseconds=timestamp_ms)


def to_row(
    record: dict[str, Any],
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp: datetime,
) -> list[Any]:
    """Return the table row of a decoded record; ``ingested_at`` is left None.

    Args:
        record: What ``EventDeserializer.record`` returned: the envelope fields
            and ``payload`` as ``(record_name, fields)``.
        topic: Kafka topic of the record.
        partition: Its partition.
        offset: Its offset.
        timestamp: The Kafka record's timestamp, aware.
    """
    row: list[Any] = [None] * len(COLUMN_NAMES)
    for name in _ENVELOPE:
        row[_INDEX[name]] = record[name]
    row[_INDEX["schema_version"]] = record.get("schema_version", 1)

    payload = record["payload"]
    fields = payload[1] if isinstance(payload, tuple) else payload
    for name in _PAYLOAD:
        row[_INDEX[name]] = fields.get(name)

    row[_INDEX["kafka_topic"]] = topic
    row[_INDEX["kafka_partition"]] = partition
    row[_INDEX["kafka_offset"]] = offset
    row[_INDEX["kafka_timestamp"]] = timestamp

    event_id = row[_INDEX["event_id"]]
    if not isinstance(event_id, uuid.UUID):
        row[_INDEX["event_id"]] = uuid.UUID(str(event_id))
    for name in _UTC_COLUMNS:
        value = row[_INDEX[name]]
        if isinstance(value, datetime):
            row[_INDEX[name]] = utc(value)
    return row


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
