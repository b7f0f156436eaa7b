"""Corrections to faust-streaming 0.15 that exactly-once recovery depends on.

1. Restore up to the broker's last stable offset
------------------------------------------------

Faust restores a table by reading its changelog up to a "highwater". Under
exactly-once its Kafka driver takes that highwater from the consumer's cached
last stable offset (``AIOKafkaConsumer.last_stable_offset``): the value the
last fetch response carried, or None before any fetch. After a restart the
cache can predate the commit markers of the killed worker's last transaction,
so recovery stops short of records that were committed together with their
source offsets. The booking state then lags what was already routed: the next
event of such a booking goes to the dead letters as ``seq_gap``, or an event
whose output is committed is routed a second time (seen in the fault test
that kills the processor mid-stream, about one run in ten).

The fix asks the broker instead: ``end_offsets`` sends a ListOffsets request
with the consumer's isolation level, and a read_committed consumer gets the
current last stable offset. Faust starts the transactional producers of the
assigned partitions (fencing the previous worker, whose open transactions are
aborted and whose committing ones complete) before recovery asks, so the
answer covers everything that will ever be committed by the previous owner.

2. Seek the stream partitions before resuming them
--------------------------------------------------

When recovery ends, faust resumes the source partitions and only then seeks
them to their committed offsets. Its fetcher is already running, so records
are fetched and handed to the agent from wherever the consumer stood, while
the seek (a round trip to the group coordinator) is under way. Faust then
resets its "read up to" mark to the committed offset, the batch already in
hand moves the mark past it again, and the records fetched after the seek,
from the committed offset on, are discarded as already read. The first record
of a partition can get lost this way: the fault test that kills the processor
mid-stream saw it dead-letter the next event of that booking as ``seq_gap``
(3 of 10 traced restarts resumed a partition past its committed offset; the
record is lost when its effects were in the aborted transaction). The fix
keeps the partitions paused until the seek has completed, so nothing is
fetched from a stale position.

Checked against faust-streaming 0.15.x (pinned in pyproject.toml).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from faust.tables import recovery as faust_recovery
from faust.transport.drivers import aiokafka as faust_aiokafka


async def fresh_highwaters(thread: Any, partitions: Iterable[Any]) -> Mapping[Any, int]:
    """End offsets of ``partitions`` as the broker reports them now.

    For a read_committed consumer (exactly-once) that is the last stable
    offset; otherwise the high watermark, as in faust.
    """
    consumer = thread._ensure_consumer()
    return dict(await consumer.end_offsets(list(partitions)))


RecoveryStep = Callable[..., Awaitable[None]]


def seek_before_resume(step: RecoveryStep) -> RecoveryStep:
    """Wrap a recovery step that resumes partitions and then seeks them.

    While ``step`` runs, the consumer's ``resume_partitions`` only notes the
    partitions, and its ``perform_seek`` resumes them once the seek is done.
    Partitions noted but never sought (the step stopped early, for example on
    a new rebalance) are resumed when it returns, as faust would have.
    """

    @functools.wraps(step)
    async def wrapped(recovery: Any, *args: Any, **kwargs: Any) -> None:
        consumer = recovery.app.consumer
        resume, seek = consumer.resume_partitions, consumer.perform_seek
        held: set[Any] = set()

        def hold(partitions: Iterable[Any]) -> None:
            held.update(partitions)

        async def seek_then_resume() -> None:
            await seek()
            resume(set(held))
            held.clear()

        consumer.resume_partitions = hold
        consumer.perform_seek = seek_then_resume
        try:
            await step(recovery, *args, **kwargs)
        finally:
            consumer.resume_partitions = resume
            consumer.perform_seek = seek
            if held:
                resume(held)

    wrapped.seeks_before_resuming = True  # type: ignore[attr-defined]
    return wrapped


def apply() -> None:
    """Install both corrections; calling it again changes nothing."""
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = fresh_highwaters  # type: ignore[method-assign,assignment]
    recovery = faust_recovery.Recovery
    for name in ("_resume_streams", "on_recovery_completed"):
        step = getattr(recovery, name)
        if not getattr(step, "seeks_before_resuming", False):
            setattr(recovery, name, seek_before_resume(step))
