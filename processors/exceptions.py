"""Errors of the stream processor."""

from __future__ import annotations

from booking_events.exceptions import BookingEventsError


class ProcessorError(BookingEventsError):
    """Base of the processor's errors."""


class DeliveryError(ProcessorError):
    """An output record was not acknowledged by Kafka.

    The source offset stays uncommitted, so the event is read again when the
    processor restarts; nothing is lost, but the restart may emit duplicates.

    Attributes:
        topic: Source topic of the event whose output failed.
        partition: Its partition.
        offset: Its offset.
    """

    retriable = True

    def __init__(self, message: str, *, topic: str, partition: int, offset: int):
        super().__init__(f"{message} (source {topic}[{partition}]@{offset})")
        self.topic = topic
        self.partition = partition
        self.offset = offset
