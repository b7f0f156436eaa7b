"""The Kafka side of the sink: consume, batch per partition, flush, commit.

Exactly-once into ClickHouse rests on three rules (issue #3 proves them with
fault injection):

1. **Commit after insert.** Offsets are committed synchronously, with explicit
   offsets, only after ClickHouse acknowledged every row below them (and the
   dead-letter topic every record sent there). A crash before the commit
   re-reads the records; it never loses one.
2. **Skip what is stored.** When the sink is given a partition it asks
   ClickHouse which offsets at or after the committed one are already in the
   table and skips those records. A crash between insert and commit therefore
   writes nothing twice. The answer is exact because every insert is atomic.
3. **Atomic, idempotent inserts.** A flush inserts one group per (Kafka
   partition, month of occurred_at): one block, all or nothing, with
   async_insert off and a deterministic insert_deduplication_token built from
   the group's offsets. Retrying an insert whose first attempt reached the
   server is dropped by ClickHouse.

Failures: ClickHouse away -> retried with backoff up to insert_retry_max_s,
nothing committed; a terminal ClickHouse error -> the sink stops, nothing
committed. A record that does not decode goes to the dead-letter topic (reason
``sink_decode_failed``) or stops the sink, per ``decode_failure``. Revoked
partitions are flushed and committed before they are given up; a stop request
(SIGTERM, SIGINT) flushes, commits and closes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.schema_registry import SchemaRegistryClient

from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from schemas import EventDecodeError, EventDeserializer
from sinks.config import SinkSettings
from sinks.dead_letter import DeadLetterSender
from sinks.exceptions import SinkDecodeError, SinkError
from sinks.retry import retry
from sinks.rows import insert_groups, kafka_time, to_row
from sinks.writer import ClickHouseWriter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Partition:
    """What the sink holds for one assigned partition."""

    partition: int
    committed: int
    position: int
    skip: set[int]
    offsets: list[int] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    dirty_since: float | None = None

    def advance(self, offset: int) -> None:
        self.position = offset + 1
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()


@dataclass(slots=True)
class SinkStats:
    """Counters of one run, for logs and tests."""

    rows_inserted: int = 0
    inserts: int = 0
    insert_s: float = 0.0
    records_skipped: int = 0
    records_dead_lettered: int = 0
    commits: int = 0


class ClickHouseSink:
    """Copies the validated topic into the ClickHouse events table.

    The constructor only stores settings; :meth:`run` connects.

    Args:
        kafka: Brokers and security.
        registry: The Schema Registry the events' schemas are in.
        clickhouse: ClickHouse endpoint and database.
        topics: Topic names; the sink reads ``validated``.
        settings: The sink's own settings.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        registry: RegistrySettings,
        clickhouse: ClickHouseSettings,
        topics: TopicSettings,
        settings: SinkSettings,
    ) -> None:
        self._kafka = kafka
        self._registry = registry
        self._topic = topics.validated
        self._settings = settings
        self._writer = ClickHouseWriter(clickhouse, settings)
        self._dead_letter = DeadLetterSender(
            kafka, topics.dead_letter, settings.delivery_timeout_ms
        )
        self._consumer: Consumer | None = None
        self._deserializer: EventDeserializer | None = None
        self._partitions: dict[int, _Partition] = {}
        self._callback_error: BaseException | None = None
        self._failed = False
        self._last_activity: float | None = None
        self.stats = SinkStats()

    def run(
        self,
        stop_event: threading.Event | None = None,
        idle_exit_s: float | None = None,
    ) -> SinkStats:
        """Consume until ``stop_event`` is set (or idle), then flush and commit.

        Args:
            stop_event: Set it (from a signal handler, another thread) to stop.
            idle_exit_s: Also stop once partitions were assigned, nothing
                arrived for this long and nothing is pending; for tests and
                one-shot loads.

        Raises:
            SinkError: A terminal failure; offsets past the failed records are
                not committed.
        """
        stop = stop_event or threading.Event()
        try:
            self._start()
            self._loop(stop, idle_exit_s)
            self._flush(list(self._partitions))
        except BaseException:
            self._failed = True
            self._close()
            raise
        self._close()
        log.info(
            "sink stopped topic=%s rows_inserted=%s inserts=%s skipped=%s"
            " dead_lettered=%s",
            self._topic,
            self.stats.rows_inserted,
            self.stats.inserts,
            self.stats.records_skipped,
            self.stats.records_dead_lettered,
        )
        return self.stats

    def _start(self) -> None:
        self._writer.start()
        self._deserializer = EventDeserializer(
            SchemaRegistryClient(self._registry.client_config())
        )
        self._consumer = Consumer(
            {
                **self._kafka.librdkafka(),
                "group.id": self._settings.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self._settings.session_timeout_ms,
                "max.poll.interval.ms": self._settings.max_poll_interval_ms(),
            }
        )
        self._consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("consuming topic=%s group=%s", self._topic, self._settings.group_id)

    def _loop(self, stop: threading.Event, idle_exit_s: float | None) -> None:
        assert self._consumer is not None
        poll_s = self._settings.poll_timeout_ms / 1000
        batch = min(self._settings.batch_max_rows, 5000)
        while not stop.is_set():
            messages = self._consumer.consume(num_messages=batch, timeout=poll_s)
            self._raise_callback_error()
            for msg in messages:
                self._handle(msg)

            if self._flush_due():
                self._flush(list(self._partitions))
            if messages and self._last_activity is not None:
                self._last_activity = time.monotonic()
            if self._last_activity is None:
                continue
            idle_s = time.monotonic() - self._last_activity
            if idle_exit_s is not None and idle_s >= idle_exit_s and self._idle():
                log.info("nothing new for %.1f s, stopping", idle_s)
                return
        log.info("stop requested; flushing and committing")

    def _handle(self, msg: Message) -> None:
        error = msg.error()
        if error is not None:
            if error.fatal():
                raise SinkError(f"Kafka consumer failed: {error}")
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error, continuing: %s", error)
            return

        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        state = self._partitions.get(partition)
        if state is None:
            return
        if offset in state.skip:
            state.skip.discard(offset)
            state.advance(offset)
            self.stats.records_skipped += 1
            return

        try:
            row = self._to_row(msg, partition, offset)
        except EventDecodeError as exc:
            if self._settings.decode_failure == "stop":
                raise SinkDecodeError(
                    f"record does not decode: {exc}; stopping without committing"
                    " (set BOOKING_EVENTS_SINK_DECODE_FAILURE=dead_letter to route"
                    " it to the dead-letter topic)",
                    topic=self._topic,
                    partition=partition,
                    offset=offset,
                ) from exc
            self._dead_letter.send(msg, str(exc))
            self.stats.records_dead_lettered += 1
            state.advance(offset)
            return

        state.offsets.append(offset)
        state.rows.append(row)
        state.advance(offset)

    def _to_row(self, msg: Message, partition: int, offset: int) -> list[Any]:
        """Decode (retrying a registry outage) and build the table row."""
        assert self._deserializer is not None
        deserializer = self._deserializer
        record = retry(
            f"decode {self._topic}[{partition}]@{offset}",
            lambda: deserializer.record(msg.value(), self._topic),
            self._settings,
        )
        kind, millis = msg.timestamp()
        timestamp = (
            kafka_time(millis) if kind != TIMESTAMP_NOT_AVAILABLE else datetime.now(UTC)
        )
        try:
            return to_row(
                record,
                topic=self._topic,
                partition=partition,
                offset=offset,
                timestamp=timestamp,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EventDecodeError(f"record does not form a row: {exc!r}") from exc

    def _flush_due(self) -> bool:
        pending = sum(len(p.rows) for p in self._partitions.values())
        if pending >= self._settings.batch_max_rows:
            return True
        oldest = min(
            (p.dirty_since for p in self._partitions.values() if p.dirty_since),
            default=None,
        )
        age_ms = (time.monotonic() - oldest) * 1000 if oldest else 0.0
        return age_ms >= self._settings.batch_max_ms

    def _idle(self) -> bool:
        return all(
            not p.rows and p.position == p.committed for p in self._partitions.values()
        )

    def _flush(self, partitions: list[int]) -> None:
        """Insert what is pending for ``partitions``, then commit their offsets."""
        ingested_at = datetime.now(UTC)
        for number in partitions:
            state = self._partitions[number]
            if state.rows:
                started = time.monotonic()
                groups = insert_groups(self._topic, number, state.offsets, state.rows)
                for group in groups:
                    self._writer.insert(group, ingested_at)
                self.stats.insert_s += time.monotonic() - started
                self.stats.inserts += len(groups)
                self.stats.rows_inserted += len(state.rows)
                state.offsets, state.rows = [], []

        offsets = [
            TopicPartition(self._topic, number, self._partitions[number].position)
            for number in partitions
            if self._partitions[number].position > self._partitions[number].committed
        ]
        if offsets:
            self._dead_letter.confirm()
            self._commit(offsets)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        assert self._consumer is not None
        try:
            results = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning(
                "offsets not committed (%s): the rows are in ClickHouse, and whoever"
                " reads these partitions next skips them by the stored-offset lookup",
                exc,
            )
            return
        for tp in results or offsets:
            if tp.error is not None:
                log.warning(
                    "offset not committed topic=%s partition=%s offset=%s: %s",
                    tp.topic,
                    tp.partition,
                    tp.offset,
                    tp.error,
                )
                continue
            state = self._partitions.get(tp.partition)
            if state is not None:
                state.committed = tp.offset
                state.dirty_since = None
        self.stats.commits += 1
        log.debug(
            "committed %s",
            " ".join(f"partition={tp.partition} offset={tp.offset}" for tp in offsets),
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            committed = consumer.committed(
                partitions, timeout=self._settings.commit_timeout_s
            )
            for tp in committed:
                start = tp.offset if tp.offset >= 0 else 0
                skip = self._writer.stored_offsets(self._topic, tp.partition, start)
                self._partitions[tp.partition] = _Partition(
                    tp.partition, committed=start, position=start, skip=skip
                )
                log.info(
                    "assigned topic=%s partition=%s committed=%s already_stored=%s",
                    self._topic,
                    tp.partition,
                    tp.offset,
                    len(skip),
                )
            self._last_activity = time.monotonic()
        except BaseException as exc:
            self._callback_error = exc

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [
            tp.partition for tp in partitions if tp.partition in self._partitions
        ]
        try:
            if numbers and not self._failed:
                self._flush(numbers)
        except BaseException as exc:
            self._failed = True
            self._callback_error = exc
        finally:
            for number in numbers:
                self._partitions.pop(number, None)
            if numbers:
                log.info("revoked topic=%s partitions=%s", self._topic, numbers)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        for number in numbers:
            self._partitions.pop(number, None)
        log.warning(
            "partitions lost topic=%s partitions=%s: pending rows dropped"
            " uncommitted; the new owner reads them again",
            self._topic,
            numbers,
        )

    def _raise_callback_error(self) -> None:
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error

    def _close(self) -> None:
        if self._consumer is not None:
            if self._failed:
                self._partitions.clear()
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("consumer close failed: %s", exc)
            self._consumer = None
        self._dead_letter.close()
        self._writer.close()
        if not self._failed:
            self._raise_callback_error()
