"""Prometheus metrics of every stage, and the /metrics endpoint that serves them.

The metrics live in prometheus-client's default registry. The stages only
record into them (the producer library never opens a port on its own); each
long-running command (``process``, ``sink``, ``replay``, ``pipeline``) calls
:func:`serve` once, which serves ``/metrics`` on ``BOOKING_EVENTS_METRICS_PORT``
when it is set.

Labels are bounded: topics, outcomes, reason codes, error kinds, partitions;
never a booking id or an event id. Hot paths bind their labels once
(``.labels(...)`` in a constructor) and then only call ``inc()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from booking_events.exceptions import ConfigurationError
from booking_events.settings import MetricsSettings

log = logging.getLogger(__name__)

# Processor (processors/router.py).
PROCESSOR_EVENTS_IN = Counter(
    "booking_events_processor_events_in",
    "Records the processor read from the raw topic.",
    ["topic"],
)
PROCESSOR_EVENTS_OUT = Counter(
    "booking_events_processor_events_out",
    "Records the processor wrote, by output topic and outcome"
    " (validated, dead_lettered).",
    ["topic", "outcome"],
)
PROCESSOR_DEAD_LETTERED = Counter(
    "booking_events_processor_dead_lettered",
    "Records the processor sent to the dead-letter topic, by dlq.reason.",
    ["reason"],
)
PROCESSOR_DUPLICATES_DROPPED = Counter(
    "booking_events_processor_duplicates_dropped",
    "Repeats of an accepted event (same event_id) dropped without output.",
)
PROCESSOR_ALREADY_PROCESSED = Counter(
    "booking_events_processor_already_processed",
    "Records read again after a restart whose effects were already committed.",
)
PROCESSOR_COMMITS = Counter(
    "booking_events_processor_commits",
    "Commits that moved a source offset; under exactly_once each one commits"
    " the Kafka transactions of the partitions it covers.",
)

# Sink (sinks/connector.py, sinks/flush.py, sinks/retry.py).
SINK_EVENTS_IN = Counter(
    "booking_events_sink_events_in",
    "Records the sink read from the validated topic.",
    ["topic"],
)
SINK_ROWS_INSERTED = Counter(
    "booking_events_sink_rows_inserted",
    "Rows the sink sent to ClickHouse in inserts.",
)
SINK_ALREADY_STORED = Counter(
    "booking_events_sink_already_stored",
    "Pending records left out of an insert because ClickHouse held them already.",
)
SINK_DEAD_LETTERED = Counter(
    "booking_events_sink_dead_lettered",
    "Records the sink sent to the dead-letter topic, by dlq.reason.",
    ["reason"],
)
SINK_BATCH_SIZE = Histogram(
    "booking_events_sink_batch_size_rows",
    "Rows pending in one flush.",
    buckets=(1, 10, 50, 100, 500, 1000, 2500, 5000, 10_000, 25_000, 100_000),
)
SINK_INSERT_DURATION = Histogram(
    "booking_events_sink_insert_duration_seconds",
    "Time of one insert (one block) into ClickHouse, retries included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SINK_RETRIES = Counter(
    "booking_events_sink_retries",
    "ClickHouse or registry calls retried after a retriable error, by error class.",
    ["error"],
)
SINK_COMMITS = Counter(
    "booking_events_sink_commits",
    "Offset commits of the sink (each after ClickHouse held the rows).",
)
SINK_ROUNDS_REPEATED = Counter(
    "booking_events_sink_rounds_repeated",
    "Flush rounds repeated because another sink stored some records first.",
)
SINK_LAST_FLUSH = Gauge(
    "booking_events_sink_last_flush_timestamp_seconds",
    "When the sink last stored a flush, seconds since the epoch.",
)
SINK_NEWEST_EVENT = Gauge(
    "booking_events_sink_newest_event_timestamp_seconds",
    "Newest occurred_at this sink stored, seconds since the epoch; freshness is"
    " time() minus this.",
)

# Producer (producers/producer.py).
PRODUCER_EVENTS_PRODUCED = Counter(
    "booking_events_producer_events_produced",
    "Events Kafka acknowledged.",
    ["topic"],
)
PRODUCER_ERRORS = Counter(
    "booking_events_producer_produce_errors",
    "Events not produced, by kind: a librdkafka error name (delivery failed),"
    " encode, buffer_full or flush_timeout.",
    ["topic", "error"],
)
PRODUCER_BUFFER_FULL_WAITS = Counter(
    "booking_events_producer_buffer_full_waits",
    "emit() calls that had to wait for room in a full send buffer.",
    ["topic"],
)

# Consumers (processor and sink).
CONSUMER_LAG = Gauge(
    "booking_events_consumer_lag_records",
    "High watermark minus the consumer's position, per assigned partition;"
    " refreshed every BOOKING_EVENTS_METRICS_LAG_INTERVAL_S.",
    ["group", "topic", "partition"],
)

ALL = (
    PROCESSOR_EVENTS_IN,
    PROCESSOR_EVENTS_OUT,
    PROCESSOR_DEAD_LETTERED,
    PROCESSOR_DUPLICATES_DROPPED,
    PROCESSOR_ALREADY_PROCESSED,
    PROCESSOR_COMMITS,
    SINK_EVENTS_IN,
    SINK_ROWS_INSERTED,
    SINK_ALREADY_STORED,
    SINK_DEAD_LETTERED,
    SINK_BATCH_SIZE,
    SINK_INSERT_DURATION,
    SINK_RETRIES,
    SINK_COMMITS,
    SINK_ROUNDS_REPEATED,
    SINK_LAST_FLUSH,
    SINK_NEWEST_EVENT,
    PRODUCER_EVENTS_PRODUCED,
    PRODUCER_ERRORS,
    PRODUCER_BUFFER_FULL_WAITS,
    CONSUMER_LAG,
)

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def sample_names() -> set[str]:
    """Every series name the metrics above expose (``..._total``, ``..._bucket``)."""
    names: set[str] = set()
    for metric in ALL:
        for family in metric.describe():
            names.update(family.name + s for s in _SUFFIXES[family.type])
    return names


class LagGauge:
    """Lag per partition of one consumer group and topic, refreshed on a timer.

    ``due()`` says when to refresh; ``update()`` sets the partitions given and
    removes those no longer assigned, so a revoked partition does not keep
    reporting its last lag.
    """

    def __init__(self, group: str, topic: str, interval_s: float) -> None:
        self._group = group
        self._topic = topic
        self._interval_s = interval_s
        self._next = 0.0
        self._partitions: set[int] = set()

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval_s
        return True

    def update(self, lags: Mapping[int, int]) -> None:
        for partition, lag in lags.items():
            CONSUMER_LAG.labels(self._group, self._topic, str(partition)).set(lag)
        self.forget(self._partitions - set(lags))
        self._partitions = set(lags)

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            try:
                CONSUMER_LAG.remove(self._group, self._topic, str(partition))
            except KeyError:
                pass


def serve(settings: MetricsSettings | None = None, *, role: str) -> int | None:
    """Serve /metrics on the configured port (in a daemon thread); 0: none.

    Returns the port served, or None.

    Raises:
        ConfigurationError: The port cannot be bound (in use, or privileged).
    """
    settings = settings or MetricsSettings()
    if not settings.port:
        log.debug("metrics endpoint off (BOOKING_EVENTS_METRICS_PORT unset or 0)")
        return None
    try:
        start_http_server(settings.port, addr=settings.bind)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {settings.bind}:{settings.port} ({exc}):"
            " processes on one host need distinct BOOKING_EVENTS_METRICS_PORT"
            " values; 0 turns the endpoint off"
        ) from exc
    log.info(
        "serving metrics",
        extra={"role": role, "url": f"http://{settings.bind}:{settings.port}/metrics"},
    )
    return settings.port
