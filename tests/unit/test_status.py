"""Lag arithmetic of the status command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from booking_events.cli.audit import describe_in_flight
from booking_events.status import Freshness, PartitionLag


def test_lag_is_end_minus_committed() -> None:
    assert PartitionLag("g", "t", 0, committed=40, end=100).lag == 60


def test_a_group_that_never_committed_lags_by_the_whole_partition() -> None:
    assert PartitionLag("g", "t", 0, committed=None, end=100).lag == 100


def test_lag_never_goes_negative() -> None:
    # A committed offset can pass a stale high watermark read a moment earlier.
    assert PartitionLag("g", "t", 0, committed=101, end=100).lag == 0


def test_freshness_ages() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    fresh = Freshness(
        rows=3,
        bookings=1,
        newest_event=now - timedelta(hours=2),
        newest_ingest=now - timedelta(seconds=5),
    )

    assert fresh.event_age_s(now) == 7200
    assert fresh.ingest_age_s(now) == 5
    assert Freshness(0, 0, None, None).event_age_s(now) is None


def test_counted_records_override_offset_arithmetic() -> None:
    # One transaction marker past the last record: caught up, not 1 behind.
    assert PartitionLag("g", "t", 0, committed=134, end=135, records_behind=0).lag == 0


def test_the_audit_notes_records_still_in_flight() -> None:
    lags = [
        PartitionLag("proc", "raw", 0, committed=10, end=11),
        PartitionLag("proc", "raw", 1, committed=5, end=5),
        PartitionLag("sink", "validated", 0, committed=3, end=4, records_behind=0),
    ]

    note = describe_in_flight(lags)

    assert note is not None
    assert "proc 1" in note and "sink" not in note


def test_the_audit_adds_no_note_once_the_pipeline_caught_up() -> None:
    lags = [PartitionLag("sink", "validated", 0, committed=3, end=4, records_behind=0)]

    assert describe_in_flight(lags) is None
