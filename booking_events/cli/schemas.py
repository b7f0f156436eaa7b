"""``booking-events schemas``: register the event schema and check changes to it."""

from __future__ import annotations

import click

from booking_events import schema_registry
from booking_events.settings import RegistrySettings, TopicSettings

EXIT_CHECK_FAILED = 1


@click.group("schemas")
def command() -> None:
    """The event schema in the Schema Registry (subjects <topic>-value of the
    raw and validated topics)."""


@command.command("register")
@click.option(
    "--compatibility",
    type=click.Choice(schema_registry.LEVELS, case_sensitive=False),
    default=schema_registry.DEFAULT_LEVEL,
    show_default=True,
    help="Compatibility level set on each subject. BACKWARD: a new schema must"
    " read the events already written, so consumers upgrade first and the topics"
    " stay replayable from the start.",
)
def register(compatibility: str) -> None:
    """Register this code's event schema and set each subject's compatibility
    level explicitly (idempotent). Run it before producers that have
    BOOKING_EVENTS_PRODUCER_AUTO_REGISTER_SCHEMA=false."""
    from schemas import EVENT_SCHEMA

    registry = schema_registry.client(RegistrySettings())
    done = schema_registry.register(
        registry,
        EVENT_SCHEMA,
        schema_registry.subjects(TopicSettings()),
        compatibility.upper(),
    )
    for item in done:
        click.echo(
            f"{item.subject}\tschema_id={item.schema_id}\tcompatibility={item.level}"
        )


@command.command("check")
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check this code's event schema against the latest registered version of
    each subject, under the subject's compatibility level. Exit 0 when
    compatible (or not registered yet), 1 when not, naming each field and rule."""
    from schemas import EVENT_SCHEMA

    registry = schema_registry.client(RegistrySettings())
    failed = False
    for subject in schema_registry.subjects(TopicSettings()):
        result = schema_registry.check(registry, EVENT_SCHEMA, subject)
        if not result.registered:
            click.echo(f"{subject}\tnot registered yet: nothing to be compatible with")
            continue
        where = f"{subject}\tlatest=v{result.latest_version}\tlevel={result.level}"
        if result.compatible:
            click.echo(f"{where}\tcompatible")
            continue
        failed = True
        click.secho(f"{where}\tINCOMPATIBLE", fg="red", err=True)
        for problem in result.problems:
            click.echo(f"  - {problem}", err=True)
    if failed:
        ctx.exit(EXIT_CHECK_FAILED)
