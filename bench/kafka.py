"""Topics and producing for the benchmark: one set of topics per arm and run.

Every arm's raw topic is filled by the same producer, configured as
``producers.BookingEventProducer`` configures its own (idempotent,
``acks=all``, the production linger and compression, the Java client's
partitioner), with the already-encoded bytes of ``bench.events``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer

from bench.events import Record
from booking_events.settings import KafkaSettings, TopicSettings
from booking_events.topics import ensure_topics
from producers.config import ProducerSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmTopics:
    """The topics of one arm in one run."""

    raw: str
    validated: str
    dead_letter: str

    @classmethod
    def named(cls, run_id: str, arm: str) -> ArmTopics:
        prefix = f"bench.{run_id}.{arm}"
        return cls(f"{prefix}.raw", f"{prefix}.validated", f"{prefix}.dead-letter")

    def settings(self) -> TopicSettings:
        return TopicSettings(
            raw=self.raw, validated=self.validated, dead_letter=self.dead_letter
        )


def create_topics(kafka: KafkaSettings, topics: ArmTopics) -> None:
    """Create the three topics with the project's layout and configs."""
    ensure_topics(kafka, topics.settings())


def producer_config(kafka: KafkaSettings) -> dict[str, object]:
    """The production producer's librdkafka settings."""
    settings = ProducerSettings()
    return {
        **kafka.librdkafka(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.linger_ms,
        "compression.type": settings.compression,
        "queue.buffering.max.messages": settings.buffer_max_messages,
        "delivery.timeout.ms": settings.delivery_timeout_ms,
        "partitioner": "murmur2_random",
    }


class DeliveryFailed(RuntimeError):
    """Kafka refused records while the benchmark produced them."""


def produce(
    kafka: KafkaSettings,
    topic: str,
    records: Sequence[Record],
    *,
    rate_eps: float | None = None,
    duration_s: float | None = None,
) -> tuple[int, float]:
    """Produce records in order; return (produced, seconds).

    With ``rate_eps`` the records go out on a fixed schedule (at most that many
    per second) and stop after ``duration_s``, cycling is not done: the caller
    passes enough records. Each record's Kafka timestamp is its creation time,
    which the latency profile compares with its ingest time.
    """
    producer = Producer(producer_config(kafka))
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    started = time.monotonic()
    sent = 0
    for key, value in records:
        if rate_eps:
            due = started + sent / rate_eps
            now = time.monotonic()
            if duration_s is not None and now - started >= duration_s:
                break
            if due > now:
                time.sleep(due - now)
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        if sent % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    elapsed = time.monotonic() - started
    if remaining or failures:
        raise DeliveryFailed(
            f"{remaining} records undelivered and {len(failures)} refused on"
            f" {topic}; first error: {failures[:1]}"
        )
    log.info(
        "produced",
        extra={
            "topic": topic,
            "records": sent,
            "seconds": round(elapsed, 1),
            "rate_eps": round(sent / elapsed) if elapsed else 0,
        },
    )
    return sent, elapsed


def check_kafka(kafka: KafkaSettings) -> None:
    """Fail early with a clear message when the broker does not answer."""
    producer = Producer(kafka.librdkafka())
    try:
        producer.list_topics(timeout=10)
    except KafkaException as exc:
        raise DeliveryFailed(f"broker {kafka.bootstrap_servers} unreachable") from exc
