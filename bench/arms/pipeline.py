"""Our pipeline: the faust processor and the ClickHouse sink, production settings.

Both run as ``booking-events process`` and ``booking-events sink`` processes,
with every guarantee at its default (exactly-once processing, the sink's
stored-offset check and insert deduplication tokens); only names are changed
so that each run has its own topics, consumer groups and database. The raw
topic is filled by the same producer settings ``BookingEventProducer`` uses.
"""

from __future__ import annotations

from bench.arms.base import Arm, bench_python


class PipelineArm(Arm):
    name = "pipeline"

    def commands(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        env = {
            "BOOKING_EVENTS_TOPIC_RAW": self.topics.raw,
            "BOOKING_EVENTS_TOPIC_VALIDATED": self.topics.validated,
            "BOOKING_EVENTS_TOPIC_DEAD_LETTER": self.topics.dead_letter,
            "BOOKING_EVENTS_PROCESSOR_APP_ID": f"bench-{self.run_id}-processor",
            "BOOKING_EVENTS_PROCESSOR_DATA_DIR": str(self.dir / "processor-data"),
            "BOOKING_EVENTS_SINK_GROUP_ID": f"bench-{self.run_id}-sink",
            "BOOKING_EVENTS_CLICKHOUSE_DATABASE": self.database,
        }
        return {
            "processor": ([*bench_python(), "booking_events", "process"], env),
            "sink": ([*bench_python(), "booking_events", "sink"], env),
        }
