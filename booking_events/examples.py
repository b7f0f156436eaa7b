"""Questions analysts ask of the event log, with the SQL that answers them.

The README shows the same queries; a test runs each against a real ClickHouse
loaded by the pipeline. ``booking-events query --example NAME`` runs one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    question: str
    sql: str


EXAMPLES: dict[str, Example] = {
    "events_per_type": Example(
        "How many events of each type are there?",
        """\
SELECT event_type, count() AS events
FROM booking_events
GROUP BY event_type
ORDER BY events DESC""",
    ),
    "bookings_per_arrival_month": Example(
        "How many bookings arrive in each month?",
        """\
SELECT toStartOfMonth(arrival_date) AS arrival_month, count() AS bookings
FROM bookings_current
GROUP BY arrival_month
ORDER BY arrival_month""",
    ),
    "price_by_market_segment": Example(
        "What is the average price per room night in each market segment?",
        """\
SELECT market_segment,
       count() AS bookings,
       round(avg(average_daily_rate), 2) AS avg_price_per_room_eur
FROM bookings_current
GROUP BY market_segment
ORDER BY avg_price_per_room_eur DESC""",
    ),
    "room_nights_per_month": Example(
        "How many room nights were stayed in each month (a stay across a month"
        " end counts in both)?",
        """\
SELECT toStartOfMonth(night) AS month, count() AS room_nights
FROM
(
    SELECT toDate(occurred_at) - assumeNotNull(nights)
           + arrayJoin(range(assumeNotNull(nights))) AS night
    FROM booking_events
    WHERE event_type = 'GUEST_CHECKED_OUT'
)
GROUP BY month
ORDER BY month""",
    ),
    "share_room_changed": Example(
        "What share of bookings got another room type than the one booked?",
        """\
SELECT uniqExactIf(booking_id, event_type = 'ROOM_ASSIGNED') AS room_changed,
       uniqExact(booking_id) AS bookings,
       round(room_changed / bookings, 4) AS share_room_changed
FROM booking_events""",
    ),
    "booking_history": Example(
        "What happened to one booking, in order?",
        """\
SELECT seq, event_type, occurred_at, arrival_date, departure_date,
       average_daily_rate, room_type, total_amount
FROM booking_events
WHERE booking_id = 'HR-00003'
ORDER BY seq""",
    ),
}
