"""The partition leader of the raw topic is killed while events are produced.

A three-node KRaft cluster on loopback carries every topic with replication
factor 3 and ``min.insync.replicas=2`` (faust's changelog topic too). While
real bookings are replayed, the leader of a raw-topic partition gets SIGKILL;
the producer, the processor and the sink must follow the new leader. The node
comes back, the pipeline drains, and the audit must be clean. The schema
registry and ClickHouse are the session's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from booking_events.settings import KafkaSettings, TopicSettings
from booking_events.stack import KafkaCluster
from booking_events.topics import ensure_topics
from schemas import BookingEvent

pytestmark = pytest.mark.faults

BOOKINGS = 300
RATE_EPS = 150.0
WARM_UP = 50


@pytest.fixture
def cluster(
    fault_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KafkaCluster]:
    """Three Kafka nodes; this test's settings and workers point at them."""
    kafka = KafkaCluster(tmp_path / "kafka", nodes=3)
    kafka.start()
    monkeypatch.setenv("BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap)
    monkeypatch.setenv("BOOKING_EVENTS_TOPIC_REPLICATION_FACTOR", "3")
    try:
        yield kafka
    finally:
        kafka.stop()


def leader_of(topic: str, partition: int) -> int:
    admin = AdminClient(KafkaSettings().librdkafka())
    metadata = admin.list_topics(topic, timeout=10).topics[topic]
    return int(metadata.partitions[partition].leader)


def in_sync_replicas(topic: str) -> dict[int, list[int]]:
    admin = AdminClient(KafkaSettings().librdkafka())
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: sorted(m.isrs) for p, m in partitions.items()}


def test_killing_the_raw_partition_leader_loses_and_duplicates_nothing(
    cluster: KafkaCluster,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    replay: Callable[..., Any],
    wait_until: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    assert_audit_clean: Callable[..., Any],
) -> None:
    topics = TopicSettings()
    ensure_topics(KafkaSettings(), topics)
    assert all(len(isr) == 3 for isr in in_sync_replicas(topics.raw).values())
    processor = start_worker("processor", ["process"])
    sink = start_worker("sink", ["sink"])
    events = bookings(BOOKINGS)

    # Warm up: the first events go through before anything breaks, so the
    # kill lands on a running pipeline rather than on workers still starting.
    warm_up, rest = events[:WARM_UP], events[WARM_UP:]
    replay(warm_up).join()
    wait_drained(stored=len(warm_up), workers=[processor, sink])

    # Kill the leader a third of the way through the rest of the replay.
    run = replay(rest, rate_eps=RATE_EPS)
    run.wait_emitted(len(rest) // 3)
    leader = leader_of(topics.raw, 0)
    node = next(n for n in cluster.nodes if n.spec.node_id == leader)
    node.kill()
    killed_at = time.monotonic()
    assert not node.running()

    # The survivors elect a new leader and keep taking writes (2 in sync).
    wait_until(lambda: leader_of(topics.raw, 0) not in (leader, -1), 60, "a new leader")
    run.join(120)
    assert processor.alive() and sink.alive()

    # The node comes back and catches up.
    node.start()
    wait_until(
        lambda: all(len(isr) == 3 for isr in in_sync_replicas(topics.raw).values()),
        90,
        "every raw partition fully in sync again",
    )
    print(f"leader {leader} down for {time.monotonic() - killed_at:.1f} s")

    wait_drained(stored=len(events), timeout_s=120, workers=[processor, sink])
    print(f"drained {time.monotonic() - killed_at:.1f} s after the kill")
    stop_workers(processor, sink)
    report = assert_audit_clean()
    assert report.produced == len(events)
    assert report.stored == len(events)
