"""Negative controls: the audit that ends every fault test can fail.

A check that never fails proves nothing. Here the pipeline runs on a small
slice of real bookings, the audit is clean, and then one thing is broken on
purpose: one stored event is deleted, or rows are stored twice (the sink's
deduplication switched off and the sink killed between insert and commit).
The audit must then fail and name the events.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from booking_events.audit import AuditReport, audit
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from schemas import BookingEvent

pytestmark = pytest.mark.faults

BOOKINGS = 30


def run_audit() -> AuditReport:
    report = audit(
        KafkaSettings(), RegistrySettings(), ClickHouseSettings(), TopicSettings()
    )
    print(report.summary())
    return report


def table_client() -> Client:
    settings = ClickHouseSettings()
    return clickhouse_connect.get_client(
        **settings.client_kwargs(), database=settings.database
    )


@pytest.fixture
def clean_run(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    replay: Callable[..., Any],
    wait_drained: Callable[..., None],
    stop_workers: Callable[..., None],
    assert_audit_clean: Callable[..., AuditReport],
) -> list[BookingEvent]:
    """A small pipeline run that the audit finds clean; returns its events."""
    workers = [start_worker("processor", ["process"]), start_worker("sink", ["sink"])]
    events = bookings(BOOKINGS)
    replay(events).join()
    wait_drained(stored=len(events))
    stop_workers(*workers)
    assert_audit_clean()
    return events


def test_audit_fails_when_one_stored_event_is_dropped(
    clean_run: list[BookingEvent],
) -> None:
    dropped = clean_run[len(clean_run) // 2]
    client = table_client()
    client.command(
        "ALTER TABLE booking_events DELETE WHERE event_id = {id:UUID}"
        " SETTINGS mutations_sync = 2",
        parameters={"id": str(dropped.event_id)},
    )
    client.close()

    report = run_audit()

    assert not report.clean
    assert report.lost == [str(dropped.event_id)]
    assert report.duplicated == {}


def test_audit_fails_when_a_stored_row_is_stored_again(
    clean_run: list[BookingEvent],
) -> None:
    # What a sink without deduplication does when it crashes after an insert
    # and before its commit: the restarted sink inserts the same record again,
    # with the same Kafka coordinates.
    copied = clean_run[5]
    client = table_client()
    client.command(
        "INSERT INTO booking_events SELECT * FROM booking_events"
        " WHERE event_id = {id:UUID}",
        parameters={"id": str(copied.event_id)},
    )
    client.close()

    report = run_audit()

    assert not report.clean
    assert report.duplicated == {str(copied.event_id): 1}
    assert report.lost == []
    kinds = {(v.booking_id, v.kind) for v in report.order_violations}
    assert kinds == {(copied.booking_id, "seq_repeated")}


def _sink_switches() -> str | None:
    """Why the real dedup switch cannot be used yet, or None when it can."""
    from sinks import connector
    from sinks.config import SinkSettings

    missing = {"deduplication", "test_pause_at", "test_marker"}
    missing -= SinkSettings.model_fields.keys()
    if missing:
        return f"SinkSettings has no {sorted(missing)} yet (sink part of issue #3)"
    if "PausePoints" not in inspect.getsource(connector):
        return "the sink does not use its test pause points yet (issue #3)"
    return None


@pytest.mark.skipif(_sink_switches() is not None, reason=str(_sink_switches()))
def test_audit_fails_when_the_sink_crashes_after_insert_without_deduplication(
    fault_topics: TopicSettings,
    start_worker: Callable[..., Any],
    bookings: Callable[..., list[BookingEvent]],
    replay: Callable[..., Any],
    wait_drained: Callable[..., None],
    wait_until: Callable[..., Any],
    stop_workers: Callable[..., None],
    tmp_path: Path,
) -> None:
    marker = tmp_path / "sink-paused"
    # A short session, so the restarted sink gets the partitions soon after
    # the killed one stops answering.
    off = {
        "BOOKING_EVENTS_SINK_DEDUPLICATION": "false",
        "BOOKING_EVENTS_SINK_SESSION_TIMEOUT_MS": "6000",
    }
    processor = start_worker("processor", ["process"])
    sink = start_worker(
        "sink",
        ["sink"],
        BOOKING_EVENTS_SINK_TEST_PAUSE_AT="after_insert",
        BOOKING_EVENTS_SINK_TEST_MARKER=str(marker),
        **off,
    )
    events = bookings(BOOKINGS)
    replay(events).join()

    # Rows stored, offsets not committed: a crash now makes the restarted sink
    # read the batch again, and without deduplication store it again. Waiting
    # for "all stored" alone would return before the restarted sink re-read
    # anything, and the audit would be clean for the wrong reason.
    wait_until(marker.exists, 120, "the sink paused after its insert")
    sink.kill()
    restarted = start_worker("sink-restarted", ["sink"], **off)
    wait_drained(stored=len(events))
    client = table_client()
    try:
        wait_until(
            lambda: client.command("SELECT count() FROM booking_events") > len(events),
            90,
            "the restarted sink stored the re-read batch again",
        )
    finally:
        client.close()
    stop_workers(processor, restarted)

    report = run_audit()

    assert not report.clean
    assert report.duplicated, report.summary()
    assert report.lost == []
    assert set(report.duplicated) <= {str(e.event_id) for e in events}
