"""``booking-events report``: reconcile Kafka with ClickHouse."""

from __future__ import annotations

import click

from booking_events.reconcile import reconcile
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)


@click.command("report")
@click.option("--show", default=10, show_default=True, help="Offending ids to list.")
@click.pass_context
def command(ctx: click.Context, show: int) -> None:
    """Count produced, stored and dead-lettered events; exit 1 if any event is
    lost or duplicated."""
    result = reconcile(
        KafkaSettings(), RegistrySettings(), ClickHouseSettings(), TopicSettings()
    )
    for label, ids in (
        ("lost", result.lost_ids),
        ("duplicated", result.duplicated_ids),
    ):
        for event_id in ids[:show]:
            click.echo(f"{label}\t{event_id}", err=True)
    click.echo(result.line())
    if not result.clean:
        ctx.exit(1)
