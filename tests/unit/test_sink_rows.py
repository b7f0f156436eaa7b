"""Decoded records to rows, rows to one-block insert groups and their tokens."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from schemas import BookingCancelled, BookingCreated, GuestCheckedOut
from sinks.rows import (
    COLUMN_NAMES,
    insert_groups,
    kafka_time,
    month_of,
    to_row,
)

NEW_YORK = "America/New_York"


@pytest.fixture(autouse=True)
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run under a zone with an offset, so a naive datetime would show."""
    monkeypatch.setenv("TZ", NEW_YORK)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _created(**changes: Any) -> BookingCreated:
    fields: dict[str, Any] = {
        "booking_id": "B1",
        "seq": 1,
        "occurred_at": datetime(2024, 1, 31, 23, 59, 59, 999000, tzinfo=UTC),
        "source": "test",
        "hotel": "City Hotel",
        "arrival_date": date(2299, 12, 30),
        "departure_date": date(2299, 12, 31),
        "adults": 2,
        "children": 1,
        "babies": 0,
        "meal_plan": "bed_and_breakfast",
        "reserved_room_type": "A",
        "average_daily_rate": Decimal("1234567890.12"),
        "currency": "EUR",
        "market_segment": "direct",
        "distribution_channel": "direct",
        "customer_type": "transient",
        "is_repeated_guest": True,
        "previous_cancellations": 0,
        "previous_bookings_not_canceled": 3,
        "lead_time_days": 10,
        "days_in_waiting_list": 0,
        "required_car_parking_spaces": 1,
        "total_of_special_requests": 2,
    }
    return BookingCreated(**{**fields, **changes})


def _row(record: dict[str, Any], offset: int = 7) -> dict[str, Any]:
    row = to_row(
        record,
        topic="v",
        partition=3,
        offset=offset,
        timestamp=kafka_time(1_700_000_000_123),
    )
    return dict(zip(COLUMN_NAMES, row, strict=True))


def test_created_event_becomes_a_row_with_exact_values() -> None:
    event = _created()

    row = _row(event.to_avro())

    assert row["event_id"] == event.event_id
    assert row["booking_id"] == "B1"
    assert row["seq"] == 1
    assert row["event_type"] == "BOOKING_CREATED"
    assert row["occurred_at"] == datetime(2024, 1, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert row["occurred_at"].utcoffset() == timedelta(0)
    assert row["arrival_date"] == date(2299, 12, 30)
    assert row["average_daily_rate"] == Decimal("1234567890.12")
    assert str(row["average_daily_rate"]) == "1234567890.12"
    assert row["is_repeated_guest"] is True
    assert row["country"] is None
    assert row["nights"] is None and row["cancellation_fee"] is None
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == (
        "v",
        3,
        7,
    )
    assert row["kafka_timestamp"] == datetime(2023, 11, 14, 22, 13, 20, 123000, UTC)
    assert row["ingested_at"] is None


def test_other_event_types_fill_their_own_columns_and_leave_the_rest_null() -> None:
    checked_out = GuestCheckedOut(
        booking_id="B1",
        seq=5,
        occurred_at=datetime(2024, 2, 1, tzinfo=UTC),
        nights=3,
        total_amount=Decimal("0.10"),
        currency="EUR",
    )
    cancelled = BookingCancelled(
        booking_id="B2",
        seq=2,
        occurred_at=datetime(2024, 2, 1, tzinfo=UTC),
        cancellation_fee=Decimal("5.00"),
        currency="USD",
    )

    out = _row(checked_out.to_avro())
    cancel = _row(cancelled.to_avro())

    assert (out["nights"], out["total_amount"], out["currency"]) == (
        3,
        Decimal("0.10"),
        "EUR",
    )
    assert out["hotel"] is None and out["arrival_date"] is None
    assert cancel["reason"] is None
    assert cancel["cancellation_fee"] == Decimal("5.00")


def test_datetimes_become_aware_utc_whatever_the_input_zone() -> None:
    lisbon_summer = timezone(timedelta(hours=1))
    record = _created(occurred_at=datetime(2024, 7, 1, 1, 30, tzinfo=lisbon_summer))
    avro = record.to_avro()
    naive_utc = datetime(2024, 7, 1, 0, 30, tzinfo=UTC).replace(tzinfo=None)
    naive = {**avro, "occurred_at": naive_utc}

    assert _row(avro)["occurred_at"] == datetime(2024, 7, 1, 0, 30, tzinfo=UTC)
    assert _row(avro)["occurred_at"].tzinfo is UTC
    assert _row(naive)["occurred_at"] == datetime(2024, 7, 1, 0, 30, tzinfo=UTC)


def test_event_id_string_becomes_uuid() -> None:
    avro = _created().to_avro()

    assert isinstance(_row(avro)["event_id"], uuid.UUID)


def _rows(months: list[tuple[int, int]]) -> list[list[Any]]:
    return [
        to_row(
            _created(seq=i + 1, occurred_at=datetime(y, m, 15, tzinfo=UTC)).to_avro(),
            topic="v",
            partition=0,
            offset=100 + i,
            timestamp=kafka_time(0),
        )
        for i, (y, m) in enumerate(months)
    ]


def test_groups_are_one_per_month_in_offset_order() -> None:
    rows = _rows([(2024, 1), (2024, 2), (2024, 1), (2023, 12)])

    groups = insert_groups("v", 0, [100, 101, 102, 103], rows)

    assert [(g.month, g.offsets) for g in groups] == [
        (202312, [103]),
        (202401, [100, 102]),
        (202402, [101]),
    ]
    assert all(month_of(r) == g.month for g in groups for r in g.rows)


def test_month_is_taken_in_utc() -> None:
    # 23:30 UTC on Jan 31 is still January, although New York says 18:30.
    (row,) = _rows([(2024, 1)])
    row[COLUMN_NAMES.index("occurred_at")] = datetime(2024, 1, 31, 23, 30, tzinfo=UTC)

    assert month_of(row) == 202401


def test_a_token_names_where_its_block_starts_and_nothing_else() -> None:
    rows = _rows([(2024, 1), (2024, 2), (2024, 1), (2024, 1)])

    first = insert_groups("v", 0, [100, 101, 102, 103], rows)
    again = insert_groups("v", 0, [100, 101, 102, 103], rows)
    shorter = insert_groups("v", 0, [100, 101], rows[:2])
    other_partition = insert_groups("v", 1, [100, 101, 102, 103], rows)
    after_stored = insert_groups("v", 0, [100, 101, 102, 103], rows, stored={100})

    assert [g.token for g in first] == [g.token for g in again]
    assert [g.token for g in first] == ["v/0/202401/100", "v/0/202402/101"]
    # A block that reaches less far starts at the same record: same token, so
    # ClickHouse keeps only one of the two (the flush then sends the rest).
    assert [g.token for g in shorter] == [g.token for g in first]
    assert {g.token for g in first}.isdisjoint(g.token for g in other_partition)
    # Stored offsets are left out, and the block starts at the first unstored.
    assert [(g.token, g.offsets) for g in after_stored] == [
        ("v/0/202401/102", [102, 103]),
        ("v/0/202402/101", [101]),
    ]
