"""Sends records the sink cannot decode to the dead-letter topic.

The record goes unchanged (key, value, original headers) with ``dlq.*``
headers saying why and where it came from. The sink commits an offset past
such a record only after :meth:`DeadLetterSender.confirm` has seen Kafka
acknowledge every record sent so far, so a crash in between sends it again
rather than losing it.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from booking_events import metrics
from booking_events.logs import KAFKA_CLIENT_LOG
from booking_events.settings import KafkaSettings
from sinks.exceptions import DeadLetterError

log = logging.getLogger(__name__)

REASON = "sink_decode_failed"
"""``dlq.reason`` of records the sink could not decode."""


class DeadLetterSender:
    """An idempotent producer for the dead-letter topic, created on first use.

    Args:
        kafka: Brokers and security.
        topic: The dead-letter topic.
        delivery_timeout_ms: How long a delivery may take before it fails.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, delivery_timeout_ms: int):
        self._kafka = kafka
        self._topic = topic
        self._delivery_timeout_ms = delivery_timeout_ms
        self._producer: Producer | None = None
        self._in_flight = 0
        self._failures: list[str] = []

    def send(self, msg: Message, detail: str) -> None:
        """Queue ``msg`` for the dead-letter topic with the reason headers."""
        if self._producer is None:
            self._producer = Producer(
                {
                    **self._kafka.librdkafka(),
                    "enable.idempotence": True,
                    "acks": "all",
                    "delivery.timeout.ms": self._delivery_timeout_ms,
                    "logger": KAFKA_CLIENT_LOG,
                }
            )
        original = msg.headers() or []
        headers: list[tuple[str, Any]] = list(
            original.items() if isinstance(original, dict) else original
        )
        headers += [
            ("dlq.reason", REASON.encode()),
            ("dlq.detail", detail[:1000].encode()),
            ("dlq.stage", b"sink"),
            ("dlq.source.topic", str(msg.topic()).encode()),
            ("dlq.source.partition", str(msg.partition()).encode()),
            ("dlq.source.offset", str(msg.offset()).encode()),
        ]
        coordinates = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            self._in_flight -= 1
            if err is not None:
                self._failures.append(f"{coordinates}: {err}")

        self._producer.produce(
            self._topic,
            key=msg.key(),
            value=msg.value(),
            headers=headers,
            on_delivery=delivered,
        )
        self._in_flight += 1
        metrics.SINK_DEAD_LETTERED.labels(REASON).inc()
        # The processor validated it, so losing it from the table is a failure.
        event_id = _header(headers, "event_id")
        log.error(
            "event not stored: sent to the dead-letter topic",
            extra={
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                **({"event_id": event_id} if event_id else {}),
                "reason": REASON,
                "detail": detail,
                "dead_letter_topic": self._topic,
            },
        )

    def confirm(self) -> None:
        """Wait until every record sent is acknowledged.

        Raises:
            DeadLetterError: A delivery failed or did not finish in time; the
                caller must not commit past those records.
        """
        if self._producer is None or (self._in_flight == 0 and not self._failures):
            return
        remaining = self._producer.flush(self._delivery_timeout_ms / 1000 + 5)
        if remaining or self._failures:
            failures = "; ".join(self._failures) or f"{remaining} still in flight"
            raise DeadLetterError(
                f"dead-letter topic {self._topic} did not take every record"
                f" ({failures}): offsets not committed, the records will be read"
                " again at restart"
            )

    def close(self) -> None:
        """Deliver what is queued, then drop the producer."""
        if self._producer is not None:
            self._producer.flush(self._delivery_timeout_ms / 1000 + 5)
            self._producer = None


def _header(headers: list[tuple[str, Any]], name: str) -> str | None:
    """The first value of header ``name`` as text, or None."""
    for key, value in headers:
        if key == name and isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if key == name and isinstance(value, str):
            return value
    return None
