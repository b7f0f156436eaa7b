"""The processor against real Kafka and registry: routing, DLQ headers, shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from factories import booking_created

from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
from schemas import (
    BookingCancelled,
    BookingCreated,
    BookingEvent,
    BookingModified,
    EventSerializer,
    GuestCheckedIn,
    GuestCheckedOut,
    RoomAssigned,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def created(booking_id: str, **overrides: object) -> BookingCreated:
    fields: dict[str, object] = {
        "booking_id": booking_id,
        "occurred_at": T0,
        "source": "test",
        "hotel": "City Hotel",
        "departure_date": date(2026, 7, 4),
        "average_daily_rate": Decimal("101.50"),
        "market_segment": "online_travel_agent",
        "distribution_channel": "ta_to",
        "lead_time_days": 120,
        "total_of_special_requests": 1,
    }
    return booking_created(**{**fields, **overrides})


def stay(booking_id: str) -> list[BookingEvent]:
    """A full valid history: created, modified, room, check-in, check-out."""
    at = [T0 + timedelta(hours=h) for h in range(5)]
    common = {"booking_id": booking_id, "source": "test"}
    return [
        created(booking_id),
        BookingModified(
            **common,
            seq=2,
            occurred_at=at[1],
            change_number=1,
            arrival_date=date(2026, 7, 1),
            departure_date=date(2026, 7, 5),
            adults=2,
            children=1,
            babies=0,
            meal_plan="half_board",
            reserved_room_type="A",
            average_daily_rate=Decimal("120.00"),
            currency="EUR",
        ),
        RoomAssigned(
            **common, seq=3, occurred_at=at[2], room_type="C", reserved_room_type="A"
        ),
        GuestCheckedIn(
            **common,
            seq=4,
            occurred_at=at[3],
            room_type="C",
            adults=2,
            children=1,
            babies=0,
        ),
        GuestCheckedOut(
            **common,
            seq=5,
            occurred_at=at[4],
            nights=4,
            total_amount=Decimal("480.00"),
            currency="EUR",
        ),
    ]


@pytest.fixture
def producer(stack_env: dict[str, str]) -> Iterator[Producer]:
    conf = {**KafkaSettings().librdkafka(), "partitioner": "murmur2_random"}
    producer = Producer(conf)
    yield producer
    producer.flush(10)


def consume_all(topic: str, expected: int, timeout_s: float = 60.0) -> list:  # type: ignore[type-arg]
    """Read ``topic`` from the start until ``expected`` records or the timeout."""
    consumer = Consumer(
        {
            **KafkaSettings().librdkafka(),
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # The processor writes in transactions: see only committed ones.
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            records.append(msg)
        # A little longer: anything beyond ``expected`` is a bug.
        extra_deadline = time.monotonic() + 2
        while time.monotonic() < extra_deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                records.append(msg)
    finally:
        consumer.close()
    return records


def start_processor(tmp_path: Path, app_id: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BOOKING_EVENTS_PROCESSOR_APP_ID": app_id,
        "BOOKING_EVENTS_PROCESSOR_DATA_DIR": str(tmp_path / "state"),
        "BOOKING_EVENTS_PROCESSOR_COMMIT_INTERVAL_S": "0.5",
        # Test the checkout, whatever the editable install last recorded.
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
        ),
    }
    command = [str(Path(sys.executable).parent / "booking-events"), "process"]
    log = (tmp_path / "processor.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def headers_of(msg) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    return dict(msg.headers() or [])


def test_routes_valid_and_invalid_events(
    stack_env: dict[str, str],
    topics: TopicSettings,
    producer: Producer,
    tmp_path: Path,
) -> None:
    serializer = EventSerializer(
        SchemaRegistryClient(RegistrySettings().client_config()), auto_register=True
    )

    sent: dict[str, bytes] = {}

    def send(event: BookingEvent) -> None:
        value = serializer.serialize(event, topics.raw)
        sent[str(event.event_id)] = value
        producer.produce(topics.raw, key=event.booking_id.encode(), value=value)

    good_a, good_b = stay("B-stay-a"), stay("B-stay-b")
    cancelled = [
        created("B-cancel"),
        BookingCancelled(
            booking_id="B-cancel",
            seq=2,
            occurred_at=T0 + timedelta(days=1),
            source="test",
            cancellation_fee=Decimal("0.00"),
            currency="EUR",
        ),
    ]
    backwards = created(
        "B-backwards",
        arrival_date=date(2026, 7, 4),
        departure_date=date(2026, 7, 1),
    )
    gap = GuestCheckedIn(
        booking_id="B-cancel",
        seq=4,
        occurred_at=T0 + timedelta(days=2),
        source="test",
        room_type="A",
        adults=2,
        children=0,
        babies=0,
    )
    for a, b in zip(good_a, good_b, strict=True):
        send(a)
        send(b)
    for event in cancelled:
        send(event)
    send(backwards)
    send(gap)
    producer.produce(topics.raw, key=b"B-garbage", value=os.urandom(64))
    producer.flush(10)

    valid = [*good_a, *good_b, *cancelled]
    bad = {
        str(backwards.event_id): "departure_not_after_arrival",
        str(gap.event_id): "seq_gap",
        None: "malformed",
    }

    app_id = f"test-processor-{uuid.uuid4().hex[:8]}"
    process = start_processor(tmp_path, app_id)
    try:
        validated = consume_all(topics.validated, len(valid))
        dead = consume_all(topics.dead_letter, len(bad))
    finally:
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        stopped_after_s = time.monotonic() - started
    log = (tmp_path / "processor.log").read_text(errors="replace")

    # Every valid event once, unchanged, in per-booking order.
    assert len(validated) == len(valid), log
    by_id = {str(e.event_id): e for e in valid}
    seen: dict[str, list[int]] = {}
    for msg in validated:
        event_id = headers_of(msg)["event_id"].decode()
        event = by_id[event_id]
        assert msg.key() == event.booking_id.encode()
        assert msg.value() == sent[event_id]
        assert headers_of(msg)["event_type"] == event.event_type.value.encode()
        seen.setdefault(event.booking_id, []).append(event.seq)
    assert seen == {
        "B-stay-a": [1, 2, 3, 4, 5],
        "B-stay-b": [1, 2, 3, 4, 5],
        "B-cancel": [1, 2],
    }

    # Every bad one in the dead-letter topic, with its reason and origin.
    assert len(dead) == len(bad), log
    reasons = {}
    for msg in dead:
        h = headers_of(msg)
        event_id = h["dlq.event_id"].decode() if "dlq.event_id" in h else None
        reasons[event_id] = h["dlq.reason"].decode()
        assert h["dlq.source.topic"] == topics.raw.encode()
        assert int(h["dlq.source.partition"]) == msg.partition()
        assert int(h["dlq.source.offset"]) >= 0
        assert h["dlq.processor"].startswith(b"test-processor-")
        assert datetime.fromisoformat(h["dlq.failed_at"].decode()).tzinfo is not None
        assert h["dlq.detail"]
    assert reasons == bad

    garbage = next(m for m in dead if headers_of(m)["dlq.reason"] == b"malformed")
    assert garbage.key() == b"B-garbage"
    assert len(garbage.value()) == 64

    assert code == 0, log
    assert stopped_after_s < 15, log
    assert committed_lag(topics, app_id) == 0, log


def committed_lag(topics: TopicSettings, group: str) -> int:
    """Records of the raw topic past the group's committed offsets."""
    consumer = Consumer({**KafkaSettings().librdkafka(), "group.id": group})
    try:
        partitions = [TopicPartition(topics.raw, p) for p in range(topics.partitions)]
        lag = 0
        for tp in consumer.committed(partitions, timeout=10):
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()
