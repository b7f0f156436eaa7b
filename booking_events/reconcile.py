"""Reconciles what Kafka holds with what ClickHouse stored.

Every figure is read from the systems, never from a stage's counters:

* produced: records in the raw topic, read one by one (offset arithmetic is
  wrong once transaction markers leave gaps);
* dead-lettered: records in the dead-letter topic;
* stored: rows of the ``booking_events`` table.

An event is identified by its ``event_id``; a raw record too broken to decode
is identified by its coordinates, which the dead-letter record repeats in its
``dlq.source.*`` headers. An event is lost when it is neither stored nor
dead-lettered, duplicated for every extra copy across both.

This reads every id into memory, fine for millions of events; the audit of
issue #3 moves the comparison into ClickHouse for larger histories.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import clickhouse_connect
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from booking_events.exceptions import BookingEventsError
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from schemas import EventDecodeError, EventDeserializer

log = logging.getLogger(__name__)

TABLE = "booking_events"


class ReconcileError(BookingEventsError):
    """A topic or the table could not be read to the end."""

    retriable = True


@dataclass(frozen=True)
class Reconciliation:
    """The outcome, with the offending ids."""

    produced: int
    stored: int
    dead_lettered: int
    lost_ids: list[str] = field(default_factory=list)
    duplicated_ids: list[str] = field(default_factory=list)
    duplicated: int = 0

    @property
    def lost(self) -> int:
        return len(self.lost_ids)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0

    def line(self) -> str:
        """The one-line summary the main job prints."""
        return (
            f"produced={self.produced} stored={self.stored}"
            f" dead_lettered={self.dead_lettered} lost={self.lost}"
            f" duplicated={self.duplicated}"
        )


def read_topic(
    kafka: KafkaSettings, topic: str, timeout_s: float = 60.0
) -> Iterator[Message]:
    """Yield every record of ``topic`` from the beginning to its current end."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"booking-events-reconcile-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if metadata.error is not None:
            raise ReconcileError(f"topic {topic!r}: {metadata.error}")
        partitions = [TopicPartition(topic, p, 0) for p in sorted(metadata.partitions)]
        pending = {tp.partition for tp in partitions}
        consumer.assign(partitions)
        idle_deadline = time.monotonic() + timeout_s
        while pending:
            # consume() waits for a full batch or its timeout: keep the timeout
            # short and bound the total wait for progress separately.
            messages = consumer.consume(num_messages=5000, timeout=0.5)
            if messages:
                idle_deadline = time.monotonic() + timeout_s
            elif time.monotonic() > idle_deadline:
                raise ReconcileError(
                    f"no data from {topic!r} within {timeout_s} s;"
                    f" partitions {sorted(pending)} not read to the end"
                )
            for msg in messages:
                err = msg.error()
                if err is None:
                    yield msg
                elif err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                else:
                    raise ReconcileError(f"reading {topic!r}: {err}")
    finally:
        consumer.close()


def _header(msg: Message, name: str) -> str | None:
    for key, value in msg.headers() or []:
        if key == name and value is not None:
            return value.decode()
    return None


def reconcile(
    kafka: KafkaSettings,
    registry: RegistrySettings,
    clickhouse: ClickHouseSettings,
    topics: TopicSettings,
) -> Reconciliation:
    """Read the raw and dead-letter topics and the table; compare them."""
    deserializer = EventDeserializer(SchemaRegistryClient(registry.client_config()))

    # Identity of each raw record: its event id, or its coordinates if unreadable.
    produced: dict[str, str] = {}
    produced_count = 0
    for msg in read_topic(kafka, topics.raw):
        produced_count += 1
        coords = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
        try:
            identity = str(deserializer.record(msg.value(), msg.topic())["event_id"])
        except EventDecodeError:
            identity = coords
        produced[coords] = identity

    dead: Counter[str] = Counter()
    for msg in read_topic(kafka, topics.dead_letter):
        source = "/".join(
            _header(msg, f"dlq.source.{part}") or "?"
            for part in ("topic", "partition", "offset")
        )
        dead[produced.get(source) or _header(msg, "dlq.event_id") or source] += 1

    client = clickhouse_connect.get_client(**clickhouse.client_kwargs())
    try:
        rows = client.query(
            f"SELECT toString(event_id), count() FROM {clickhouse.database}.{TABLE}"
            " GROUP BY event_id"
        ).result_rows
    finally:
        client.close()
    stored: Counter[str] = Counter({eid: n for eid, n in rows})

    outcomes = stored + dead
    identities = set(produced.values())
    lost = sorted(identities - outcomes.keys())
    duplicated_ids = sorted(i for i, n in outcomes.items() if n > 1)
    duplicated = sum(n - 1 for n in outcomes.values() if n > 1)
    result = Reconciliation(
        produced=produced_count,
        stored=sum(stored.values()),
        dead_lettered=sum(dead.values()),
        lost_ids=lost,
        duplicated_ids=duplicated_ids,
        duplicated=duplicated,
    )
    log.info("reconciled %s", result.line())
    return result
