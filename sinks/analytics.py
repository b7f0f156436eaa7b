"""Views for analysts over the events table, created by the sink at start.

* ``bookings_current``: one row per booking with its latest known state. Each
  attribute is the value of the highest ``seq`` that set it (payload columns
  are NULL for event types that do not carry them, so ``argMaxIf(col, seq,
  col IS NOT NULL)``). Room assignments do not change the status.
* ``stays``: the checked-out bookings with their nights and revenue.

They are plain views, computed at query time from the events table, so they
are exact as soon as the rows are in and need no backfill. They are created
with CREATE OR REPLACE, so a new sink version updates them.
"""

from __future__ import annotations

from typing import Any

from sinks.schema import qualified, quote_string

# Attributes whose latest non-NULL value the booking keeps.
LATEST = (
    "hotel",
    "arrival_date",
    "departure_date",
    "adults",
    "children",
    "babies",
    "meal_plan",
    "reserved_room_type",
    "average_daily_rate",
    "currency",
    "country",
    "market_segment",
    "distribution_channel",
    "customer_type",
    "agent",
    "company",
    "is_repeated_guest",
    "lead_time_days",
    "cancellation_fee",
    "total_amount",
)

STATUS = {
    "BOOKING_CREATED": "created",
    "BOOKING_MODIFIED": "modified",
    "GUEST_CHECKED_IN": "checked_in",
    "GUEST_CHECKED_OUT": "checked_out",
    "BOOKING_CANCELLED": "cancelled",
}

BOOKINGS_CURRENT_COMMENT = (
    "One row per booking with its latest state, from the booking_events table."
    " status: created, modified, checked_in, checked_out or cancelled (the last"
    " lifecycle step; ROOM_ASSIGNED does not change it). Terms (dates, guests,"
    " meal plan, room type, average_daily_rate, currency) are the latest any event"
    " set. assigned_room_type: the room type last assigned or checked into;"
    " room_changed: a room other than the booked type was assigned. nights_booked"
    " and expected_amount (average_daily_rate x nights_booked) follow the latest"
    " dates; total_amount and cancellation_fee are set once checked out or"
    " cancelled. last_seq and events count the history; created_at and updated_at"
    " are the first and last occurred_at (UTC)."
)

STAYS_COMMENT = (
    "Checked-out bookings, one row each: nights stayed and revenue (total_amount"
    " charged at check-out, in currency), revenue_per_night, the guests and room"
    " type checked in, room_changed, checked_in_at and checked_out_at (UTC)."
)


def bookings_current_sql(database: str, table: str) -> str:
    """Return the CREATE OR REPLACE VIEW statement of ``bookings_current``."""
    latest = ",\n        ".join(
        f"argMaxIf({name}, seq, {name} IS NOT NULL) AS latest_{name}" for name in LATEST
    )
    renamed = ",\n    ".join(f"latest_{name} AS {name}" for name in LATEST)
    status = ", ".join(
        f"last_step = {quote_string(step)}, {quote_string(name)}"
        for step, name in STATUS.items()
    )
    return f"""CREATE OR REPLACE VIEW {qualified(database, "bookings_current")} AS
SELECT
    booking_id,
    multiIf({status}, lower(last_step)) AS status,
    {renamed},
    assigned_room_type,
    room_assignments > 0
        OR (assigned_room_type IS NOT NULL
            AND assigned_room_type != latest_reserved_room_type) AS room_changed,
    dateDiff('day', latest_arrival_date, latest_departure_date) AS nights_booked,
    latest_average_daily_rate * nights_booked AS expected_amount,
    nights_stayed,
    checked_in_at,
    checked_out_at,
    last_seq,
    events,
    created_at,
    updated_at
FROM
(
    SELECT
        booking_id,
        argMaxIf(event_type, seq, event_type != 'ROOM_ASSIGNED') AS last_step,
        {latest},
        argMaxIf(room_type, seq, room_type IS NOT NULL) AS assigned_room_type,
        countIf(event_type = 'ROOM_ASSIGNED') AS room_assignments,
        argMaxIf(nights, seq, nights IS NOT NULL) AS nights_stayed,
        maxIfOrNull(occurred_at, event_type = 'GUEST_CHECKED_IN') AS checked_in_at,
        maxIfOrNull(occurred_at, event_type = 'GUEST_CHECKED_OUT') AS checked_out_at,
        max(seq) AS last_seq,
        uniqExact(event_id) AS events,
        min(occurred_at) AS created_at,
        max(occurred_at) AS updated_at
    FROM {qualified(database, table)}
    GROUP BY booking_id
)
COMMENT {quote_string(BOOKINGS_CURRENT_COMMENT)}"""


def stays_sql(database: str) -> str:
    """Return the CREATE OR REPLACE VIEW statement of ``stays``."""
    return f"""CREATE OR REPLACE VIEW {qualified(database, "stays")} AS
SELECT
    booking_id,
    hotel,
    arrival_date,
    departure_date,
    nights_stayed AS nights,
    total_amount AS revenue,
    currency,
    if(nights > 0, revenue / nights, NULL) AS revenue_per_night,
    adults,
    children,
    babies,
    reserved_room_type,
    assigned_room_type AS room_type,
    room_changed,
    checked_in_at,
    checked_out_at
FROM {qualified(database, "bookings_current")}
WHERE status = 'checked_out'
COMMENT {quote_string(STAYS_COMMENT)}"""


def ensure_views(client: Any, database: str, table: str) -> None:
    """Create or replace the analysts' views over ``database.table``."""
    client.command(bookings_current_sql(database, table))
    client.command(stays_sql(database))
