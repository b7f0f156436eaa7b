"""``booking-events audit``: prove that Kafka and ClickHouse agree."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from booking_events.audit import audit
from booking_events.cli.main import EXIT_CHECK_FAILED
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)


class _Moment(click.ParamType):
    """An ISO 8601 date or time; without an offset it is taken as UTC."""

    name = "ISO-TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(str(value))
            except ValueError:
                self.fail(f"{value!r} is not an ISO 8601 date or time", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command("audit")
@click.option(
    "--since",
    type=_Moment(),
    default=None,
    help="Audit events with occurred_at at or after this time (UTC unless an"
    " offset is given). Default: the beginning.",
)
@click.option(
    "--until",
    type=_Moment(),
    default=None,
    help="Audit events with occurred_at before this time. Default: no end.",
)
@click.option(
    "--show",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="Offending events to name per kind.",
)
@click.pass_context
def command(
    ctx: click.Context, since: datetime | None, until: datetime | None, show: int
) -> None:
    """Reconcile Kafka with ClickHouse: events produced, stored, dead-lettered,
    lost, duplicated, and per-booking order. Exit 0 only when clean, 1 when
    not; the offending events are named after the summary."""
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("--since must be before --until")
    report = audit(
        KafkaSettings(),
        RegistrySettings(),
        ClickHouseSettings(),
        TopicSettings(),
        since=since,
        until=until,
    )
    click.echo(report.summary())
    for line in report.offenders(show):
        click.echo(line)
    if not report.clean:
        ctx.exit(EXIT_CHECK_FAILED)
