"""Emit a sequence of events through the producer, in order, with progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tqdm import tqdm

from producers.producer import BookingEventProducer
from schemas import BookingEvent

log = logging.getLogger(__name__)


def replay(
    producer: BookingEventProducer,
    events: Sequence[BookingEvent],
    *,
    rate_eps: float | None = None,
    progress: bool = True,
) -> int:
    """Emit ``events`` in the given order and flush; return how many were sent.

    Args:
        rate_eps: Emit at most this many events per second (None: as fast as
            Kafka takes them).
        progress: Show a progress bar on stderr.

    Raises:
        DeliveryError: Kafka refused some events; they are named inside.
    """
    started = time.monotonic()
    bar = tqdm(
        total=len(events), unit="ev", desc="replay", disable=not progress, smoothing=0.1
    )
    with bar:
        for n, event in enumerate(events, start=1):
            producer.emit(event)
            if n % 1000 == 0:
                bar.update(1000)
            if rate_eps:
                # Sleep off any lead over the target schedule.
                ahead = n / rate_eps - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        bar.update(len(events) % 1000)
        producer.flush()
    elapsed = time.monotonic() - started
    log.info(
        "replayed",
        extra={
            "topic": producer.topic,
            "events": len(events),
            "seconds": round(elapsed, 1),
            "rate_eps": round(len(events) / elapsed) if elapsed else 0,
        },
    )
    return len(events)
