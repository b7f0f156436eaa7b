"""The processor's exactly-once and dead-lettering under real faults.

Each test runs ``booking-events process`` and ``booking-events sink`` as real
processes, feeds the raw topic real bookings plus the fault under test (a
SIGKILL before the commit, poison bytes, an oversized record, an unknown
schema id, a repeated or late delivery), and ends with the validated topic read
with read_committed holding every accepted event once, the expected
dead-letter reasons, and a clean audit.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient

from booking_events.reconcile import read_topic
from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
from booking_events.topics import ensure_topics
from producers.hotel_rates import event_id_for
from schemas import BookingCreated, BookingEvent, EventSerializer, RoomAssigned

pytestmark = [pytest.mark.faults]

BOOKINGS = 150
"""Real bookings per test: about five hundred events."""

FAST_COMMIT = {"BOOKING_EVENTS_PROCESSOR_COMMIT_INTERVAL_S": "0.5"}
QUICK_FAILOVER = {"BOOKING_EVENTS_PROCESSOR_SESSION_TIMEOUT_S": "8"}
"""A killed worker's partitions return to its successor after 8 s, not 60."""

AFTER_RESTART_S = 180
"""Bound on draining after a restart: session expiry, fencing, recovery (which
finishes 10 s after the changelog's last aborted transaction) and routing take
about 15 s here; the rest is headroom for a loaded CI machine. A failure prints
the workers' logs."""

Coordinates = tuple[str, int, int]


def headers(msg: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in msg.headers() or []}


def validated_ids(topics: TopicSettings) -> Counter[str]:
    """Event ids in the validated topic as read_committed consumers see it."""
    return Counter(
        headers(m)["event_id"] for m in read_topic(KafkaSettings(), topics.validated)
    )


def written(topic: str) -> int:
    """Records in ``topic`` up to its high watermark, uncommitted ones included."""
    consumer = Consumer(
        {
            **KafkaSettings().librdkafka(),
            "group.id": f"gauge-{uuid.uuid4().hex[:8]}",
            # librdkafka's default, read_committed, reports the last stable offset.
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10, cached=False
            )
            total += high - low
        return total
    finally:
        consumer.close()


def dead_letters(topics: TopicSettings) -> list[Any]:
    return list(read_topic(KafkaSettings(), topics.dead_letter))


def produce_raw(
    topic: str, records: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, Coordinates]]:
    """Produce (key, value) records as they are; return each value's coordinates."""
    producer = Producer(
        {**KafkaSettings().librdkafka(), "partitioner": "murmur2_random"}
    )
    placed: list[tuple[bytes, Coordinates]] = []

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None, err
        placed.append((msg.value(), (msg.topic(), msg.partition(), msg.offset())))

    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return placed


def serialize(events: list[BookingEvent], topic: str) -> list[tuple[bytes, bytes]]:
    serializer = EventSerializer(
        SchemaRegistryClient(RegistrySettings().client_config()), auto_register=True
    )
    return [(e.booking_id.encode(), serializer.serialize(e, topic)) for e in events]


def source_of(msg: Any) -> Coordinates:
    h = headers(msg)
    return (
        h["dlq.source.topic"],
        int(h["dlq.source.partition"]),
        int(h["dlq.source.offset"]),
    )


def run_pipeline(
    start_worker: Callable[..., Any], **processor_env: str
) -> tuple[Any, Any]:
    processor = start_worker("processor", ["process"], **processor_env)
    sink = start_worker("sink", ["sink"])
    return processor, sink


def test_processor_killed_before_its_commit_emits_each_event_once(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    replay: Callable[..., Any],
    wait_until: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    assert_audit_clean: Callable[..., Any],
) -> None:
    events = bookings(BOOKINGS)
    replay(events).join()

    # A commit interval far beyond the test: everything the first incarnation
    # writes stays in open transactions.
    processor, sink = run_pipeline(
        start_worker,
        **QUICK_FAILOVER,
        BOOKING_EVENTS_PROCESSOR_COMMIT_INTERVAL_S="600",
    )
    wait_until(
        lambda: written(fault_topics.validated) >= len(events),
        90,
        "every event written, uncommitted, to the validated topic",
    )
    assert sum(validated_ids(fault_topics).values()) == 0, "committed too early"
    assert processor.kill() == -9

    processor.env.update(FAST_COMMIT)
    processor.restart()
    wait_drained(stored=len(events), timeout_s=AFTER_RESTART_S)
    stop_workers(processor, sink)

    ids = validated_ids(fault_topics)
    assert len(ids) == len(events)
    assert set(ids.values()) == {1}, "an event reached read_committed twice"
    # The aborted first attempt is in the log, but invisible to read_committed.
    assert written(fault_topics.validated) > len(events)
    assert assert_audit_clean().stored == len(events)


def test_processor_killed_mid_stream_loses_and_repeats_nothing(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    replay: Callable[..., Any],
    wait_until: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    assert_audit_clean: Callable[..., Any],
) -> None:
    events = bookings(BOOKINGS * 2)
    processor, sink = run_pipeline(
        start_worker,
        **QUICK_FAILOVER,
        BOOKING_EVENTS_PROCESSOR_COMMIT_INTERVAL_S="0.3",
    )
    processor.wait_for_log("Starting .* transactional producer", timeout_s=60)
    run = replay(events, rate_eps=250)

    # Killed while transactions commit every 0.3 s and events keep arriving:
    # some effects are committed, some open, some offsets lag.
    wait_until(
        lambda: sum(validated_ids(fault_topics).values()) >= len(events) // 3,
        60,
        "a third of the events committed",
    )
    assert processor.kill() == -9
    processor.restart()
    run.join()
    wait_drained(stored=len(events), timeout_s=AFTER_RESTART_S)
    stop_workers(processor, sink)

    ids = validated_ids(fault_topics)
    assert len(ids) == len(events)
    assert set(ids.values()) == {1}, "an event reached read_committed twice"
    assert assert_audit_clean().stored == len(events)


def test_poison_bytes_are_dead_lettered_with_their_bytes_and_origin(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    replay: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    assert_audit_clean: Callable[..., Any],
) -> None:
    events = bookings(BOOKINGS // 3)
    run = replay(events)
    poison = [
        (b"POISON-1", os.urandom(200)),
        # The right frame, a body that is not the event: too short to read.
        (b"POISON-2", serialize(events[:1], fault_topics.raw)[0][1][:12]),
        (b"POISON-3", b""),
    ]
    placed = dict(produce_raw(fault_topics.raw, poison))
    run.join()

    processor, sink = run_pipeline(start_worker, **FAST_COMMIT)
    wait_drained(stored=len(events), dead_lettered=len(poison), timeout_s=90)
    stop_workers(processor, sink)

    dead = dead_letters(fault_topics)
    assert len(dead) == len(poison)
    for msg in dead:
        assert headers(msg)["dlq.reason"] == "malformed", headers(msg)
        assert headers(msg)["dlq.detail"]
        assert source_of(msg) == placed[msg.value() or b""]
    assert sorted(m.key() for m in dead) == sorted(k for k, _ in poison)
    assert assert_audit_clean().dead_lettered == len(poison)


def test_oversized_records_are_dead_lettered_never_lost(
    fault_env: dict[str, str],
    stack_env: dict[str, str],
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    replay: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    assert_audit_clean: Callable[..., Any],
) -> None:
    # Outputs have small limits; the raw topic keeps the broker's 1 MB.
    topics = TopicSettings()
    limits = {topics.validated: 20_000, topics.dead_letter: 50_000}
    admin = AdminClient(KafkaSettings().librdkafka())
    created = admin.create_topics(
        [
            NewTopic(name, topics.partitions, 1, config={"max.message.bytes": str(n)})
            for name, n in limits.items()
        ]
    )
    for future in created.values():
        future.result(30)
    ensure_topics(KafkaSettings(), topics)

    events = bookings(BOOKINGS // 3)
    assert isinstance(events[0], BookingCreated)
    big_event = dataclasses.replace(
        events[0],
        booking_id="BIG-1",
        event_id=uuid.uuid4(),
        source="x" * 30_000,
    )
    run = replay(events)
    big = serialize([big_event], topics.raw)
    huge = [(b"HUGE-1", b"\x07" + os.urandom(80_000))]
    placed = dict(produce_raw(topics.raw, big + huge))
    run.join()

    processor, sink = run_pipeline(start_worker, **FAST_COMMIT)
    wait_drained(stored=len(events), dead_lettered=2, timeout_s=90)
    stop_workers(processor, sink)

    dead = {m.key(): m for m in dead_letters(topics)}
    assert set(dead) == {b"BIG-1", b"HUGE-1"}
    too_big = headers(dead[b"BIG-1"])
    assert too_big["dlq.reason"] == "oversized"
    assert too_big["dlq.event_id"] == str(big_event.event_id)
    assert "dlq.value_truncated" not in too_big
    assert dead[b"BIG-1"].value() == big[0][1]
    assert source_of(dead[b"BIG-1"]) == placed[big[0][1]]

    # Too big even for the dead-letter topic: cut, marked, and still located.
    cut = headers(dead[b"HUGE-1"])
    assert cut["dlq.reason"] == "malformed"
    assert cut["dlq.value_truncated"] == "true"
    assert int(cut["dlq.value_size"]) == len(huge[0][1])
    assert huge[0][1].startswith(dead[b"HUGE-1"].value())
    assert source_of(dead[b"HUGE-1"]) == placed[huge[0][1]]
    assert assert_audit_clean().dead_lettered == 2


def test_an_unknown_schema_id_is_dead_lettered(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    replay: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    assert_audit_clean: Callable[..., Any],
) -> None:
    events = bookings(BOOKINGS // 3)
    run = replay(events)
    body = serialize(events[:1], fault_topics.raw)[0][1][5:]
    unknown = [(b"UNKNOWN-1", b"\x00" + (987_654).to_bytes(4, "big") + body)]
    placed = dict(produce_raw(fault_topics.raw, unknown))
    run.join()

    processor, sink = run_pipeline(start_worker, **FAST_COMMIT)
    wait_drained(stored=len(events), dead_lettered=1, timeout_s=90)
    stop_workers(processor, sink)

    [dead] = dead_letters(fault_topics)
    assert headers(dead)["dlq.reason"] == "unknown_schema"
    assert "987654" in headers(dead)["dlq.detail"]
    assert dead.value() == unknown[0][1]
    assert source_of(dead) == placed[unknown[0][1]]
    assert assert_audit_clean().dead_lettered == 1


def test_repeats_are_dropped_and_late_events_dead_lettered(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    assert_audit_clean: Callable[..., Any],
) -> None:
    events = bookings(BOOKINGS // 3)
    # One booking's events, for the out-of-order cases.
    first = events[0].booking_id
    history = [e for e in events if e.booking_id == first]
    assert len(history) >= 3
    rest = [e for e in events if e.booking_id != first]

    records = serialize(rest, fault_topics.raw)
    repeated = records[len(records) // 2]
    h = serialize(history, fault_topics.raw)
    conflicting = RoomAssigned(
        booking_id=first,
        seq=2,
        occurred_at=history[1].occurred_at,
        source="test",
        room_type="Z",
        reserved_room_type="A",
        event_id=uuid.uuid4(),
    )
    assert conflicting.event_id != event_id_for(first, 2)
    ordered = [
        *records,
        repeated,  # the same bytes again: a repeated delivery
        h[0],
        h[2],  # seq 3 before seq 2: a gap
        h[1],
        h[1],  # seq 2 again, same bytes
        *serialize([conflicting], fault_topics.raw),  # another event at seq 2
        *h[3:],  # seq 4.. after seq 3 was dead-lettered: gaps too
    ]
    produce_raw(fault_topics.raw, ordered)

    processor, sink = run_pipeline(start_worker, **FAST_COMMIT)
    later = len(history) - 3
    stored = len(rest) + 2
    wait_drained(stored=stored, dead_lettered=2 + later, timeout_s=90)
    processor.wait_for_log("dropped repeat of event", timeout_s=30)
    stop_workers(processor, sink)

    reasons = Counter(headers(m)["dlq.reason"] for m in dead_letters(fault_topics))
    assert reasons == {"seq_gap": 1 + later, "seq_not_increasing": 1}
    ids = validated_ids(fault_topics)
    assert len(ids) == stored and set(ids.values()) == {1}
    assert processor.log_text().count("dropped repeat of event") == 2
    report = assert_audit_clean()
    assert report.stored == stored
