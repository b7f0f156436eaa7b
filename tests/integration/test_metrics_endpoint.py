"""A real processor and sink serve /metrics; the counters match what was sent."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from booking_events.pipeline import Worker, start_worker, stop_workers
from booking_events.settings import KafkaSettings, TopicSettings
from producers import BookingEventProducer
from producers.hotel_rates import events_in_time_order, load_bookings

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Samples:
    """Every sample of the endpoint, keyed by name and labels."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, workers: list[Worker]
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"{worker.name} exited:\n{worker.log_path.read_text()[-3000:]}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(w.log_path.read_text()[-2000:] for w in workers)
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.5)


def test_processor_and_sink_serve_their_counters(
    topics: TopicSettings, clickhouse_database: str, tmp_path: Path
) -> None:
    prefix = f"m{uuid.uuid4().hex[:8]}"
    processor_port, sink_port = free_port(), free_port()
    common = {
        "BOOKING_EVENTS_METRICS_LAG_INTERVAL_S": "0.5",
        "BOOKING_EVENTS_PROCESSOR_APP_ID": f"{prefix}-processor",
        "BOOKING_EVENTS_PROCESSOR_DATA_DIR": str(tmp_path / "processor"),
        "BOOKING_EVENTS_PROCESSOR_COMMIT_INTERVAL_S": "0.5",
        "BOOKING_EVENTS_SINK_GROUP_ID": f"{prefix}-sink",
        "BOOKING_EVENTS_SINK_BATCH_MAX_MS": "300",
    }
    logs = tmp_path / "logs"
    workers = [
        start_worker(
            "processor",
            ["process"],
            logs,
            {**common, "BOOKING_EVENTS_METRICS_PORT": str(processor_port)},
        ),
        start_worker(
            "sink",
            ["sink"],
            logs,
            {
                **common,
                "BOOKING_EVENTS_METRICS_PORT": str(sink_port),
                "BOOKING_EVENTS_LOG_FORMAT": "json",
            },
        ),
    ]
    try:
        events = events_in_time_order(load_bookings()[:40])
        with BookingEventProducer(handle_sigterm=False) as producer:
            for event in events:
                producer.emit(event)
        # One poison record: not an event in Confluent wire format.
        poison = Producer(KafkaSettings().librdkafka())
        poison.produce(topics.raw, key=b"HR-poison", value=b"not avro at all")
        assert poison.flush(10) == 0

        def processor_done() -> bool:
            try:
                samples = scrape(processor_port)
            except OSError:
                return False
            return (
                value(
                    samples,
                    "booking_events_processor_events_in_total",
                    topic=topics.raw,
                )
                >= len(events) + 1
            )

        wait_for(processor_done, 120, "the processor's counters", workers)

        def sink_done() -> bool:
            try:
                samples = scrape(sink_port)
            except OSError:
                return False
            rows = value(samples, "booking_events_sink_rows_inserted_total")
            return rows >= len(events)

        wait_for(sink_done, 120, "the sink's counters", workers)
        time.sleep(1.5)  # one more lag refresh after the last records
        processed, sunk = scrape(processor_port), scrape(sink_port)
    finally:
        codes = stop_workers(workers, timeout_s=60)

    assert codes == {"processor": 0, "sink": 0}

    # The processor: everything in, each valid event out, the poison dead-lettered.
    assert (
        value(processed, "booking_events_processor_events_in_total", topic=topics.raw)
        == len(events) + 1
    )
    assert value(
        processed,
        "booking_events_processor_events_out_total",
        topic=topics.validated,
        outcome="validated",
    ) == len(events)
    assert (
        value(
            processed,
            "booking_events_processor_events_out_total",
            topic=topics.dead_letter,
            outcome="dead_lettered",
        )
        == 1
    )
    assert (
        value(
            processed,
            "booking_events_processor_dead_lettered_total",
            reason="malformed",
        )
        == 1
    )
    assert value(processed, "booking_events_processor_duplicates_dropped_total") == 0
    assert value(processed, "booking_events_processor_commits_total") >= 1

    # The sink: every validated event read and inserted, offsets committed.
    assert value(
        sunk, "booking_events_sink_events_in_total", topic=topics.validated
    ) == len(events)
    assert value(sunk, "booking_events_sink_rows_inserted_total") == len(events)
    assert value(sunk, "booking_events_sink_commits_total") >= 1
    assert value(sunk, "booking_events_sink_batch_size_rows_count") >= 1
    assert value(sunk, "booking_events_sink_insert_duration_seconds_count") >= 1
    assert value(sunk, "booking_events_sink_newest_event_timestamp_seconds") > 0

    # A lag gauge per partition, for each consumer group.
    partitions = {str(p) for p in range(topics.partitions)}
    for samples, group, topic in (
        (processed, f"{prefix}-processor", topics.raw),
        (sunk, f"{prefix}-sink", topics.validated),
    ):
        lags = {
            dict(labels)["partition"]: lag
            for (name, labels), lag in samples.items()
            if name == "booking_events_consumer_lag_records"
            and dict(labels).get("group") == group
            and dict(labels).get("topic") == topic
        }
        assert set(lags) == partitions, (group, lags)
        # Drained: nothing left to read (transaction markers do not count).
        assert sum(lags.values()) == 0, (group, lags)

    # The sink logged JSON lines, with coordinates as fields.
    lines = [
        json.loads(line)
        for line in (logs / "sink.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assigned = [line for line in lines if line["msg"] == "assigned"]
    assert assigned, lines[:5]
    assert {"time", "level", "logger", "topic", "partition"} <= set(assigned[0])
