"""Which partitions the sink holds, and what happens when the group changes them.

Assigned: the sink starts at the committed offset and holds nothing yet (what
is already stored is found by the flush's own check, not here). Revoked: the
sink still owns the partitions during the callback, so it flushes and commits
them before letting go. Lost (the group evicted the sink, e.g. after a stall
past the session timeout): another member may already own them, so the
pending rows are dropped unflushed and uncommitted; the new owner reads them
again. The exactly-once argument does not depend on these callbacks running
in time (a stalled sink runs nothing); they only spare a zombie useless work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PartitionState:
    """What the sink holds for one assigned partition.

    Attributes:
        partition: The Kafka partition.
        committed: The offset last committed (or found committed).
        position: One past the last record handled.
        offsets: Offsets of the pending rows, ascending.
        rows: The pending rows, parallel to ``offsets``.
        dirty_since: When the oldest unflushed record was handled (monotonic).
    """

    partition: int
    committed: int
    position: int
    offsets: list[int] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    dirty_since: float | None = None

    def advance(self, offset: int) -> None:
        self.position = offset + 1
        if self.dirty_since is None:
            self.dirty_since = time.monotonic()


@dataclass(slots=True)
class SinkStats:
    """Counters of one run, for logs and tests.

    ``rows_inserted`` counts rows sent in inserts; a block ClickHouse dropped
    as a duplicate is counted too (``rounds_repeated`` says it happened).
    """

    rows_inserted: int = 0
    inserts: int = 0
    insert_s: float = 0.0
    records_skipped: int = 0
    records_dead_lettered: int = 0
    commits: int = 0
    rounds_repeated: int = 0


class Assignment:
    """The partitions of one topic this sink owns, kept by the rebalance callbacks.

    Args:
        topic: The topic.
        flush_and_commit: Stores and commits the given partitions; called on
            revocation.
        commit_timeout_s: How long the committed-offset lookup may take.
    """

    def __init__(
        self,
        topic: str,
        flush_and_commit: Callable[[list[int]], None],
        commit_timeout_s: float,
    ) -> None:
        self.topic = topic
        self.states: dict[int, PartitionState] = {}
        self.error: BaseException | None = None
        self.failed = False
        self.assigned_at: float | None = None
        self._flush_and_commit = flush_and_commit
        self._commit_timeout_s = commit_timeout_s

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            committed = consumer.committed(partitions, timeout=self._commit_timeout_s)
            for tp in committed:
                start = tp.offset if tp.offset >= 0 else 0
                self.states[tp.partition] = PartitionState(
                    tp.partition, committed=start, position=start
                )
                log.info(
                    "assigned",
                    extra={
                        "topic": self.topic,
                        "partition": tp.partition,
                        "committed": tp.offset,
                    },
                )
            self.assigned_at = time.monotonic()
        except BaseException as exc:
            self.error = exc

    def on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions if tp.partition in self.states]
        try:
            if numbers and not self.failed:
                self._flush_and_commit(numbers)
        except BaseException as exc:
            self.failed = True
            self.error = exc
        finally:
            for number in numbers:
                self.states.pop(number, None)
            if numbers:
                log.info(
                    "revoked",
                    extra={"topic": self.topic, "partitions": _numbers(numbers)},
                )

    def on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        for number in numbers:
            self.states.pop(number, None)
        log.warning(
            "partitions lost: pending rows dropped uncommitted; the new owner reads"
            " them again",
            extra={"topic": self.topic, "partitions": _numbers(numbers)},
        )

    def raise_error(self) -> None:
        """Raise what a callback caught, once."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def _numbers(partitions: list[int]) -> str:
    """``0,3,5``: a list of partitions as one log field value."""
    return ",".join(str(n) for n in sorted(partitions))
