"""One flush: every pending row into ClickHouse exactly once, then return.

The steps (why they are enough is in ``sinks.connector``):

1. ask ClickHouse which pending offsets it already holds (one query for all
   partitions of the flush) and leave those rows out;
2. insert the rest as one block per (Kafka partition, month), each under the
   token of its first offset;
3. ask ClickHouse how many pending offsets it now holds (one query). Equal to
   the pending rows: done. Fewer: a block was dropped because another sink
   had stored a block starting at the same record; go back to 1 for those
   partitions, so the missing rows go out as a block that starts where the
   stored one ended.

With ``deduplication`` off (negative-control test only) the flush inserts
everything once, without token and without either check.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import UTC, datetime

from booking_events import metrics
from sinks.config import SinkSettings
from sinks.exceptions import DuplicateTokenError
from sinks.rebalance import PartitionState, SinkStats
from sinks.rows import OCCURRED_AT, insert_groups
from sinks.testing import PausePoints
from sinks.writer import ClickHouseWriter

log = logging.getLogger(__name__)

MAX_ROUNDS = 5
"""Check-insert-check rounds of one flush before the sink gives up.

A round repeats only when another sink stored some of the same records in
between, which needs that sink to be a step ahead each time.
"""


class Flusher:
    """Writes the pending rows of some partitions and returns once all are stored.

    Args:
        topic: The topic the rows come from.
        writer: The ClickHouse side.
        settings: Whether to deduplicate, and the test pause points.
        stats: Counters to update.
    """

    def __init__(
        self,
        topic: str,
        writer: ClickHouseWriter,
        settings: SinkSettings,
        stats: SinkStats,
    ) -> None:
        self._topic = topic
        self._writer = writer
        self._deduplicate = settings.deduplication
        self._pause = PausePoints(settings)
        self.stats = stats

    def flush(self, states: list[PartitionState]) -> None:
        """Store the pending rows of ``states`` and clear them.

        Raises:
            SinkError: ClickHouse refused, stayed away past the retry budget,
                or rows stayed missing after MAX_ROUNDS; nothing is cleared.
        """
        batches = {state.partition: state for state in states if state.rows}
        if not batches:
            return
        started = time.monotonic()
        ingested_at = datetime.now(UTC)
        metrics.SINK_BATCH_SIZE.observe(sum(len(s.rows) for s in batches.values()))

        if self._deduplicate:
            self._store_exactly_once(batches, ingested_at)
        else:
            self._pause.reached("before_insert", self.stats.rows_inserted)
            for state in batches.values():
                self._insert(state, set(), ingested_at)

        newest = max(max(r[OCCURRED_AT] for r in s.rows) for s in batches.values())
        metrics.SINK_NEWEST_EVENT.set(newest.timestamp())
        metrics.SINK_LAST_FLUSH.set_to_current_time()
        for state in batches.values():
            state.offsets, state.rows = [], []
        self.stats.insert_s += time.monotonic() - started
        self._pause.reached("after_insert", self.stats.rows_inserted)

    def _store_exactly_once(
        self, batches: dict[int, PartitionState], ingested_at: datetime
    ) -> None:
        for attempt in range(1, MAX_ROUNDS + 1):
            # 1. What is already there: left out of the blocks.
            ranges = {n: (s.offsets[0], s.offsets[-1]) for n, s in batches.items()}
            stored = self._writer.stored_offsets(self._topic, ranges)
            already = sum(len(found) for found in stored.values())
            if attempt == 1:
                self.stats.records_skipped += already
                metrics.SINK_ALREADY_STORED.inc(already)
            self._pause.reached("before_insert", self.stats.rows_inserted)

            # 2. One block per (partition, month), token = its first offset.
            for number, state in batches.items():
                self._insert(state, stored[number], ingested_at)

            # 3. Did every block land? A dropped one looks like a success.
            counts = self._writer.stored_counts(self._topic, ranges)
            short = {n: s for n, s in batches.items() if counts[n] < len(s.rows)}
            for number, state in batches.items():
                if counts[number] > len(state.rows):
                    log.error(
                        "more rows than records: duplicates from outside this flush"
                        " (deduplication window exceeded?); run the audit",
                        extra={
                            "topic": self._topic,
                            "partition": number,
                            "offsets": f"{state.offsets[0]}-{state.offsets[-1]}",
                            "stored": counts[number],
                            "records": len(state.rows),
                        },
                    )
            if not short:
                return
            self.stats.rounds_repeated += 1
            metrics.SINK_ROUNDS_REPEATED.inc()
            log.info(
                "another sink stored some of these records first; sending the rest",
                extra={
                    "topic": self._topic,
                    "stored": ",".join(
                        f"{n}:{counts[n]}/{len(s.rows)}" for n, s in short.items()
                    ),
                    "round": attempt,
                },
            )
            batches = short
        raise DuplicateTokenError(
            f"rows of {self._topic} partitions {sorted(batches)} still missing after"
            f" {MAX_ROUNDS} rounds although ClickHouse accepted their inserts: their"
            " tokens are in the deduplication log of rows deleted since; offsets not"
            " committed. Reset the table's deduplication log or replay into a new"
            " table."
        )

    def _insert(
        self, state: PartitionState, stored: set[int], ingested_at: datetime
    ) -> None:
        groups = insert_groups(
            self._topic, state.partition, state.offsets, state.rows, stored
        )
        for group in groups:
            rows_before = self.stats.rows_inserted
            insert_started = time.perf_counter()
            self._writer.insert(
                group,
                ingested_at,
                deduplicate=self._deduplicate,
                extra_settings=self._pause.insert_settings(rows_before),
                body=functools.partial(
                    self._pause.inside_insert, rows_inserted=rows_before
                ),
            )
            metrics.SINK_INSERT_DURATION.observe(time.perf_counter() - insert_started)
            metrics.SINK_ROWS_INSERTED.inc(len(group.rows))
            self.stats.inserts += 1
            self.stats.rows_inserted += len(group.rows)
