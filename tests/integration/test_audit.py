"""``booking-events audit`` on a real pipeline run: clean, then tampered with."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from confluent_kafka import Producer

from booking_events.pipeline import Worker, start_worker, wait_drained
from booking_events.settings import ClickHouseSettings, KafkaSettings, TopicSettings
from producers import BookingEventProducer
from producers.hotel_rates import events_in_time_order, load_bookings
from producers.replay import replay

pytestmark = pytest.mark.integration

BOOKINGS = 40


def run_audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "booking_events", "audit", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=180,
    )


@pytest.fixture
def workers(
    topics: TopicSettings,
    clickhouse_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[Worker]]:
    # An app id and group of this test's own: no state of another test's run.
    monkeypatch.setenv("BOOKING_EVENTS_PROCESSOR_APP_ID", f"{topics.raw}-processor")
    monkeypatch.setenv("BOOKING_EVENTS_PROCESSOR_DATA_DIR", str(tmp_path / "proc"))
    monkeypatch.setenv("BOOKING_EVENTS_SINK_GROUP_ID", f"{topics.raw}-sink")
    started = [
        start_worker("processor", ["process"], tmp_path),
        start_worker("sink", ["sink"], tmp_path),
    ]
    yield started
    for worker in started:
        worker.stop(timeout_s=60)


def test_audit_is_clean_after_a_run_and_names_what_was_tampered_with(
    topics: TopicSettings, workers: list[Worker]
) -> None:
    kafka, clickhouse = KafkaSettings(), ClickHouseSettings()
    events = events_in_time_order(load_bookings()[:BOOKINGS])
    with BookingEventProducer(handle_sigterm=False) as producer:
        replay(producer, events, progress=False)
    poison = Producer(kafka.librdkafka())
    poison.produce(topics.raw, key=b"POISON-1", value=b"\x07 not avro")
    assert poison.flush(10) == 0
    wait_drained(kafka, clickhouse, topics, len(events) + 1, workers, timeout_s=180)
    for worker in workers:
        assert worker.stop(timeout_s=60) == 0, worker.log_path.read_text()[-3000:]

    clean = run_audit()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"produced          {len(events) + 1} distinct events" in clean.stdout
    assert f"stored            {len(events)} rows" in clean.stdout
    assert "dead-lettered     1 records" in clean.stdout
    assert "verdict: CLEAN" in clean.stdout

    # A time range audits the events that occurred in it, and only those.
    middle = events[len(events) // 2].occurred_at
    later = [e for e in events if e.occurred_at >= middle]
    ranged = run_audit("--since", middle.isoformat())
    assert ranged.returncode == 0, ranged.stdout + ranged.stderr
    assert f"produced          {len(later)} distinct events" in ranged.stdout

    # One row deleted, another stored twice: both named, exit 1.
    dropped, copied = events[3], events[7]
    client = clickhouse_connect.get_client(
        **clickhouse.client_kwargs(), database=clickhouse.database
    )
    client.command(
        "ALTER TABLE booking_events DELETE WHERE event_id = {id:UUID}"
        " SETTINGS mutations_sync = 2",
        parameters={"id": str(dropped.event_id)},
    )
    client.command(
        "INSERT INTO booking_events SELECT * FROM booking_events"
        " WHERE event_id = {id:UUID}",
        parameters={"id": str(copied.event_id)},
    )
    client.close()

    tampered = run_audit("--show", "5")
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"lost\t{dropped.event_id}" in tampered.stdout
    assert f"duplicated\t{copied.event_id}\t1 extra" in tampered.stdout
    assert f"order\t{dropped.booking_id}\tseq_gap" in tampered.stdout
    assert "verdict: NOT CLEAN" in tampered.stdout
