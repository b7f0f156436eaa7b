"""The flush's exactly-once argument, checked over many random interleavings.

A model of ClickHouse (atomic blocks, a token log) stands in for the writer;
several flushers run in threads and a scheduler lets exactly one of them make
its next ClickHouse call at a time, picked at random. Every interleaving of
check, insert and count is possible, including a zombie whose check is
arbitrarily old when its insert lands, and batches with different
boundaries over the same records.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from sinks.config import SinkSettings
from sinks.exceptions import DuplicateTokenError
from sinks.flush import Flusher
from sinks.rebalance import PartitionState, SinkStats
from sinks.rows import COLUMN_NAMES, OCCURRED_AT, InsertGroup

TOPIC = "v"


class Scheduler:
    """Runs one ClickHouse call at a time, choosing among the waiting threads."""

    def __init__(self, rng: random.Random, workers: int) -> None:
        self._rng = rng
        self._cond = threading.Condition()
        self._live = workers
        self._waiting: set[int] = set()
        self._turn: int | None = None

    def step(self, me: int) -> None:
        with self._cond:
            self._waiting.add(me)
            self._pick()
            self._cond.wait_for(lambda: self._turn == me, timeout=10)
            assert self._turn == me, "scheduler stuck"
            self._waiting.discard(me)
            self._turn = None

    def done(self) -> None:
        with self._cond:
            self._live -= 1
            self._pick()

    def _pick(self) -> None:
        if self._turn is None and self._waiting and len(self._waiting) == self._live:
            self._turn = self._rng.choice(sorted(self._waiting))
            self._cond.notify_all()


class ModelClickHouse:
    """Atomic one-block inserts and a token log, as a MergeTree with a window."""

    def __init__(self) -> None:
        self.copies: Counter[int] = Counter()
        self.tokens: set[str] = set()
        self.lock = threading.Lock()


class ModelWriter:
    """The ClickHouseWriter interface the flusher uses, over the model."""

    def __init__(self, db: ModelClickHouse, sched: Scheduler, me: int) -> None:
        self._db, self._sched, self._me = db, sched, me

    def stored_offsets(
        self, topic: str, ranges: Mapping[int, tuple[int, int]]
    ) -> dict[int, set[int]]:
        self._sched.step(self._me)
        ((number, (first, last)),) = ranges.items()
        return {number: {o for o in self._db.copies if first <= o <= last}}

    def stored_counts(
        self, topic: str, ranges: Mapping[int, tuple[int, int]]
    ) -> dict[int, int]:
        return {n: len(s) for n, s in self.stored_offsets(topic, ranges).items()}

    def insert(self, group: InsertGroup, ingested_at: datetime, **options: Any) -> None:
        self._sched.step(self._me)
        deduplicate = options.get("deduplicate", True)
        with self._db.lock:
            if deduplicate and group.token in self._db.tokens:
                return  # dropped, and reported as a success
            self._db.tokens.add(group.token)
            self._db.copies.update(group.offsets)


def _months(rng: random.Random, count: int) -> list[int]:
    """Months in runs, the way a time-ordered stream crosses month ends."""
    months, month = [], 1
    for _ in range(count):
        if rng.random() < 0.15:
            month = rng.choice([1, 2, 3])
        months.append(month)
    return months


def _state(start: int, end: int, months: list[int]) -> PartitionState:
    state = PartitionState(0, committed=start, position=end)
    for offset in range(start, end):
        row: list[Any] = [None] * len(COLUMN_NAMES)
        row[OCCURRED_AT] = datetime(2024, months[offset], 1, tzinfo=UTC)
        state.offsets.append(offset)
        state.rows.append(row)
    return state


def _race(seed: int, deduplication: bool = True) -> tuple[Counter[int], int]:
    """Sinks flush overlapping ranges of one partition in a random interleaving.

    Returns each offset's stored copies, and the number of records.
    """
    rng = random.Random(seed)
    records = rng.randint(5, 40)
    months = _months(rng, records)
    db = ModelClickHouse()
    settings = SinkSettings(deduplication=deduplication)

    # Some records stored and committed before; each sink starts at some
    # commit at or below that (an older one for a zombie) and reads on.
    frontier = rng.randint(0, records - 1)
    batches = []
    for _ in range(rng.randint(2, 4)):
        start = rng.randint(0, frontier)
        batches.append((start, rng.randint(start + 1, records)))
    if frontier:
        _store_alone(db, settings, _state(0, frontier, months))

    sched = Scheduler(rng, len(batches))
    errors: list[BaseException] = []

    def sink(me: int, start: int, end: int) -> None:
        state = _state(start, end, months)
        flusher = Flusher(TOPIC, ModelWriter(db, sched, me), settings, SinkStats())
        try:
            flusher.flush([state])
            # Returned: every record of its batch is stored (nothing lost).
            assert all(db.copies[o] for o in range(start, end)), (start, end)
        except BaseException as exc:
            errors.append(exc)
        finally:
            sched.done()

    threads = [
        threading.Thread(target=sink, args=(i, a, b))
        for i, (a, b) in enumerate(batches)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return db.copies, max(max(end for _, end in batches), frontier)


def _store_alone(
    db: ModelClickHouse, settings: SinkSettings, state: PartitionState
) -> None:
    writer = ModelWriter(db, Scheduler(random.Random(0), 1), 0)
    Flusher(TOPIC, writer, settings, SinkStats()).flush([state])


@pytest.mark.parametrize("seed", range(300))
def test_no_interleaving_of_sinks_stores_a_record_twice_or_loses_one(
    seed: int,
) -> None:
    copies, reached = _race(seed)

    assert sorted(copies) == list(range(reached))
    assert set(copies.values()) == {1}


def test_the_race_model_catches_a_token_that_names_the_whole_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The obvious token, first and last offset, lets a zombie's shorter block
    # and the new owner's longer one both in: the model must see that.
    monkeypatch.setattr(
        InsertGroup,
        "token",
        property(lambda g: f"{g.partition}/{g.month}/{g.offsets[0]}-{g.offsets[-1]}"),
    )

    duplicated = [s for s in range(300) if max(_race(s)[0].values()) > 1]

    assert duplicated


def test_without_deduplication_the_race_stores_records_twice() -> None:
    duplicated = [s for s in range(50) if max(_race(s, False)[0].values()) > 1]

    assert duplicated


def test_a_token_remembered_for_deleted_rows_stops_the_flush() -> None:
    db = ModelClickHouse()
    db.tokens.add(f"{TOPIC}/0/202401/0")  # rows inserted, then TRUNCATEd
    sched = Scheduler(random.Random(0), 1)
    flusher = Flusher(TOPIC, ModelWriter(db, sched, 0), SinkSettings(), SinkStats())

    with pytest.raises(DuplicateTokenError, match="offsets not committed"):
        flusher.flush([_state(0, 3, [1, 1, 1])])
