"""The producer without Kafka: buffering, back-pressure and failures by event id.

Kafka is an address nobody listens on and the registry is confluent-kafka's
in-process ``mock://`` one, so nothing is ever delivered: what these tests see
is what booking code sees when Kafka is unreachable.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
from producers import (
    BookingEventProducer,
    BufferFullError,
    DeliveryError,
    FailedDelivery,
    ProducerClosedError,
    ProducerSettings,
)
from producers.hotel_rates import Booking, lifecycle
from schemas import BookingEvent


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def events(count: int) -> list[BookingEvent]:
    """``count`` valid events of made-up bookings."""
    from datetime import date
    from decimal import Decimal

    out: list[BookingEvent] = []
    row = 1
    while len(out) < count:
        booking = Booking(
            row=row,
            arrival_date=date(2026, 7, 1),
            lead_time_days=30,
            weekend_nights=1,
            week_nights=2,
            adults=2,
            children=0,
            babies=0,
            meal_plan="bed_and_breakfast",
            country="PRT",
            market_segment="direct",
            distribution_channel="direct",
            customer_type="transient",
            is_repeated_guest=False,
            previous_cancellations=0,
            previous_bookings_not_canceled=0,
            reserved_room_type="A",
            assigned_room_type="A",
            booking_changes=0,
            agent=None,
            company=None,
            days_in_waiting_list=0,
            required_car_parking_spaces=0,
            total_of_special_requests=0,
            average_daily_rate=Decimal("80.00"),
        )
        out.extend(lifecycle(booking))
        row += 1
    return out[:count]


def make_producer(**settings: object) -> BookingEventProducer:
    return BookingEventProducer(
        KafkaSettings(bootstrap_servers=f"127.0.0.1:{unused_port()}"),
        RegistrySettings(url="mock://producer-tests"),
        TopicSettings(raw="unit.raw"),
        ProducerSettings(**settings),  # type: ignore[arg-type]
        handle_sigterm=False,
    )


@pytest.fixture
def unreachable() -> Iterator[BookingEventProducer]:
    producer = make_producer(delivery_timeout_ms=60_000)
    producer.start()
    yield producer
    producer._producer = None  # nothing to flush towards a broker that is not there


def test_emit_only_buffers_and_flush_names_every_unconfirmed_event(
    unreachable: BookingEventProducer,
) -> None:
    sent = events(5)
    started = time.monotonic()
    for event in sent:
        unreachable.emit(event)
    assert time.monotonic() - started < 5, "emit() must not wait for Kafka"

    with pytest.raises(DeliveryError) as caught:
        unreachable.flush(timeout_s=0.5)

    failures = caught.value.failures
    assert {f.event_id for f in failures} == {str(e.event_id) for e in sent}
    assert {f.booking_id for f in failures} == {e.booking_id for e in sent}
    assert all(f.retriable and f.topic == "unit.raw" for f in failures)
    assert str(sent[0].event_id) in str(caught.value)
    # Reported once: the next flush has nothing left to report.
    unreachable.flush(timeout_s=0.1)


def test_a_full_buffer_pushes_back_then_refuses_the_event_by_id() -> None:
    producer = make_producer(buffer_max_messages=2, buffer_full_timeout_ms=300)
    producer.start()
    try:
        first, second, third = events(3)
        producer.emit(first)
        producer.emit(second)
        started = time.monotonic()
        with pytest.raises(BufferFullError) as caught:
            producer.emit(third)
        waited = time.monotonic() - started
    finally:
        producer._producer = None
    assert caught.value.event_id == str(third.event_id)
    assert caught.value.retriable
    assert 0.25 <= waited < 5, "emit() blocks for buffer_full_timeout_ms, then gives up"


def test_failures_go_to_the_handler_when_one_is_given() -> None:
    seen: list[FailedDelivery] = []
    producer = BookingEventProducer(
        KafkaSettings(bootstrap_servers=f"127.0.0.1:{unused_port()}"),
        RegistrySettings(url="mock://producer-tests"),
        TopicSettings(raw="unit.raw"),
        ProducerSettings(),
        on_delivery_error=seen.append,
        handle_sigterm=False,
    )
    producer.start()
    try:
        event = events(1)[0]
        producer.emit(event)
        producer.flush(timeout_s=0.3)
    finally:
        producer._producer = None
    assert [f.event_id for f in seen] == [str(event.event_id)]


def test_emit_before_start_is_refused() -> None:
    with pytest.raises(ProducerClosedError):
        make_producer().emit(events(1)[0])
