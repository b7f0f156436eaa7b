"""Decodes, judges and writes one raw record at a time.

Under exactly-once every record's effects go into the Kafka transaction of its
source partition in one step, with nothing else of that transaction between
them: its output (validated or dead-letter) and, on the state table's
changelog, the booking's new state stamped with the record's source
coordinates, or for a record that changes no booking, the partition's
processed offset. Then its offset is acked. A transaction therefore holds the
complete effects of a run of source records and never half of one, and faust
commits it together with the source offsets.

The committed offset may lag the committed effects: faust picks the offsets to
commit before it takes the transaction, while this agent goes on writing. After
a crash those records are read again and recognised as processed: records of
one partition are processed in offset order, so a record at offset ``o`` of
partition ``p`` was processed exactly when the partition's processed offset is
at least ``o``, or its booking's state was last written from ``p`` at an offset
of at least ``o`` (a booking's events share its key, hence its partition). Such
a record is skipped without output. This makes restarts exact without relying
on the event-id window of ``ordering``.

Faust's own changelog writes go through a buffer that its commit does not
flush, so a record's state could land in a later transaction than its output;
the router therefore writes the table's store and changelog itself. It reaches
into faust's transactional producers (``_transaction_producers``,
``_trn_locks``) for that, checked against faust-streaming 0.15.x.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import faust

from booking_events import metrics
from booking_events.settings import TopicSettings
from processors.config import ProcessorSettings
from processors.exceptions import DeliveryError
from processors.ordering import BookingState
from processors.routing import (
    Headers,
    Outcome,
    SourceRecord,
    dead_letter_headers,
    fit_dead_letter,
    judge,
    oversized,
    record_size,
    validated_headers,
)
from processors.rules import Violation
from schemas import BookingEvent, EventDecodeError, EventDeserializer
from schemas.exceptions import RegistryUnavailableError

log = logging.getLogger(__name__)

OFFSET_KEY_PREFIX = b"\x00processed-offset:"
"""Table key of a source partition's processed offset; no booking id starts so."""


def offset_key(partition: int) -> bytes:
    """Return the table key holding ``partition``'s last processed offset."""
    return OFFSET_KEY_PREFIX + str(partition).encode()


@dataclass(frozen=True, slots=True)
class Output:
    """One record to write."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    timestamp: float | None = None


class EventRouter:
    """Routes the raw topic's records; one instance per worker.

    Args:
        app: The faust app whose producer writes the outputs.
        table: The booking state table (booking id bytes -> state bytes).
        deserializer: Decoder of the raw bytes.
        settings: Processor settings (retry timings, app id, guarantee).
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
        self._exactly_once = settings.processing_guarantee == "exactly_once"
        self._crash: asyncio.Future[None] | None = None
        self.limits: dict[str, int] = {}
        """Largest record each output topic takes, bytes; see ``set_limits``."""
        self.counts: Counter[str] = Counter()
        # Label children bound once: the hot path only increments.
        self._events_in = metrics.PROCESSOR_EVENTS_IN.labels(topics.raw)
        out = metrics.PROCESSOR_EVENTS_OUT
        self._validated_out = out.labels(topics.validated, "validated")
        self._dead_lettered_out = out.labels(topics.dead_letter, "dead_lettered")

    def set_limits(self, limits: Mapping[str, int], max_request_bytes: int) -> None:
        """Record the output topics' ``max.message.bytes`` and the request cap."""
        self.limits = {t: min(n, max_request_bytes) for t, n in limits.items()}

    async def handle(self, event: faust.types.EventT) -> None:
        """Route one stream event and ack it once its effects are written."""
        source = _source_of(event.message)
        self._events_in.inc()
        decoded = await self.decode(source)
        if decoded is None:
            # Stopping while the registry is down: leave the offset uncommitted
            # and tell the consumer not to wait for it, so shutdown completes.
            self._app.consumer.unacked.discard(event.message)
            log.warning(
                "stopping before the record could be decoded; its offset is not"
                " committed and it will be read again after the restart",
                extra=source.log_fields(),
            )
            return

        if self._processed(source, decoded):
            # Its effects were committed before a restart; its offset was not.
            self.counts["replayed"] += 1
            metrics.PROCESSOR_ALREADY_PROCESSED.inc()
            event.ack()
            return
        outputs, state = self.plan(source, decoded)
        writes = self._write(event, source, outputs, state)
        # A stop cancels the agent; finish the record's writes regardless, so
        # that the transaction never holds part of them.
        await asyncio.shield(writes)

    def plan(
        self, source: SourceRecord, decoded: BookingEvent | EventDecodeError
    ) -> tuple[list[Output], tuple[bytes, bytes] | None]:
        """Return the outputs of a record and the booking state to store."""
        if isinstance(decoded, EventDecodeError):
            violation = Violation(decoded.reason, str(decoded))
            return [self._dead_letter(source, [violation], event_id=None)], None

        key = decoded.booking_id.encode()
        previous = BookingState.from_bytes(self._table.data.get(key))
        verdict = judge(source, decoded, previous)
        event_id = str(decoded.event_id)
        if verdict.outcome is Outcome.DROPPED:
            self.counts["dropped"] += 1
            metrics.PROCESSOR_DUPLICATES_DROPPED.inc()
            log.info(
                "dropped repeat of event",
                extra=source.log_fields(
                    event_id=event_id, booking_id=decoded.booking_id, seq=decoded.seq
                ),
            )
            return [], None
        if verdict.outcome is Outcome.DEAD_LETTERED:
            return [self._dead_letter(source, verdict.violations, event_id)], None

        headers = validated_headers(source, decoded)
        size = record_size(source.key, source.value, headers)
        limit = self.limits.get(self._topics.validated)
        if limit is not None and size > limit:
            violation = oversized(source, size, limit, self._topics.validated)
            return [self._dead_letter(source, [violation], event_id)], None

        assert verdict.state is not None
        state = verdict.state.at(source.partition, source.offset)
        self.counts["validated"] += 1
        self._validated_out.inc()
        output = Output(
            self._topics.validated,
            source.key,
            source.value,
            headers,
            source.timestamp,
        )
        return [output], (key, state.to_bytes())

    def _dead_letter(
        self,
        source: SourceRecord,
        violations: Sequence[Violation],
        event_id: str | None,
    ) -> Output:
        reason = violations[0].code
        # One line per dead letter, at warning: the event leaves the pipeline.
        ids = {"event_id": event_id} if event_id is not None else {}
        log.warning(
            "event rejected: sent to the dead-letter topic, not to the validated one",
            extra=source.log_fields(
                **ids,
                reason=reason,
                detail="; ".join(v.detail for v in violations),
                dead_letter_topic=self._topics.dead_letter,
            ),
        )
        self.counts[f"dlq.{reason}"] += 1
        self.counts["dead_lettered"] += 1
        self._dead_lettered_out.inc()
        metrics.PROCESSOR_DEAD_LETTERED.labels(reason).inc()
        headers = dead_letter_headers(
            source, violations, processor=self._settings.app_id, event_id=event_id
        )
        limit = self.limits.get(self._topics.dead_letter)
        value = source.value
        if limit is not None:
            value, headers = fit_dead_letter(value, headers, source.key, limit)
        return Output(self._topics.dead_letter, source.key, value, headers)

    async def decode(
        self, source: SourceRecord
    ) -> BookingEvent | EventDecodeError | None:
        """Decode the record; retry while the registry is unavailable.

        Returns the event, or the decode error of bad bytes (for the dead-letter
        topic), or None when the worker stops before the registry is back. The
        first attempt runs inline (writer schemas are cached, so it rarely does
        I/O); retries run in a thread so the worker keeps its heartbeats while
        the registry is down.
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
                    "schema registry unavailable (attempt %s): %s; partition"
                    " paused, retrying in %s ms",
                    attempt,
                    exc,
                    delay_ms,
                    extra=source.log_fields(),
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

    def _processed(
        self, source: SourceRecord, decoded: BookingEvent | EventDecodeError
    ) -> bool:
        """True when the record's effects are already written (see module doc)."""
        value = self._table.data.get(offset_key(source.partition))
        if value is not None and int(value) >= source.offset:
            return True
        if isinstance(decoded, EventDecodeError):
            return False
        state = BookingState.from_bytes(
            self._table.data.get(decoded.booking_id.encode())
        )
        return (
            state.source_partition == source.partition
            and state.source_offset >= source.offset
        )

    async def _write(
        self,
        event: faust.types.EventT,
        source: SourceRecord,
        outputs: list[Output],
        state: tuple[bytes, bytes] | None,
    ) -> None:
        changelog = self._table.changelog_topic.get_topic_name()
        records = list(outputs)
        if state is not None:
            records.append(Output(changelog, *state))
        else:
            offset = str(source.offset).encode()
            records.append(Output(changelog, offset_key(source.partition), offset))
        if self._exactly_once:
            futures = await self._send_in_transaction(source, records)
            if futures is None:
                return
        else:
            futures = [await self._send_plain(source, r) for r in records]
        self._table.data.update(
            (r.key, r.value) for r in records[len(outputs) :] if r.key is not None
        )

        if self._exactly_once:
            # Offsets commit with the transaction, which waits for its records.
            event.ack()
            for future in futures:
                future.add_done_callback(lambda f: self._check_delivery(source, f))
            return
        delivered = asyncio.gather(*futures)
        delivered.add_done_callback(lambda f: self._on_delivered(event, source, f))

    async def _send_in_transaction(
        self, source: SourceRecord, records: list[Output]
    ) -> list[asyncio.Future[Any]] | None:
        """Append ``records`` to the source partition's transaction, all or none.

        Returns None when this worker no longer owns the partition.
        """
        group = self._app.assignor.group_for_topic(source.topic)
        tid = f"{self._app.conf.id}-{group}-{source.partition}"
        # faust 0.15 internals (see the module docstring); not in ProducerT.
        producer: Any = self._app.producer
        transaction = producer._transaction_producers.get(tid)
        if transaction is None:
            log.warning(
                "no transaction for the record (partition revoked); its new owner"
                " processes it",
                extra=source.log_fields(),
            )
            return None
        futures = []
        # faust's commit takes the same lock: it commits before or after these
        # records, never between them.
        async with producer._trn_locks[tid]:
            try:
                for r in records:
                    futures.append(
                        await transaction.send(
                            r.topic,
                            r.value,
                            key=r.key,
                            partition=source.partition,
                            timestamp_ms=_millis(r.timestamp),
                            headers=r.headers,
                        )
                    )
            except BaseException:
                log.error(
                    "writing the effects of the record failed; aborting its"
                    " transaction so that none of them is committed",
                    extra=source.log_fields(transactional_id=tid),
                )
                try:
                    await transaction.abort_transaction()
                except Exception:
                    log.exception(
                        "abort of transaction failed", extra={"transactional_id": tid}
                    )
                raise
        return futures

    async def _send_plain(self, source: SourceRecord, r: Output) -> asyncio.Future[Any]:
        delivery: Awaitable[Any] = await self._app.producer.send(
            r.topic, r.key, r.value, source.partition, r.timestamp, r.headers
        )
        return asyncio.ensure_future(delivery)

    def _check_delivery(
        self, source: SourceRecord, delivery: asyncio.Future[Any]
    ) -> None:
        if delivery.cancelled() or delivery.exception() is not None:
            self._fail(source, None if delivery.cancelled() else delivery.exception())

    def _on_delivered(
        self,
        event: faust.types.EventT,
        source: SourceRecord,
        delivery: asyncio.Future[Any],
    ) -> None:
        if not delivery.cancelled() and delivery.exception() is None:
            event.ack()
            return
        self._fail(source, None if delivery.cancelled() else delivery.exception())

    def _fail(self, source: SourceRecord, cause: BaseException | None) -> None:
        log.error(
            "output not acknowledged by Kafka: %r; offset not committed, stopping"
            " the worker so the event is re-read after a restart",
            cause,
            extra=source.log_fields(),
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
        kinds = ("validated", "dead_lettered", "dropped", "replayed")
        total = sum(self.counts[k] for k in kinds)
        if not total:
            return
        reasons = ",".join(
            f"{k[4:]}:{v}" for k, v in sorted(self.counts.items()) if k[:4] == "dlq."
        )
        log.info(
            "routed records",
            extra={
                "records": total,
                "interval_s": round(interval_s),
                "rate_eps": round(total / interval_s),
                "validated": self.counts["validated"],
                "dead_lettered": self.counts["dead_lettered"],
                "reasons": reasons,
                "dropped_repeats": self.counts["dropped"],
                "skipped_already_processed": self.counts["replayed"],
            },
        )
        self.counts.clear()


def _millis(timestamp: float | None) -> int | None:
    return int(timestamp * 1000) if timestamp else None


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
