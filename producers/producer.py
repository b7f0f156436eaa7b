"""The library booking code calls to publish events.

    with BookingEventProducer() as producer:
        producer.emit(BookingCreated(booking_id="B-1", seq=1, occurred_at=now, ...))

``emit`` encodes the event (Confluent wire format, schema from the registry)
and hands it to an idempotent Kafka producer (``acks=all``), keyed by
``booking_id`` so that one booking's events share a partition and keep their
order. It returns as soon as the event is buffered; delivery is confirmed in
the background. Every failed delivery is reported with its event id: to
``on_delivery_error`` when given, and always by the next ``flush()`` or
``close()``, which raise ``DeliveryError``. Nothing is lost without a trace.

The producer counts what it sends in Prometheus metrics
(``booking_events_producer_*``, see ``booking_events.metrics``) in the default
registry; it never opens a port: the application embedding it serves them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from booking_events import metrics
from booking_events.logs import KAFKA_CLIENT_LOG
from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
from producers.config import ProducerSettings
from producers.exceptions import (
    BufferFullError,
    DeliveryError,
    FailedDelivery,
    ProducerClosedError,
)
from schemas import BookingEvent, EventEncodeError, EventSerializer

log = logging.getLogger(__name__)

DeliveryErrorHandler = Callable[[FailedDelivery], None]


class BookingEventProducer:
    """Publishes booking events to the raw topic.

    Args:
        kafka, registry, topics, settings: Configuration; each defaults to the
            ``BOOKING_EVENTS_*`` environment.
        on_delivery_error: Called (from ``emit``/``flush``/``close``, in the
            caller's thread) for each event Kafka did not accept.
        handle_sigterm: On SIGTERM, flush pending events before the process
            ends. Only takes effect when started from the main thread.
    """

    def __init__(
        self,
        kafka: KafkaSettings | None = None,
        registry: RegistrySettings | None = None,
        topics: TopicSettings | None = None,
        settings: ProducerSettings | None = None,
        *,
        on_delivery_error: DeliveryErrorHandler | None = None,
        handle_sigterm: bool = True,
    ) -> None:
        self._kafka = kafka or KafkaSettings()
        self._registry = registry or RegistrySettings()
        self._topic = (topics or TopicSettings()).raw
        self._settings = settings or ProducerSettings()
        self._on_delivery_error = on_delivery_error
        self._handle_sigterm = handle_sigterm
        self._producer: Producer | None = None
        self._serializer: EventSerializer | None = None
        self._failures: list[FailedDelivery] = []
        # event id -> booking id of every event handed to Kafka and not yet
        # confirmed or failed; bounded by buffer_max_messages.
        self._pending: dict[str, str] = {}
        self._lock = threading.Lock()
        self._previous_sigterm: Any = None
        self.delivered = 0
        """Events Kafka confirmed since start."""
        self._produced = metrics.PRODUCER_EVENTS_PRODUCED.labels(self._topic)
        self._buffer_full_waits = metrics.PRODUCER_BUFFER_FULL_WAITS.labels(self._topic)

    @property
    def topic(self) -> str:
        """The topic events go to."""
        return self._topic

    def start(self) -> None:
        """Connect the Kafka producer and the registry client."""
        if self._producer is not None:
            return
        conf = {
            **self._kafka.librdkafka(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": self._settings.linger_ms,
            "compression.type": self._settings.compression,
            "queue.buffering.max.messages": self._settings.buffer_max_messages,
            "delivery.timeout.ms": self._settings.delivery_timeout_ms,
            # Same key -> same partition as the Java client and faust.
            "partitioner": "murmur2_random",
            "logger": KAFKA_CLIENT_LOG,
        }
        self._producer = Producer(conf)
        # new_client: a mock:// URL gives the in-process registry (unit tests).
        registry = SchemaRegistryClient.new_client(self._registry.client_config())
        self._serializer = EventSerializer(
            registry, auto_register=self._settings.auto_register_schema
        )
        if (
            self._handle_sigterm
            and threading.current_thread() is threading.main_thread()
        ):
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        log.info(
            "producer started",
            extra={"topic": self._topic, "bootstrap": self._kafka.bootstrap_servers},
        )

    def emit(self, event: BookingEvent) -> None:
        """Encode ``event`` and queue it for Kafka.

        Blocks while the buffer is full, up to ``buffer_full_timeout_ms``.

        Raises:
            EventEncodeError: The event does not fit the contract; not sent.
            BufferFullError: The buffer stayed full; not sent, may be retried.
            ProducerClosedError: The producer is not started or is closed.
        """
        producer, serializer = self._require_started()
        if not event.source:
            event = event.with_source(self._settings.source)
        try:
            value = serializer.serialize(event, self._topic)
        except EventEncodeError:
            self._count_error("encode")
            raise
        event_id = str(event.event_id)
        headers: list[tuple[str, str | bytes | None]] = [
            ("event_type", event.event_type.value.encode())
        ]

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            self._pending.pop(event_id, None)
            if err is None:
                self.delivered += 1
                self._produced.inc()
                return
            self._count_error(err.name())
            self._record_failure(
                FailedDelivery(
                    event_id=event_id,
                    booking_id=event.booking_id,
                    topic=self._topic,
                    error=err.str(),
                    retriable=err.retriable(),
                )
            )

        deadline = time.monotonic() + self._settings.buffer_full_timeout_ms / 1000
        waited = False
        while True:
            try:
                producer.produce(
                    self._topic,
                    key=event.booking_id.encode(),
                    value=value,
                    headers=headers,
                    on_delivery=on_delivery,
                )
                self._pending[event_id] = event.booking_id
                break
            except BufferError:
                # Back-pressure: serve delivery reports until there is room.
                if not waited:
                    waited = True
                    self._buffer_full_waits.inc()
                if time.monotonic() >= deadline:
                    self._count_error("buffer_full")
                    raise BufferFullError(
                        f"send buffer full for {self._settings.buffer_full_timeout_ms}"
                        f" ms (is Kafka reachable at {self._kafka.bootstrap_servers}?);"
                        " the event was not sent",
                        event_id=event_id,
                    ) from None
                producer.poll(0.05)
        producer.poll(0)
        self._report_failures(raise_error=False)

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued event is confirmed or failed.

        Raises:
            DeliveryError: Events failed since the last flush; named inside.
        """
        producer, _ = self._require_started()
        timeout = (
            self._settings.close_timeout_ms / 1000 if timeout_s is None else timeout_s
        )
        remaining = producer.flush(timeout)
        if remaining:
            self._count_error("flush_timeout", remaining)
            log.error(
                "flush timed out with %s event(s) unconfirmed after %.1f s",
                remaining,
                timeout,
                extra={"topic": self._topic},
            )
        if remaining:
            # Not confirmed in time: name each one. Kafka may still take some of
            # them later; emitting them again is safe for consumers that drop
            # repeats by event id, as the processor does.
            error = f"not confirmed within the {timeout:.1f} s flush timeout"
            for event_id, booking_id in list(self._pending.items()):
                self._record_failure(
                    FailedDelivery(
                        event_id=event_id,
                        booking_id=booking_id,
                        topic=self._topic,
                        error=error,
                        retriable=True,
                    )
                )
            self._pending.clear()
        self._report_failures(raise_error=True)

    def close(self) -> None:
        """Flush and release the producer. Safe to call twice."""
        if self._producer is None:
            return
        try:
            self.flush()
        finally:
            self._producer = None
            self._serializer = None
            if self._previous_sigterm is not None:
                if threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None
            log.info(
                "producer closed",
                extra={"topic": self._topic, "delivered": self.delivered},
            )

    def __enter__(self) -> BookingEventProducer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _require_started(self) -> tuple[Producer, EventSerializer]:
        if self._producer is None or self._serializer is None:
            raise ProducerClosedError("producer is not started: call start() first")
        return self._producer, self._serializer

    def _count_error(self, kind: str, events: int = 1) -> None:
        metrics.PRODUCER_ERRORS.labels(self._topic, kind).inc(events)

    def _record_failure(self, failure: FailedDelivery) -> None:
        log.error(
            "delivery failed: %s",
            failure.error,
            extra={
                "topic": failure.topic,
                "event_id": failure.event_id,
                "booking_id": failure.booking_id,
            },
        )
        with self._lock:
            self._failures.append(failure)

    def _report_failures(self, *, raise_error: bool) -> None:
        with self._lock:
            if not self._failures:
                return
            if not raise_error and self._on_delivery_error is None:
                return
            failures, self._failures = self._failures, []
        if self._on_delivery_error is not None:
            for failure in failures:
                self._on_delivery_error(failure)
        elif raise_error:
            raise DeliveryError(failures)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        log.info("SIGTERM: flushing pending events before exit")
        previous = self._previous_sigterm
        try:
            self.close()
        except DeliveryError:
            log.exception("events failed while flushing on SIGTERM")
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
