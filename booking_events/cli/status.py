"""``booking-events status``: consumer lag per partition, ClickHouse freshness."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from booking_events.settings import ClickHouseSettings, KafkaSettings, TopicSettings
from booking_events.status import consumer_lag, freshness
from processors.config import ProcessorSettings
from sinks.config import SinkSettings


def pipeline_groups() -> dict[str, str]:
    """The processor's and the sink's consumer groups, each with its topic."""
    topics = TopicSettings()
    return {
        ProcessorSettings().app_id: topics.raw,
        SinkSettings().group_id: topics.validated,
    }


@click.command("status")
def command() -> None:
    """Show lag per partition for the processor and sink consumer groups, and
    how fresh the ClickHouse event log is."""
    groups = pipeline_groups()
    lags = consumer_lag(KafkaSettings(), groups)

    table = Table(title="consumer lag", header_style="bold")
    for column in ("group", "topic", "partition", "committed", "end", "lag"):
        table.add_column(column, justify="right" if column != "group" else "left")
    for lag in lags:
        table.add_row(
            lag.group,
            lag.topic,
            str(lag.partition),
            "-" if lag.committed is None else str(lag.committed),
            str(lag.end),
            str(lag.lag),
        )
    console = Console()
    console.print(table)
    for group in groups:
        total = sum(lag.lag for lag in lags if lag.group == group)
        console.print(f"{group}: total lag {total}")

    now = datetime.now(UTC)
    fresh = freshness(ClickHouseSettings(), SinkSettings().table)
    event_age = fresh.event_age_s(now)
    ingest_age = fresh.ingest_age_s(now)
    console.print(
        f"clickhouse: rows={fresh.rows} bookings={fresh.bookings}"
        f" newest_event={fresh.newest_event or '-'}"
        f" event_freshness_s={'-' if event_age is None else f'{event_age:.0f}'}"
        f" last_ingest_age_s={'-' if ingest_age is None else f'{ingest_age:.1f}'}"
    )
