"""The sink's exactly-once under real faults: SIGKILL, SIGSTOP, ClickHouse down.

Each test writes real bookings' events to the raw topic and, as the processor
would, to the validated topic (no processor runs: these tests hurt the sink
only), runs ``booking-events sink`` as processes, hurts them with real signals
at exact points (the sink's test pause points, see ``sinks.testing``), lets a
sink finish, and ends with ``count() == uniqExact(event_id) == produced`` on
the table, without FINAL, and a clean audit. The negative control proves the
same checks fail when the sink's deduplication is switched off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from booking_events.audit import audit
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from schemas import BookingEvent, EventSerializer

pytestmark = [pytest.mark.faults]

BOOKINGS = 300
"""Real bookings per test: about a thousand events."""

FAST = {
    "BOOKING_EVENTS_SINK_BATCH_MAX_ROWS": "200",
    "BOOKING_EVENTS_SINK_BATCH_MAX_MS": "200",
    "BOOKING_EVENTS_SINK_INSERT_BACKOFF_INITIAL_MS": "200",
    "BOOKING_EVENTS_SINK_INSERT_BACKOFF_MAX_MS": "1000",
    "BOOKING_EVENTS_SINK_INSERT_RETRY_MAX_S": "60",
    "BOOKING_EVENTS_SINK_SESSION_TIMEOUT_MS": "6000",
    "BOOKING_EVENTS_SINK_CREATE_VIEWS": "false",
}


# --- helpers ------------------------------------------------------------------


def produce(topics: TopicSettings, events: list[BookingEvent]) -> int:
    """Write ``events`` to the raw topic and, validated, to the validated one."""
    serializer = EventSerializer(
        SchemaRegistryClient(RegistrySettings().client_config()), auto_register=True
    )
    # Idempotent: a retried batch must not overtake the next, or seq order breaks.
    producer = Producer(
        {**KafkaSettings().librdkafka(), "linger.ms": 20, "enable.idempotence": True}
    )
    for event in events:
        for topic in (topics.raw, topics.validated):
            value = serializer.serialize(event, topic)
            producer.produce(topic, key=event.booking_id, value=value)
        producer.poll(0)
    assert producer.flush(30) == 0
    return len(events)


def produce_in_background(
    topics: TopicSettings, events: list[BookingEvent], chunks: int, pause_s: float
) -> threading.Thread:
    """Produce ``events`` in ``chunks`` with pauses between: a stream, not a lump."""
    size = -(-len(events) // chunks)

    def run() -> None:
        for start in range(0, len(events), size):
            produce(topics, events[start : start + size])
            time.sleep(pause_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def query(sql: str) -> list[tuple[Any, ...]]:
    settings = ClickHouseSettings()
    client = clickhouse_connect.get_client(**settings.client_kwargs())
    try:
        return list(client.query(sql.replace("{db}", settings.database)).result_rows)
    finally:
        client.close()


def counts() -> tuple[int, int]:
    """``count()`` and ``uniqExact(event_id)`` of the table, without FINAL."""
    try:
        ((rows, events),) = query(
            "SELECT count(), uniqExact(event_id) FROM {db}.booking_events"
        )
    except Exception:  # no table yet, or ClickHouse stopped
        return (0, 0)
    return int(rows), int(events)


def assert_exactly_once(produced: int) -> None:
    """The issue's check, then the audit (raw topic against the table)."""
    assert counts() == (produced, produced)
    report = audit(
        KafkaSettings(), RegistrySettings(), ClickHouseSettings(), TopicSettings()
    )
    assert report.clean, (report.summary(), report.order_violations[:5])
    assert report.stored == produced


def pause_env(point: str, marker: Path, **extra: str) -> dict[str, str]:
    return {
        **FAST,
        "BOOKING_EVENTS_SINK_TEST_PAUSE_AT": point,
        "BOOKING_EVENTS_SINK_TEST_MARKER": str(marker),
        "BOOKING_EVENTS_SINK_TEST_PAUSE_AFTER_ROWS": "300",
        **extra,
    }


# --- crash at every point of a flush -------------------------------------------


@pytest.mark.parametrize("point", ["before_insert", "during_insert", "after_insert"])
def test_sigkill_at_each_point_of_a_flush_then_restart(
    point: str,
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    wait_until: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    tmp_path: Path,
) -> None:
    events = bookings(BOOKINGS)
    produced = produce(fault_topics, events)
    marker = tmp_path / "paused"
    # Bigger batches for "during": the paused block is then a few KiB at least.
    bigger = {"BOOKING_EVENTS_SINK_BATCH_MAX_ROWS": "600"}
    sink = start_worker("sink", ["sink"], **pause_env(point, marker, **bigger))

    wait_until(marker.exists, 60, f"the sink paused at {point}")
    at_pause = counts()[0]
    if point == "during_insert":
        # Honest "during": the server is running our INSERT right now.
        running = query(
            "SELECT count() FROM system.processes"
            " WHERE query ILIKE 'INSERT INTO%' AND query LIKE '%{db}%'"
        )
        assert running[0][0] >= 1
    sink.kill()
    time.sleep(1.0)
    at_kill = counts()[0]
    assert 0 < at_pause < produced
    # Before or during the insert nothing of the batch may appear, not even
    # after the server noticed the dropped connection.
    if point != "after_insert":
        assert at_kill == at_pause

    restarted = start_worker("sink-restarted", ["sink"], **FAST)  # no pause
    wait_drained(stored=produced, timeout_s=60)
    stop_workers(restarted)
    assert_exactly_once(produced)


def test_negative_control_without_deduplication_the_checks_fail(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    wait_until: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    tmp_path: Path,
) -> None:
    """The same crash as above with deduplication off: the checks MUST fail."""
    events = bookings(BOOKINGS)
    produced = produce(fault_topics, events)
    marker = tmp_path / "paused"
    off = {"BOOKING_EVENTS_SINK_DEDUPLICATION": "false"}
    sink = start_worker("sink", ["sink"], **pause_env("after_insert", marker, **off))

    wait_until(marker.exists, 60, "the sink paused after its insert")
    sink.kill()
    again = start_worker("sink-again", ["sink"], **FAST, **off)
    wait_drained(stored=produced, timeout_s=60)
    # "All stored" can hold before the restarted sink re-read anything; wait
    # for the second copy, or the checks below would pass for the wrong reason.
    wait_until(lambda: counts()[0] > produced, 90, "the batch stored a second time")
    stop_workers(again)

    rows, unique = counts()
    assert unique == produced
    assert rows > unique, "deduplication off, yet no duplicate: the test is blind"
    report = audit(
        KafkaSettings(), RegistrySettings(), ClickHouseSettings(), TopicSettings()
    )
    assert not report.clean
    assert report.duplicated and not report.lost


# --- ClickHouse away ------------------------------------------------------------


def test_clickhouse_stopped_for_10_s_mid_stream(
    fault_topics: TopicSettings,
    local_stack: Any,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    wait_until: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
) -> None:
    if local_stack is None:
        pytest.skip("needs the local stack to stop and start ClickHouse")
    clickhouse = local_stack.services["clickhouse"]
    events = bookings(BOOKINGS)
    half = len(events) // 2
    produce(fault_topics, events[:half])
    sink = start_worker("sink", ["sink"], **FAST)
    wait_until(lambda: counts()[0] >= half, 60, "the first half stored")

    clickhouse.stop()
    try:
        produce(fault_topics, events[half:])
        time.sleep(10)
        assert sink.alive(), sink.log_text()[-3000:]
    finally:
        clickhouse.start()

    wait_drained(stored=len(events), timeout_s=60)
    assert "retrying" in sink.log_text()
    stop_workers(sink)
    assert_exactly_once(len(events))


# --- several sinks ----------------------------------------------------------------


def test_two_sinks_rebalance_then_one_is_killed(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    wait_until: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
) -> None:
    events = bookings(BOOKINGS * 2)
    stream = produce_in_background(fault_topics, events, chunks=20, pause_s=1.0)
    first = start_worker("sink-1", ["sink"], **FAST)
    wait_until(lambda: counts()[0] > 0, 60, "the first rows")

    second = start_worker("sink-2", ["sink"], **FAST)  # mid-stream: a rebalance
    second.wait_for_log(r"assigned topic=", timeout_s=60)
    assert stream.is_alive(), "the stream ended before the rebalance"
    first.kill()

    stream.join(60)
    wait_drained(stored=len(events), timeout_s=60)
    stop_workers(second)
    assert_exactly_once(len(events))


def test_a_stalled_sink_that_wakes_after_another_took_over_adds_nothing(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    wait_until: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    tmp_path: Path,
) -> None:
    """The zombie: frozen after checking its batch, before inserting it, for
    longer than its session; another sink stores and commits everything; the
    zombie wakes and sends its now stale insert."""
    events = bookings(BOOKINGS)
    produced = produce(fault_topics, events)
    marker = tmp_path / "paused"
    zombie = start_worker(
        "zombie",
        ["sink"],
        **pause_env("before_insert", marker, BOOKING_EVENTS_SINK_TEST_PAUSE_S="2"),
    )
    wait_until(marker.exists, 60, "the zombie holding a checked batch")
    zombie.pause()  # SIGSTOP: no heartbeats, the group evicts it after 6 s
    held = counts()[0]

    heir = start_worker("heir", ["sink"], **FAST)
    wait_drained(stored=produced, timeout_s=60)
    assert counts() == (produced, produced)

    zombie.resume()  # SIGCONT: its pause is over, the stale insert goes out
    zombie.wait_for_log(r"TEST pause over", timeout_s=30)
    # Its flush is over (the stale blocks went out) when it tries to commit.
    zombie.wait_for_log(r"not committed|partitions lost", timeout_s=30)
    assert held < produced
    stop_workers(zombie, heir)
    assert_exactly_once(produced)
