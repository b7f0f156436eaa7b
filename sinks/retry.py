"""Retry with exponential backoff, bounded in time, deciding by ``retriable``."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from booking_events import metrics
from sinks.config import SinkSettings
from sinks.exceptions import RetriesExhaustedError, classify

log = logging.getLogger(__name__)

T = TypeVar("T")


def retry(what: str, call: Callable[[], T], settings: SinkSettings) -> T:
    """Return ``call()``, retrying while it fails with a retriable error.

    Pauses start at ``insert_backoff_initial_ms``, double up to
    ``insert_backoff_max_ms`` (with up to 20 % jitter, so several sinks do not
    retry in step) and stop after ``insert_retry_max_s``.

    Args:
        what: The operation, for messages ("insert 500 rows of t[3] ...").
        call: The operation itself.
        settings: The retry budget and backoff.

    Raises:
        BookingEventsError: The classified error when it is terminal.
        RetriesExhaustedError: A retriable error lasted past the budget.
    """
    budget_s = settings.insert_retry_max_s
    delay_s = settings.insert_backoff_initial_ms / 1000
    max_delay_s = settings.insert_backoff_max_ms / 1000
    deadline = time.monotonic() + budget_s
    attempt = 1
    while True:
        try:
            return call()
        except Exception as exc:
            error = classify(exc, what=what)
            if not error.retriable:
                raise error from exc

            pause = delay_s * random.uniform(0.8, 1.0)
            if time.monotonic() + pause > deadline:
                raise RetriesExhaustedError(
                    f"{error}; still failing after {attempt} attempts in"
                    f" {budget_s:g} s (insert_retry_max_s): offsets not committed,"
                    " the events stay in Kafka"
                ) from exc
            metrics.SINK_RETRIES.labels(type(error).__name__).inc()
            log.warning(
                "unavailable, retrying in %.1f s: %s",
                pause,
                error,
                extra={"attempt": attempt, "operation": what},
            )
            time.sleep(pause)
            delay_s = min(delay_s * 2, max_delay_s)
            attempt += 1
