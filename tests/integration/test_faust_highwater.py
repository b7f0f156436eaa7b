"""processors.faust_fixes against a real broker.

Faust 0.15 restores a table under exactly-once up to the consumer's cached last
stable offset. These tests show that cache is absent before the first fetch
and stale after later commits, and that the fix reports the broker's current
last stable offset instead.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiokafka
import pytest
from aiokafka.structs import TopicPartition
from confluent_kafka import Producer

from booking_events.settings import KafkaSettings, TopicSettings
from processors.faust_fixes import fresh_highwaters

pytestmark = pytest.mark.integration


class ConsumerThread:
    """The one method of faust's consumer thread that the fix calls."""

    def __init__(self, consumer: aiokafka.AIOKafkaConsumer) -> None:
        self.consumer = consumer

    def _ensure_consumer(self) -> aiokafka.AIOKafkaConsumer:
        return self.consumer


def commit(producer: Producer, topic: str, records: int) -> None:
    """Write ``records`` records to partition 0 in one committed transaction."""
    producer.begin_transaction()
    for i in range(records):
        producer.produce(topic, key=b"booking", value=str(i).encode(), partition=0)
    producer.commit_transaction(30)


def take_over(kafka: KafkaSettings, transactional_id: str) -> Producer:
    """What a restarted worker does: fence the previous owner of the id.

    The broker completes the previous owner's transactions (writes their
    markers) before it answers, as it does before faust's recovery starts.
    """
    successor = Producer({**kafka.librdkafka(), "transactional.id": transactional_id})
    successor.init_transactions(30)
    return successor


async def observe(kafka: KafkaSettings, topic: str, transactional_id: str) -> Any:
    """Cached and fresh highwaters of a worker restarting after a commit."""
    owner = Producer({**kafka.librdkafka(), "transactional.id": transactional_id})
    owner.init_transactions(30)
    await asyncio.to_thread(commit, owner, topic, 3)  # 0-2 data, 3 the marker

    tp = TopicPartition(topic, 0)
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        seen: dict[str, Any] = {}
        fetched = await consumer.getmany(tp, timeout_ms=10_000)
        seen["fetched"] = len(fetched.get(tp, []))
        # Faust pauses the partitions while it rebalances; the cache stays.
        consumer.pause(tp)

        # The owner commits once more after that fetch, then is replaced.
        await asyncio.to_thread(commit, owner, topic, 2)  # 4-5 data, 6 marker
        await asyncio.to_thread(take_over, kafka, transactional_id)

        seen["cached"] = consumer.last_stable_offset(tp)
        seen["fresh"] = (await fresh_highwaters(ConsumerThread(consumer), [tp]))[tp]
        return seen
    finally:
        await consumer.stop()


def test_fresh_highwaters_report_the_current_last_stable_offset(
    topics: TopicSettings,
) -> None:
    seen = asyncio.run(observe(KafkaSettings(), topics.raw, f"test-{uuid.uuid4()}"))

    # What faust 0.15 would restore up to misses the commit made after the
    # last fetch; the fix asks the broker, which knows it.
    assert seen["fetched"] == 3
    assert seen["cached"] == 4
    assert seen["fresh"] == 7
