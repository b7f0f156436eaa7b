"""Entry point of ``booking-events``.

Exit codes: 0 success, 1 a check failed (for example a report that is not
clean), 2 wrong usage or configuration, 3 a service could not be reached or a
job failed. ``--debug`` shows tracebacks and debug logs.
"""

from __future__ import annotations

import logging
import sys

import click

from booking_events.exceptions import BookingEventsError

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3

log = logging.getLogger(__name__)


class _Cli(click.Group):
    """Turns project errors into one readable line and an exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BookingEventsError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(EXIT_FAILURE)


@click.group(cls=_Cli)
@click.option("--debug", is_flag=True, help="Debug logs and full tracebacks.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Kafka event streaming pipeline for booking systems."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Client libraries log every HTTP request at INFO; keep those for --debug.
    for noisy in ("httpx", "httpx2", "kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)


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
    ):
        try:
            module = importlib.import_module(f"booking_events.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"booking_events.cli.{name}":
                continue
            raise
        main.add_command(module.command)


_register()
