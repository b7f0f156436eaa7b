"""What an operator looks at first: consumer lag and ClickHouse freshness.

Lag is read from Kafka (committed offsets of each consumer group against the
partitions' high watermarks), freshness and counts from ClickHouse; nothing
comes from the stages' memory, so it works with any number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import clickhouse_connect
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from booking_events.settings import ClickHouseSettings, KafkaSettings

TABLE = "booking_events"
COUNT_LAG_BELOW = 1000
"""Offset lags up to this are checked by reading the records themselves."""


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int
    records_behind: int | None = None
    """Committed records past ``committed``, when counted (small lags only)."""

    @property
    def lag(self) -> int:
        """Records the group has not committed yet.

        Offsets alone overstate it on a transactional topic: the marker that
        closes each transaction takes an offset too. Where the records were
        counted, the count is used.
        """
        if self.records_behind is not None:
            return self.records_behind
        start = self.committed if self.committed is not None else 0
        return max(self.end - start, 0)


@dataclass(frozen=True)
class Freshness:
    rows: int
    bookings: int
    newest_event: datetime | None
    newest_ingest: datetime | None

    def event_age_s(self, now: datetime) -> float | None:
        return (now - self.newest_event).total_seconds() if self.newest_event else None

    def ingest_age_s(self, now: datetime) -> float | None:
        return (
            (now - self.newest_ingest).total_seconds() if self.newest_ingest else None
        )


def consumer_lag(
    kafka: KafkaSettings, groups: dict[str, str], timeout_s: float = 10.0
) -> list[PartitionLag]:
    """Lag per partition for each ``group -> topic`` pair."""
    admin = AdminClient(kafka.librdkafka())
    probe = Consumer({**kafka.librdkafka(), "group.id": "booking-events-status"})
    try:
        lags = []
        for group, topic in groups.items():
            partitions = probe.list_topics(topic, timeout=timeout_s).topics[topic]
            tps = [TopicPartition(topic, p) for p in sorted(partitions.partitions)]
            request = [ConsumerGroupTopicPartitions(group, tps)]
            result = admin.list_consumer_group_offsets(request)[group].result(
                timeout=timeout_s
            )
            committed = {tp.partition: tp.offset for tp in result.topic_partitions}
            for tp in tps:
                _, high = probe.get_watermark_offsets(tp, timeout=timeout_s)
                offset = committed.get(tp.partition)
                offset = offset if offset is not None and offset >= 0 else None
                behind = None
                if offset is not None and 0 < high - offset <= COUNT_LAG_BELOW:
                    behind = _records_between(kafka, topic, tp.partition, offset)
                lags.append(
                    PartitionLag(group, topic, tp.partition, offset, high, behind)
                )
        return lags
    finally:
        probe.close()


def _records_between(
    kafka: KafkaSettings, topic: str, partition: int, start: int
) -> int:
    """Committed records from ``start`` to the partition's current end."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": "booking-events-status",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        count = 0
        # poll() returns at the first record or event, so a partition whose
        # "lag" is only a transaction marker answers at its end-of-partition
        # event at once (consume() would wait out its timeout for a batch).
        while True:
            msg = consumer.poll(5.0)
            if msg is None:
                return count
            error = msg.error()
            if error is None:
                count += 1
            elif error.code() == KafkaError._PARTITION_EOF:
                return count
    finally:
        consumer.close()


def freshness(clickhouse: ClickHouseSettings, table: str = TABLE) -> Freshness:
    """Row counts and the newest event and ingest times of the event log."""
    client = clickhouse_connect.get_client(**clickhouse.client_kwargs())
    try:
        row = client.query(
            f"SELECT count(), uniqExact(booking_id), max(occurred_at), max(ingested_at)"
            f" FROM {clickhouse.database}.{table}"
        ).result_rows[0]
    finally:
        client.close()
    rows, bookings, newest_event, newest_ingest = row
    return Freshness(
        rows=rows,
        bookings=bookings,
        newest_event=_utc(newest_event) if rows else None,
        newest_ingest=_utc(newest_ingest) if rows else None,
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
