"""What an operator looks at first: consumer lag and ClickHouse freshness.

Lag is read from Kafka (committed offsets of each consumer group against the
partitions' high watermarks), freshness and counts from ClickHouse; nothing
comes from the stages' memory, so it works with any number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import clickhouse_connect
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from booking_events.settings import ClickHouseSettings, KafkaSettings

TABLE = "booking_events"


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        """Records not yet committed by the group (all of them if none is)."""
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
    from confluent_kafka import Consumer

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
                lags.append(
                    PartitionLag(
                        group,
                        topic,
                        tp.partition,
                        offset if offset is not None and offset >= 0 else None,
                        high,
                    )
                )
        return lags
    finally:
        probe.close()


def freshness(clickhouse: ClickHouseSettings) -> Freshness:
    """Row counts and the newest event and ingest times of the event log."""
    client = clickhouse_connect.get_client(**clickhouse.client_kwargs())
    try:
        row = client.query(
            f"SELECT count(), uniqExact(booking_id), max(occurred_at), max(ingested_at)"
            f" FROM {clickhouse.database}.{TABLE}"
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
