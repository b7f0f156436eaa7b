"""booking_events.status against a real broker: lag counted in records."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from booking_events.settings import KafkaSettings, TopicSettings
from booking_events.status import consumer_lag

pytestmark = pytest.mark.integration


def commit_offset(kafka: KafkaSettings, group: str, topic: str, offset: int) -> None:
    consumer = Consumer({**kafka.librdkafka(), "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def test_lag_counts_records_not_transaction_markers(topics: TopicSettings) -> None:
    kafka, topic, group = KafkaSettings(), topics.validated, f"g-{uuid.uuid4()}"
    producer = Producer({**kafka.librdkafka(), "transactional.id": f"t-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=str(i).encode(), partition=0)
    producer.commit_transaction(30)  # records 0-2, commit marker at 3

    commit_offset(kafka, group, topic, 1)
    (behind_two,) = [lag for lag in consumer_lag(kafka, {group: topic})][:1]
    commit_offset(kafka, group, topic, 3)
    (only_marker,) = [lag for lag in consumer_lag(kafka, {group: topic})][:1]

    assert (behind_two.partition, behind_two.lag, only_marker.lag) == (0, 2, 0)
    assert (behind_two.committed, behind_two.end, behind_two.records_behind) == (
        1,
        4,
        2,
    )
    assert (only_marker.committed, only_marker.end, only_marker.records_behind) == (
        3,
        4,
        0,
    )
