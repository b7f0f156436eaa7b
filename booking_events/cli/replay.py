"""``booking-events replay``: publish the hotel_rates lifecycles."""

from __future__ import annotations

import click

from booking_events import metrics
from producers import BookingEventProducer
from producers.hotel_rates import events_in_time_order, load_bookings
from producers.loadgen import with_copies
from producers.replay import replay


@click.command("replay")
@click.option(
    "--bookings",
    "limit",
    type=click.IntRange(min=1),
    default=None,
    help="Replay only the first N bookings (default: all 15,402).",
)
@click.option(
    "--copies",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Add N synthetic copies of each booking (new ids, dates +52 weeks each).",
)
@click.option("--rate", "rate_eps", type=float, default=None, help="Events per second.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def command(
    limit: int | None, copies: int, rate_eps: float | None, progress: bool
) -> None:
    """Turn each real booking into its lifecycle events and produce them in time
    order, keyed by booking id."""
    metrics.serve(role="replay")
    bookings = load_bookings()[:limit]
    events = events_in_time_order(with_copies(bookings, copies))
    with BookingEventProducer() as producer:
        sent = replay(producer, events, rate_eps=rate_eps, progress=progress)
        click.echo(f"produced={sent} topic={producer.topic}")
