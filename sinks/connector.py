"""The Kafka side of the sink: consume, batch per partition, flush, commit.

Exactly once into ClickHouse, with no FINAL and no merge to wait for, rests on
four rules (issue #3 proves each with fault injection):

1. **Commit after insert.** Offsets are committed synchronously, with explicit
   offsets, only after ClickHouse holds every row below them (and the
   dead-letter topic acknowledged every record sent there). A crash before
   the commit re-reads records; it never loses one.
2. **One block per (Kafka partition, month).** A flush inserts each group as
   one block (ClickHouse splits an insert by table partition, so a group never
   spans two months), with ``async_insert=0``. A block is stored whole or not
   at all: a sink killed during an insert leaves nothing behind.
3. **Check before, check after** (``sinks.flush``). Before inserting, the sink
   asks which pending offsets are stored and leaves them out; after, it counts
   them and sends again whatever is still missing.
4. **The token names where a block starts**: ``topic/partition/month/first
   offset`` (``sinks.rows.InsertGroup.token``), in a table with a
   deduplication window. Two blocks that start at the same record cannot
   both be stored, whatever they reach to.

Why no interleaving of sinks duplicates or loses a record. Fix a Kafka
partition and a month m, and look at that month's records in offset order.
Claim: what the table holds of them is always a prefix, and every stored block
started exactly where the prefix ended. A sink's pending records are a gap-free
offset range [p, q) with everything below p already stored (p is a committed
offset, or the end of a flush that checked itself complete). Its check at time
t returns the prefix, so its month-m block is "the month-m records from the
first unstored one, s, up to q", with token s. When that block reaches
ClickHouse, either the prefix still ends at s (the block extends it, the claim
holds) or something was stored since t; the first block stored since then
started at s too (by the claim), so ours carries a token ClickHouse has seen
and is dropped. ClickHouse checks and records a token under the lock that
commits the part, so of two concurrent blocks with one token exactly one is
stored. A dropped block is not lost: the count after the insert shows rows
missing, and the next round's block starts where the prefix now ends. So a
record is stored at most once (blocks never overlap) and, before any commit,
at least once (the count). This holds for a crash at any point, a retried
insert whose first attempt did land, two sinks during a rebalance, and a
zombie: a sink that stalled past its session timeout (SIGSTOP, a long GC, a
frozen VM) while holding a checked batch or with its insert request in
flight, and wakes after another sink stored and committed those offsets. The
zombie's late block starts where its own check saw the prefix end, which is
where the other sink's first block started, so it is dropped; its commit is
refused by the group (or, if it lands, commits only what is stored).

The limit, in plain words: ClickHouse remembers the tokens of the last
10,000 blocks inserted into the table (``non_replicated_deduplication_window``
in ``sinks.schema``; a flush inserts about one block per partition and month
it covers). A sink that wakes from a stall after more than 10,000 blocks were
inserted since the others stored its records can store them a second time;
the audit then reports the duplicates. A steady stream flushed twice a second
over 6 partitions within one month uses 12 tokens a second: a stall of about
14 minutes. A backlog spread over many months uses the window faster.
Deleting stored rows (TRUNCATE, DROP PARTITION) while their tokens are still
remembered makes their re-insert disappear; the sink then
stops with ``DuplicateTokenError`` instead of committing.

Failures: ClickHouse away -> every call is retried with backoff up to
insert_retry_max_s, nothing committed, then the sink stops; a terminal
ClickHouse error -> the sink stops, nothing committed. A record that does not
decode goes to the dead-letter topic (reason ``sink_decode_failed``) or stops
the sink, per ``decode_failure``. Revoked partitions are flushed and committed
before they are given up, lost ones dropped (``sinks.rebalance``); a stop
request (SIGTERM, SIGINT) flushes, commits and closes.

Fault tests stop the sink at exact points of a flush with test-only pause
points (``sinks.testing.PausePoints``, BOOKING_EVENTS_SINK_TEST_PAUSE_AT), off
unless set.
"""

from __future__ import annotations

import logging
import threading
import time
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

from booking_events import metrics
from booking_events.logs import KAFKA_CLIENT_LOG
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    MetricsSettings,
    RegistrySettings,
    TopicSettings,
)
from schemas import EventDecodeError, EventDeserializer
from sinks.config import SinkSettings
from sinks.dead_letter import DeadLetterSender
from sinks.exceptions import SinkDecodeError, SinkError
from sinks.flush import Flusher
from sinks.migrations import TableEvolution
from sinks.rebalance import Assignment, SinkStats
from sinks.retry import retry
from sinks.rows import kafka_time
from sinks.writer import ClickHouseWriter

log = logging.getLogger(__name__)

__all__ = ["ClickHouseSink", "SinkStats"]


class ClickHouseSink:
    """Copies the validated topic into the ClickHouse events table.

    The constructor only stores settings; :meth:`run` connects.

    Args:
        kafka: Brokers and security.
        registry: The Schema Registry the events' schemas are in.
        clickhouse: ClickHouse endpoint and database.
        topics: Topic names; the sink reads ``validated``.
        settings: The sink's own settings.
        metrics_settings: How often the lag gauges are refreshed.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        registry: RegistrySettings,
        clickhouse: ClickHouseSettings,
        topics: TopicSettings,
        settings: SinkSettings,
        metrics_settings: MetricsSettings | None = None,
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
        self._evolution: TableEvolution | None = None
        self._subjects = [f"{topics.validated}-value", f"{topics.raw}-value"]
        self.stats = SinkStats()
        self._flusher = Flusher(self._topic, self._writer, settings, self.stats)
        self._assignment = Assignment(
            self._topic, self._flush, settings.commit_timeout_s
        )
        self._partitions = self._assignment.states
        self._events_in = metrics.SINK_EVENTS_IN.labels(self._topic)
        self._lag = metrics.LagGauge(
            settings.group_id,
            self._topic,
            (metrics_settings or MetricsSettings()).lag_interval_s,
        )
        if not settings.deduplication:
            log.warning(
                "deduplication is OFF (BOOKING_EVENTS_SINK_DEDUPLICATION=false):"
                " a replayed record is stored again; for the negative-control"
                " test only"
            )

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
            self._assignment.failed = True
            self._close()
            raise
        self._close()
        log.info(
            "sink stopped",
            extra={
                "topic": self._topic,
                "rows_inserted": self.stats.rows_inserted,
                "inserts": self.stats.inserts,
                "skipped": self.stats.records_skipped,
                "dead_lettered": self.stats.records_dead_lettered,
                "repeated_rounds": self.stats.rounds_repeated,
            },
        )
        return self.stats

    def _start(self) -> None:
        self._writer.start()
        # Writer's schema only: the sink keeps the fields a newer producer added.
        self._deserializer = EventDeserializer(
            SchemaRegistryClient(self._registry.client_config()), resolve=False
        )
        self._evolution = TableEvolution(
            self._writer,
            self._deserializer,
            self._subjects,
            flush=lambda: self._flush(list(self._partitions)),
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
                "heartbeat.interval.ms": max(
                    100, min(3000, self._settings.session_timeout_ms // 3)
                ),
                "max.poll.interval.ms": self._settings.max_poll_interval_ms(),
                "logger": KAFKA_CLIENT_LOG,
            }
        )
        self._consumer.subscribe(
            [self._topic],
            on_assign=self._assignment.on_assign,
            on_revoke=self._assignment.on_revoke,
            on_lost=self._assignment.on_lost,
        )
        log.info(
            "consuming", extra={"topic": self._topic, "group": self._settings.group_id}
        )

    def _loop(self, stop: threading.Event, idle_exit_s: float | None) -> None:
        assert self._consumer is not None
        poll_s = self._settings.poll_timeout_ms / 1000
        batch = min(self._settings.batch_max_rows, 5000)
        last_activity: float | None = None
        while not stop.is_set():
            messages = self._consumer.consume(num_messages=batch, timeout=poll_s)
            self._assignment.raise_error()
            for msg in messages:
                self._handle(msg)
            if self._lag.due():
                self._refresh_lag()

            if self._flush_due():
                self._flush(list(self._partitions))
            if last_activity is None or messages:
                last_activity = self._assignment.assigned_at and time.monotonic()
            if not last_activity:
                continue
            idle_s = time.monotonic() - last_activity
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
                log.warning(
                    "consumer error, continuing: %s",
                    error,
                    extra={"topic": msg.topic(), "partition": msg.partition()},
                )
            return

        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        state = self._partitions.get(partition)
        if state is None:
            return
        self._events_in.inc()

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
        assert self._deserializer is not None and self._evolution is not None
        deserializer = self._deserializer
        schema_id, record = retry(
            f"decode {self._topic}[{partition}]@{offset}",
            lambda: deserializer.decode(msg.value()),
            self._settings,
        )
        # A writer schema met for the first time may need columns first.
        self._evolution.accept(
            schema_id, topic=self._topic, partition=partition, offset=offset
        )
        kind, millis = msg.timestamp()
        timestamp = (
            kafka_time(millis) if kind != TIMESTAMP_NOT_AVAILABLE else datetime.now(UTC)
        )
        try:
            return self._writer.layout.to_row(
                record,
                topic=self._topic,
                partition=partition,
                offset=offset,
                timestamp=timestamp,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EventDecodeError(f"record does not form a row: {exc!r}") from exc

    def _refresh_lag(self) -> None:
        """High watermark minus position per partition, from the consumer's cache.

        librdkafka keeps the high watermark of every fetch, so this asks
        Kafka nothing. Its position moves past transaction markers, so a
        drained partition shows 0 (checked by test_metrics_endpoint).
        """
        assert self._consumer is not None
        tps = [TopicPartition(self._topic, n) for n in self._partitions]
        lags = {}
        for tp in self._consumer.position(tps) if tps else []:
            state = self._partitions.get(tp.partition)
            watermarks = self._consumer.get_watermark_offsets(tp, cached=True)
            if state is None or not watermarks or watermarks[1] < 0:
                continue
            lags[tp.partition] = max(watermarks[1] - max(state.position, tp.offset), 0)
        self._lag.update(lags)

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
        """Store what is pending for ``partitions``, then commit their offsets."""
        states = [self._partitions[n] for n in partitions if n in self._partitions]
        self._flusher.flush(states)

        offsets = [
            TopicPartition(self._topic, state.partition, state.position)
            for state in states
            if state.position > state.committed
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
                " reads these partitions next leaves them out by the stored-offset"
                " check",
                exc,
                extra={"topic": self._topic},
            )
            return
        for tp in results or offsets:
            if tp.error is not None:
                log.warning(
                    "offset not committed: %s",
                    tp.error,
                    extra={
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "offset": tp.offset,
                    },
                )
                continue
            state = self._partitions.get(tp.partition)
            if state is not None:
                state.committed = tp.offset
                state.dirty_since = None
        self.stats.commits += 1
        metrics.SINK_COMMITS.inc()
        log.debug(
            "committed",
            extra={
                "topic": self._topic,
                "offsets": ",".join(f"{tp.partition}:{tp.offset}" for tp in offsets),
            },
        )

    def _close(self) -> None:
        if self._consumer is not None:
            if self._assignment.failed:
                self._partitions.clear()
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("consumer close failed: %s", exc)
            self._consumer = None
        self._dead_letter.close()
        self._writer.close()
        if not self._assignment.failed:
            self._assignment.raise_error()
