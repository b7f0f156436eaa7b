"""Entry point of ``booking-events``.

Exit codes: 0 success, 1 a check failed (for example a report that is not
clean), 2 wrong usage or configuration, 3 a service could not be reached or a
job failed, 130 interrupted (Ctrl-C or SIGTERM). ``--debug`` shows tracebacks
and debug logs.
"""

from __future__ import annotations

import logging

import click

from booking_events import logs
from booking_events.exceptions import (
    BookingEventsError,
    ConfigurationError,
    clickhouse_error,
    kafka_error,
)
from booking_events.settings import check_environment, check_values

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3
EXIT_INTERRUPTED = 130
EXIT_BUG = 1
"""An unexpected exception: what Python exits with when it shows a traceback."""

log = logging.getLogger(__name__)


def one_line_error(exc: BaseException) -> tuple[str, int] | None:
    """The message and exit code for an error the command line explains itself.

    Returns ``None`` for anything else, which then shows its traceback: that
    is a bug, not a situation an operator can fix.
    """
    from pydantic import ValidationError

    from booking_events.settings import describe_validation_error

    if isinstance(exc, ConfigurationError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc), EXIT_USAGE
    if isinstance(exc, BookingEventsError):
        return str(exc), EXIT_FAILURE
    translated = _translate_library_error(exc)
    if translated is not None:
        return str(translated), EXIT_FAILURE
    return None


def _translate_library_error(exc: BaseException) -> BookingEventsError | None:
    """Client errors that reached the top untranslated: one line, no traceback."""
    from clickhouse_connect.driver.exceptions import Error as ClickHouseError
    from confluent_kafka import KafkaException

    from booking_events.settings import ClickHouseSettings, KafkaSettings

    if isinstance(exc, ClickHouseError):
        return clickhouse_error(exc, ClickHouseSettings().url)
    if isinstance(exc, KafkaException):
        return kafka_error(exc, KafkaSettings().bootstrap_servers)
    return None


class _Cli(click.Group):
    """Turns expected errors into one readable line and an exit code."""

    def invoke(self, ctx: click.Context) -> object:
        # The subcommand's arguments are only visible here, before dispatch.
        ctx.meta["help_requested"] = "--help" in ctx.args
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # ctx.obj is only filled once the group's callback has run.
            debug = bool(ctx.obj and ctx.obj.get("debug"))
            if debug and not logs.json_lines():
                raise
            if logs.json_lines():
                log.warning("interrupted", extra={"exit_code": EXIT_INTERRUPTED})
            else:
                click.secho("interrupted", fg="red", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            debug = bool(ctx.obj and ctx.obj.get("debug"))
            explained = one_line_error(exc)
            if logs.json_lines():
                # The last line is a JSON object too, its traceback (under
                # --debug, or for a bug) in the one-line exc field.
                code = EXIT_BUG if explained is None else explained[1]
                log.error(
                    "command failed: %s",
                    exc if explained is None else explained[0],
                    exc_info=debug or explained is None,
                    extra={"exit_code": code},
                )
                ctx.exit(code)
            if explained is None or debug:
                raise
            message, code = explained
            click.secho(f"error: {message}", fg="red", err=True)
            if code == EXIT_FAILURE:
                click.echo(
                    "(run `booking-events --debug <command> ...` for the traceback)",
                    err=True,
                )
            ctx.exit(code)


@click.group(cls=_Cli)
@click.option("--debug", is_flag=True, help="Debug logs and full tracebacks.")
@click.version_option(package_name="booking-events")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Kafka event streaming pipeline for booking systems.

    Settings come from BOOKING_EVENTS_* environment variables (see README.md,
    Configuration); an unknown variable with that prefix is an error. Exit
    codes: 0 success, 1 a check failed, 2 usage or configuration error, 3 a
    service could not be reached or a job failed, 130 interrupted.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    # One event per line, text or JSON (BOOKING_EVENTS_LOG_FORMAT), for every
    # subcommand and the libraries under it.
    logs.configure(debug)

    # Before any subcommand reads its settings, so that a misspelt name fails
    # here instead of silently leaving a default in place. Help always works.
    if not ctx.meta.get("help_requested"):
        check_environment()
        check_values()


def _register() -> None:
    """Attach the subcommands; each lives in its own module."""
    import importlib

    for name in (
        "stack",
        "topics",
        "replay",
        "process",
        "sink",
        "pipeline",
        "report",
        "audit",
        "query",
        "status",
        "schemas",
    ):
        try:
            module = importlib.import_module(f"booking_events.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"booking_events.cli.{name}":
                continue
            raise
        main.add_command(module.command)


_register()
