"""The faust application: read raw events, judge them, route them.

One agent reads the raw topic as bytes and hands each record to
``router.EventRouter``, which decodes it, judges it against the booking's state
in a changelog-backed table, and writes it to the validated or the dead-letter
topic, to the same partition number it was read from: the booking stays on one
partition number end to end and, under exactly-once (the default), the output,
the state and the source offset commit in one Kafka transaction.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from confluent_kafka.schema_registry import SchemaRegistryClient
from mode import CrashingSupervisor

from booking_events import metrics
from booking_events.settings import (
    KafkaSettings,
    MetricsSettings,
    RegistrySettings,
    TopicSettings,
)
from processors import faust_fixes
from processors.broker import broker_options
from processors.config import ProcessorSettings
from processors.preflight import output_limits
from processors.router import EventRouter
from processors.rules import DEAD_LETTER_REASONS
from processors.sensors import CommitSensor, partition_lags
from schemas import EventDeserializer

log = logging.getLogger(__name__)

__all__ = ["STATE_TABLE", "EventRouter", "create_app"]

STATE_TABLE = "booking-state"
"""Name of the state table; faust names its changelog ``<app_id>-<name>-changelog``."""

STATS_INTERVAL_S = 30.0


def create_app(
    settings: ProcessorSettings,
    kafka: KafkaSettings,
    registry: RegistrySettings,
    topics: TopicSettings,
    metrics_settings: MetricsSettings | None = None,
) -> faust.App:
    """Build the faust app; nothing connects until a worker starts it.

    The app records Prometheus metrics; serving them is the caller's part
    (``booking_events.metrics.serve``).
    """
    metrics_settings = metrics_settings or MetricsSettings()
    faust_fixes.apply()
    app = faust.App(
        settings.app_id,
        **broker_options(kafka),
        autodiscover=False,
        agent_supervisor=CrashingSupervisor,
        processing_guarantee=settings.processing_guarantee,
        datadir=str(settings.data_dir),
        store="memory://",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_max_poll_records=settings.max_poll_records,
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_request_timeout=settings.delivery_timeout_s,
        # Faust creates only its own topics (the changelog), like this.
        topic_partitions=topics.partitions,
        topic_replication_factor=topics.replication_factor,
        topic_disable_leader=True,
        web_enabled=settings.web_port is not None,
        web_port=settings.web_port or 6066,
        web_bind=settings.web_bind,
    )

    # Declared, never created by faust (internal=False): the topics command
    # owns them and their partition counts.
    raw = app.topic(
        topics.raw,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=topics.partitions,
        internal=False,
    )
    # Keys and values are bytes (raw codec) that the router encodes itself.
    # Held in memory, one entry per booking ever seen and never evicted: about
    # 300 bytes per booking, so the worker's memory grows with the number of
    # bookings (the soak: +5.2 MiB/min at 1,036 events/s). Expiring finished
    # bookings is open work (#5).
    table = app.Table(
        STATE_TABLE,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=topics.partitions,
        help="Per-booking state (last_seq, flags, recent event ids) and the"
        " processed offset of each source partition.",
    )
    registry_conf = {
        **registry.client_config(),
        "timeout": settings.registry_timeout_s,
        # Retries are ours (with backoff, off the event loop); see decode().
        "max.retries": 0,
    }
    router = EventRouter(
        app,
        table,
        EventDeserializer(SchemaRegistryClient(registry_conf)),
        settings,
        topics,
    )

    async def process(stream: faust.StreamT[bytes]) -> None:
        limits = await asyncio.to_thread(output_limits, kafka, topics)
        router.set_limits(limits, app.conf.producer_max_request_size)
        log.info("output size limits (bytes): %s", router.limits)
        # Acks are manual: an offset is acked when its effects are written.
        # (noack() is on faust.Stream; the StreamT interface omits it.)
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            await router.handle(event)

    async def log_stats() -> None:
        router.log_stats(STATS_INTERVAL_S)

    for reason in DEAD_LETTER_REASONS:
        metrics.PROCESSOR_DEAD_LETTERED.labels(reason)
    lag = metrics.LagGauge(settings.app_id, topics.raw, 0)

    async def refresh_lag() -> None:
        try:
            lag.update(partition_lags(app, topics.raw))
        except Exception as exc:  # the consumer is not started yet, or stopping
            log.debug("consumer lag not refreshed: %r", exc)

    app.agent(raw, name="route")(process)
    app.timer(STATS_INTERVAL_S)(log_stats)
    app.timer(metrics_settings.lag_interval_s)(refresh_lag)
    app.sensors.add(CommitSensor())
    return app
