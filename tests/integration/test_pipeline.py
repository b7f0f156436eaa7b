"""The whole pipeline on a slice of the real data, against the real services."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import clickhouse_connect
import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from factories import booking_created

from booking_events.cli.main import main
from booking_events.examples import EXAMPLES
from booking_events.pipeline import Worker, start_worker, wait_drained
from booking_events.reconcile import read_topic, reconcile
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from producers import BookingEventProducer
from producers.hotel_rates import events_in_time_order, load_bookings
from producers.replay import replay
from schemas import BookingCreated

pytestmark = pytest.mark.integration

BOOKINGS = 300


@pytest.fixture
def workers(
    topics: TopicSettings, clickhouse_database: str, tmp_path: Path
) -> Iterator[list[Worker]]:
    started = [
        start_worker("processor", ["process"], tmp_path),
        start_worker("sink", ["sink"], tmp_path),
    ]
    yield started
    for worker in started:
        assert worker.stop(timeout_s=60) == 0, worker.log_path.read_text()[-3000:]


def departure_before_arrival() -> BookingCreated:
    return booking_created(
        booking_id="BAD-DATES-1",
        occurred_at=datetime(2016, 7, 1, 9, 0, tzinfo=UTC),
        arrival_date=date(2016, 7, 10),
        departure_date=date(2016, 7, 8),
        average_daily_rate=Decimal("90.00"),
        lead_time_days=9,
    )


def test_real_bookings_arrive_once_in_order_and_bad_ones_are_dead_lettered(
    topics: TopicSettings, workers: list[Worker]
) -> None:
    kafka, clickhouse = KafkaSettings(), ClickHouseSettings()
    events = events_in_time_order(load_bookings()[:BOOKINGS])
    rule_breaker = departure_before_arrival()

    with BookingEventProducer(handle_sigterm=False) as producer:
        replay(producer, events, progress=False)
        producer.emit(rule_breaker)
    poison = Producer(kafka.librdkafka())
    poison.produce(topics.raw, key=b"POISON-1", value=b"\x07 definitely not avro")
    assert poison.flush(10) == 0
    produced = len(events) + 2

    wait_drained(kafka, clickhouse, topics, produced, workers, timeout_s=240)

    # Kafka and ClickHouse agree: nothing lost, nothing stored twice.
    result = reconcile(kafka, RegistrySettings(), clickhouse, topics)
    assert result.line() == (
        f"produced={produced} stored={len(events)} dead_lettered=2 lost=0 duplicated=0"
    )

    # Every event once, and each booking's rows in seq order 1..n.
    client = clickhouse_connect.get_client(
        **clickhouse.client_kwargs(), database=clickhouse.database
    )
    rows, distinct = client.query(
        "SELECT count(), uniqExact(event_id) FROM booking_events"
    ).result_rows[0]
    assert rows == distinct == len(events)
    # Kafka offset order is the order the sink received them in.
    histories = client.query(
        "SELECT booking_id, groupArray(seq) FROM"
        " (SELECT booking_id, seq FROM booking_events"
        "  ORDER BY booking_id, kafka_offset)"
        " GROUP BY booking_id"
    ).result_rows
    assert len(histories) == BOOKINGS
    for booking_id, seqs in histories:
        assert list(seqs) == list(range(1, len(seqs) + 1)), booking_id
    stored = {
        str(r[0]): r[1:]
        for r in client.query(
            "SELECT event_id, average_daily_rate, occurred_at FROM booking_events"
            " WHERE event_type = 'BOOKING_CREATED'"
        ).result_rows
    }
    for event in events[:50]:
        if event.event_type.value == "BOOKING_CREATED":
            rate, occurred_at = stored[str(event.event_id)]
            assert rate == event.average_daily_rate
            assert occurred_at.replace(tzinfo=UTC) == event.occurred_at

    # The two bad inputs are in the dead-letter topic with their reasons.
    reasons = {}
    for msg in read_topic(kafka, topics.dead_letter):
        headers = {k: v.decode() for k, v in msg.headers()}
        assert headers["dlq.source.topic"] == topics.raw
        reasons[msg.key()] = (headers["dlq.reason"], msg.value())
    assert reasons[b"POISON-1"] == ("malformed", b"\x07 definitely not avro")
    assert reasons[b"BAD-DATES-1"][0] == "departure_not_after_arrival"

    # The operator's view answers from the same services.
    status = CliRunner().invoke(main, ["status"])
    assert status.exit_code == 0, status.output
    assert f"clickhouse: rows={len(events)} bookings={BOOKINGS}" in status.output

    # The documented example queries run against what the pipeline stored.
    for name, example in EXAMPLES.items():
        assert client.query(example.sql).result_rows, name
    client.close()


def test_report_fails_when_an_event_is_missing(
    topics: TopicSettings, clickhouse_database: str, stack_env: dict[str, str]
) -> None:
    # Negative control: an event in Kafka that never reaches ClickHouse.
    kafka = KafkaSettings()
    with BookingEventProducer(handle_sigterm=False) as producer:
        event = events_in_time_order(load_bookings()[:1])[0]
        producer.emit(event)
    client = clickhouse_connect.get_client(**ClickHouseSettings().client_kwargs())
    client.command(f"CREATE DATABASE IF NOT EXISTS {clickhouse_database}")
    client.command(
        f"CREATE TABLE {clickhouse_database}.booking_events (event_id UUID)"
        " ENGINE = MergeTree ORDER BY event_id"
    )
    client.close()

    result = reconcile(kafka, RegistrySettings(), ClickHouseSettings(), topics)

    assert not result.clean
    assert result.lost_ids == [str(event.event_id)]
    assert uuid.UUID(result.lost_ids[0]) == event.event_id
