"""What the processor reports to Prometheus beyond the router's counters.

Commits are seen by a faust sensor; consumer lag is read on a timer from the
consumer's own state (the high watermark of the last fetch and the offset of
the last record read), so measuring it costs no request to Kafka.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors import Sensor

from booking_events import metrics


class CommitSensor(Sensor):
    """Counts the commits that moved at least one committed offset.

    faust reports every commit attempt, also those with nothing to commit;
    comparing the consumer's committed offsets before and after tells them
    apart.
    """

    def on_commit_initiated(self, consumer: Any) -> Any:
        # faust-internal (checked on faust-streaming 0.15.x); without it,
        # commits go uncounted rather than failing.
        return dict(getattr(consumer, "_committed_offset", None) or {})

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        committed = getattr(consumer, "_committed_offset", None) or {}
        if state is not None and dict(committed) != state:
            metrics.PROCESSOR_COMMITS.inc()


def partition_lags(app: faust.App, topic: str) -> dict[int, int]:
    """High watermark minus position of each assigned partition of ``topic``.

    Partitions whose high watermark is not known yet (nothing fetched) are
    left out.
    """
    consumer: Any = app.consumer
    lags = {}
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        high = consumer.highwater(tp)
        if high is None:
            continue
        read = consumer._read_offset.get(tp)
        if read is not None:
            position = read + 1
        else:
            position = consumer._committed_offset.get(tp) or 0
        lags[tp.partition] = max(high - position, 0)
    return lags
