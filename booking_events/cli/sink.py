"""``booking-events sink``: copy the validated topic into ClickHouse."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from booking_events import metrics
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    MetricsSettings,
    RegistrySettings,
    TopicSettings,
)

log = logging.getLogger(__name__)


@click.command("sink")
@click.option(
    "--idle-exit",
    "idle_exit_s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop once nothing arrived for this many seconds (default: run until"
    " SIGTERM or SIGINT).",
)
def command(idle_exit_s: float | None) -> None:
    """Run the ClickHouse sink in the foreground.

    Reads BOOKING_EVENTS_TOPIC_VALIDATED, writes table BOOKING_EVENTS_SINK_TABLE
    in BOOKING_EVENTS_CLICKHOUSE_DATABASE (both created if missing), and commits
    offsets only after ClickHouse has the rows. SIGTERM or SIGINT flushes,
    commits and exits 0.
    """
    from sinks import ClickHouseSink, SinkSettings

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    metrics_settings = MetricsSettings()
    sink = ClickHouseSink(
        KafkaSettings(),
        RegistrySettings(),
        ClickHouseSettings(),
        TopicSettings(),
        SinkSettings(),
        metrics_settings,
    )
    metrics.serve(metrics_settings, role="sink")
    stats = sink.run(stop_event=stop, idle_exit_s=idle_exit_s)
    click.echo(
        f"rows_inserted={stats.rows_inserted} skipped={stats.records_skipped}"
        f" dead_lettered={stats.records_dead_lettered}"
    )
