"""The faust application: read raw events, judge them, route them.

One agent reads the raw topic as bytes. Each record is decoded, judged
(``routing.judge``) against the booking's state in a changelog-backed table,
and written to the validated or the dead-letter topic, to the same partition
number it was read from: the booking stays on one partition number end to end
and, under exactly-once, the output joins the transaction of its source
partition.

A source offset is acknowledged only once Kafka has acknowledged its output,
so a committed offset always has its output record. Outputs that Kafka refuses
stop the worker; the event is re-read after the restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from functools import partial
from typing import Any

import faust
from confluent_kafka.schema_registry import SchemaRegistryClient
from mode import CrashingSupervisor

from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
from processors.broker import broker_options
from processors.config import ProcessorSettings
from processors.exceptions import DeliveryError
from processors.ordering import BookingState
from processors.routing import (
    SourceRecord,
    dead_letter_headers,
    judge,
    validated_headers,
)
from processors.rules import Violation
from schemas import BookingEvent, EventDecodeError, EventDeserializer
from schemas.exceptions import RegistryUnavailableError

log = logging.getLogger(__name__)

STATE_TABLE = "booking-state"
"""Name of the state table; faust names its changelog ``<app_id>-<name>-changelog``."""

STATS_INTERVAL_S = 30.0


class EventRouter:
    """Decodes, judges and sends one raw record at a time.

    Args:
        app: The faust app whose producer writes the outputs.
        table: The booking state table (booking_id -> ``BookingState.to_dict()``).
        deserializer: Decoder of the raw bytes.
        settings: Processor settings (retry timings, app id).
        topics: Names of the output topics.
    """

    def __init__(
        self,
        app: faust.App,
        table: Any,
        deserializer: EventDeserializer,
        settings: ProcessorSettings,
        topics: TopicSettings,
    ) -> None:
        self._app = app
        self._table = table
        self._deserializer = deserializer
        self._settings = settings
        self._topics = topics
        self._crash: asyncio.Future[None] | None = None
        self.counts: Counter[str] = Counter()

    async def handle(self, event: faust.types.EventT) -> None:
        """Route one stream event; its offset is acked once its output is written."""
        source = _source_of(event.message)

        decoded = await self.decode(source)
        if decoded is None:
            # Stopping while the registry is down: leave the offset uncommitted
            # and tell the consumer not to wait for it, so shutdown completes.
            self._app.consumer.unacked.discard(event.message)
            log.warning(
                "stopping before %s could be decoded; its offset is not committed"
                " and it will be read again after the restart",
                source.coordinates(),
            )
            return
        if isinstance(decoded, EventDecodeError):
            violations: tuple[Violation, ...] = (
                Violation(decoded.reason, str(decoded)),
            )
            delivery = await self._dead_letter(source, violations, event_id=None)
        else:
            delivery = await self._route(source, decoded)

        delivery.add_done_callback(partial(self._on_delivered, event, source))

    async def decode(
        self, source: SourceRecord
    ) -> BookingEvent | EventDecodeError | None:
        """Decode the record; retry while the registry is unavailable.

        Returns the event, or the decode error of bad bytes (for the dead-letter
        topic), or None when the worker stops before the registry is back. The
        first attempt runs inline (the registry client caches schemas, so it
        rarely does I/O); retries run in a thread so the worker keeps its
        heartbeats while the registry is down.
        """
        delay_ms = self._settings.registry_retry_initial_ms
        attempt = 0
        while True:
            try:
                if attempt == 0:
                    return self._deserializer.event(source.value, source.topic)
                return await asyncio.to_thread(
                    self._deserializer.event, source.value, source.topic
                )
            except EventDecodeError as exc:
                return exc
            except RegistryUnavailableError as exc:
                attempt += 1
                log.warning(
                    "schema registry unavailable decoding %s (attempt %s): %s;"
                    " partition paused, retrying in %s ms",
                    source.coordinates(),
                    attempt,
                    exc,
                    delay_ms,
                )
                if not await self._sleep_unless_stopping(delay_ms / 1000):
                    return None
                delay_ms = min(delay_ms * 2, self._settings.registry_retry_max_ms)

    async def _sleep_unless_stopping(self, seconds: float) -> bool:
        """Sleep; return False as soon as the app is stopping."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self._stopping():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, 0.25))
        return False

    def _stopping(self) -> bool:
        return self._app is not None and bool(self._app.should_stop)

    async def _route(
        self, source: SourceRecord, event: BookingEvent
    ) -> asyncio.Future[Any]:
        previous = BookingState.from_dict(self._table.get(event.booking_id))
        verdict = judge(source, event, previous)
        if not verdict.valid:
            return await self._dead_letter(
                source, verdict.violations, event_id=str(event.event_id)
            )

        if verdict.state is not None:
            self._table[event.booking_id] = verdict.state.to_dict()
        else:
            self.counts["repeated"] += 1
            log.debug(
                "repeated delivery of event %s (booking %s seq %s) at %s;"
                " passed on again",
                event.event_id,
                event.booking_id,
                event.seq,
                source.coordinates(),
            )
        self.counts["validated"] += 1
        return await self._send(
            self._topics.validated,
            source,
            validated_headers(source, event),
            timestamp=source.timestamp,
        )

    async def _dead_letter(
        self,
        source: SourceRecord,
        violations: Sequence[Violation],
        *,
        event_id: str | None,
    ) -> asyncio.Future[Any]:
        log.debug(
            "dead-lettering %s: %s (%s)",
            source.coordinates(),
            violations[0].code,
            violations[0].detail,
        )
        self.counts[f"dlq.{violations[0].code}"] += 1
        self.counts["dead_lettered"] += 1
        headers = dead_letter_headers(
            source, violations, processor=self._settings.app_id, event_id=event_id
        )
        return await self._send(self._topics.dead_letter, source, headers)

    async def _send(
        self,
        topic: str,
        source: SourceRecord,
        headers: list[tuple[str, bytes]],
        *,
        timestamp: float | None = None,
    ) -> asyncio.Future[Any]:
        # Faust's own transactional send picks the transaction from the output
        # topic's group, which only knows consumed topics; name the source
        # partition's transaction here instead.
        transactional_id = None
        if self._app.in_transaction:
            group = self._app.assignor.group_for_topic(source.topic)
            transactional_id = f"{self._app.conf.id}-{group}-{source.partition}"
        delivery: Awaitable[Any] = await self._app.producer.send(
            topic,
            source.key,
            source.value,
            source.partition,
            timestamp,
            headers,
            transactional_id=transactional_id,
        )
        return asyncio.ensure_future(delivery)

    def _on_delivered(
        self,
        event: faust.types.EventT,
        source: SourceRecord,
        delivery: asyncio.Future[Any],
    ) -> None:
        if not delivery.cancelled() and delivery.exception() is None:
            event.ack()
            return

        cause = None if delivery.cancelled() else delivery.exception()
        log.error(
            "output of %s was not acknowledged by Kafka: %r; offset not committed,"
            " stopping the worker so the event is re-read after a restart",
            source.coordinates(),
            cause,
        )
        if self._crash is None:
            error = DeliveryError(
                f"output not acknowledged: {cause!r}",
                topic=source.topic,
                partition=source.partition,
                offset=source.offset,
            )
            self._crash = asyncio.ensure_future(self._app.crash(error))

    def log_stats(self, interval_s: float) -> None:
        """Log what was routed since the last call, then reset the counters."""
        total = self.counts["validated"] + self.counts["dead_lettered"]
        if not total:
            return
        reasons = ", ".join(
            f"{k[4:]}={v}" for k, v in sorted(self.counts.items()) if k[:4] == "dlq."
        )
        log.info(
            "routed %s events in %.0f s (%.0f/s): validated=%s (repeated=%s)"
            " dead_lettered=%s [%s]",
            total,
            interval_s,
            total / interval_s,
            self.counts["validated"],
            self.counts["repeated"],
            self.counts["dead_lettered"],
            reasons,
        )
        self.counts.clear()


def create_app(
    settings: ProcessorSettings,
    kafka: KafkaSettings,
    registry: RegistrySettings,
    topics: TopicSettings,
) -> faust.App:
    """Build the faust app; nothing connects until a worker starts it."""
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
    table = app.Table(
        STATE_TABLE,
        default=None,
        partitions=topics.partitions,
        help="Per-booking state: last_seq, checked_in, cancelled, event_ids.",
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
        # Acks are manual: an offset is acked when its output is written.
        # (noack() is on faust.Stream; the StreamT interface omits it.)
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            await router.handle(event)

    async def log_stats() -> None:
        router.log_stats(STATS_INTERVAL_S)

    app.agent(raw, name="route")(process)
    app.timer(STATS_INTERVAL_S)(log_stats)
    return app


def _source_of(message: faust.types.Message) -> SourceRecord:
    headers = message.headers or []
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple(headers),
        timestamp=message.timestamp,
    )
