"""A correction to faust-streaming 0.15 that exactly-once recovery depends on.

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

Checked against faust-streaming 0.15.x (pinned in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


async def fresh_highwaters(thread: Any, partitions: Iterable[Any]) -> Mapping[Any, int]:
    """End offsets of ``partitions`` as the broker reports them now.

    For a read_committed consumer (exactly-once) that is the last stable
    offset; otherwise the high watermark, as in faust.
    """
    consumer = thread._ensure_consumer()
    return dict(await consumer.end_offsets(list(partitions)))


def apply() -> None:
    """Make faust's Kafka consumer thread use :func:`fresh_highwaters`."""
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = fresh_highwaters  # type: ignore[method-assign,assignment]
