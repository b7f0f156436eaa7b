"""Where each event goes and which headers it carries there.

Pure functions: they build the headers of an output record from the source
record and the verdict; ``app`` sends them. Header values are UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from processors.ordering import BookingState, advance, is_repeat
from processors.rules import Violation, check_event
from schemas import BookingEvent

Headers = list[tuple[str, bytes]]

VALIDATED_HEADERS = ("event_id", "event_type")
DLQ_PREFIX = "dlq."

RECORD_OVERHEAD_BYTES = 128
"""Bytes a record batch adds around one record (batch header, varints), rounded up."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A record of the raw topic, as read.

    Attributes:
        topic: Topic it was read from.
        partition: Its partition.
        offset: Its offset.
        key: Its key, verbatim (the booking id when well formed).
        value: Its value, verbatim; outputs carry these bytes unchanged.
        headers: Its headers, verbatim.
        timestamp: Its Kafka timestamp, seconds since the epoch.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp: float | None = None

    def coordinates(self) -> str:
        """Return ``topic[partition]@offset`` for error messages."""
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def log_fields(self, **more: object) -> dict[str, object]:
        """Return the ``extra=`` of a log line about this record."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            **more,
        }


def validated_headers(source: SourceRecord, event: BookingEvent) -> Headers:
    """Return the headers of the validated record: the source's plus the event's."""
    kept = [(k, v) for k, v in source.headers if k not in VALIDATED_HEADERS]
    return [
        *kept,
        ("event_id", str(event.event_id).encode()),
        ("event_type", event.event_type.value.encode()),
    ]


def dead_letter_headers(
    source: SourceRecord,
    violations: Sequence[Violation],
    *,
    processor: str,
    event_id: str | None = None,
    failed_at: datetime | None = None,
) -> Headers:
    """Return the headers of the dead-letter record.

    ``dlq.reason`` is the code of the first violation; ``dlq.detail`` lists
    every violation. The source's own headers are kept (minus any ``dlq.*``
    of an earlier round) so that a replay can restore the record as it was.
    """
    if not violations:
        raise ValueError("a dead-letter record needs at least one violation")
    when = (failed_at or datetime.now(UTC)).astimezone(UTC)
    kept = [(k, v) for k, v in source.headers if not k.startswith(DLQ_PREFIX)]
    headers = [
        *kept,
        ("dlq.reason", violations[0].code.encode()),
        ("dlq.detail", "; ".join(v.detail for v in violations).encode()),
        ("dlq.source.topic", source.topic.encode()),
        ("dlq.source.partition", str(source.partition).encode()),
        ("dlq.source.offset", str(source.offset).encode()),
        ("dlq.processor", processor.encode()),
        ("dlq.failed_at", when.isoformat(timespec="milliseconds").encode()),
    ]
    if event_id is not None:
        headers.append(("dlq.event_id", event_id.encode()))
    return headers


def key_matches(source: SourceRecord, event: BookingEvent) -> list[Violation]:
    """The Kafka key must be the booking id, or per-booking order is not kept."""
    expected = event.booking_id.encode()
    if source.key == expected:
        return []
    return [
        Violation(
            "key_mismatch",
            f"key is {source.key!r} but booking_id is {event.booking_id!r}:"
            " records of one booking must share its key to stay in order",
        )
    ]


class Outcome(StrEnum):
    """Where a source record goes."""

    VALIDATED = "validated"
    DEAD_LETTERED = "dead_lettered"
    DROPPED = "dropped"
    """A repeat of an accepted event: not forwarded, only counted."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where one source record goes.

    Attributes:
        outcome: Validated, dead-lettered or dropped as a repeat.
        violations: Why it is dead-lettered; empty otherwise.
        state: Booking state to store; None when it does not change.
    """

    outcome: Outcome
    violations: tuple[Violation, ...] = ()
    state: BookingState | None = None

    @property
    def valid(self) -> bool:
        """True for the validated topic."""
        return self.outcome is Outcome.VALIDATED


def judge(source: SourceRecord, event: BookingEvent, previous: BookingState) -> Verdict:
    """Decide an event's fate: key, stateless rules, then the booking's history.

    The history is only consulted when the event is valid on its own, so a
    rejected event never moves the booking's state. A repeat of an accepted
    event is dropped.
    """
    violations = [*key_matches(source, event), *check_event(event)]
    if violations:
        return Verdict(Outcome.DEAD_LETTERED, tuple(violations))

    if is_repeat(previous, event):
        return Verdict(Outcome.DROPPED)
    state, violations = advance(previous, event)
    if violations:
        return Verdict(Outcome.DEAD_LETTERED, tuple(violations))
    return Verdict(Outcome.VALIDATED, state=state)


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """Upper bound of the bytes one uncompressed record takes in its own batch."""
    size = RECORD_OVERHEAD_BYTES + len(key or b"") + len(value or b"")
    return size + sum(len(k) + len(v) + 10 for k, v in headers)


def oversized(source: SourceRecord, size: int, limit: int, topic: str) -> Violation:
    """The violation of a record whose output would exceed ``topic``'s limit."""
    return Violation(
        "oversized",
        f"the output record would take about {size} bytes, more than the"
        f" {limit} bytes {topic!r} accepts (max.message.bytes); the event is"
        f" at {source.coordinates()}",
    )


def fit_dead_letter(
    value: bytes | None, headers: Headers, key: bytes | None, limit: int
) -> tuple[bytes | None, Headers]:
    """Cut ``value`` so that the dead-letter record fits ``limit`` bytes.

    A cut value keeps its first bytes and gains ``dlq.value_truncated`` and
    ``dlq.value_size`` (the original length); ``dlq.source.*`` still locates the
    whole record in the raw topic, which keeps it forever.
    """
    if value is None or record_size(key, value, headers) <= limit:
        return value, headers
    marks = [
        ("dlq.value_truncated", b"true"),
        ("dlq.value_size", str(len(value)).encode()),
    ]
    room = limit - record_size(key, b"", [*headers, *marks])
    return value[: max(room, 0)], [*headers, *marks]
