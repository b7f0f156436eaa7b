"""``booking-events pipeline``: the main job, end to end."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click

from booking_events import metrics
from booking_events.cli.main import EXIT_INTERRUPTED
from booking_events.pipeline import peak_rss_mib, run_pipeline


def command_name() -> str:
    """How the user can call this CLI again from here.

    ``booking-events`` when that is on PATH (an activated virtualenv), else the
    path of the running script, relative where possible (``make pipeline``
    runs ``.venv/bin/booking-events``).
    """
    script = Path(sys.argv[0]).resolve()
    found = shutil.which("booking-events")
    if found and Path(found).resolve() == script:
        return "booking-events"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


@click.command("pipeline")
@click.option(
    "--local-stack/--external",
    default=True,
    show_default=True,
    help="Start the local Kafka, registry and ClickHouse, or use the endpoints"
    " in BOOKING_EVENTS_* variables.",
)
@click.option(
    "--fresh/--keep-data",
    default=True,
    show_default=True,
    help="Wipe the local stack's data first, so the report covers this run only.",
)
@click.option(
    "--bookings", "limit", type=click.IntRange(min=1), help="Only the first N bookings."
)
@click.option("--drain-timeout", "drain_timeout_s", default=600.0, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def command(
    ctx: click.Context,
    local_stack: bool,
    fresh: bool,
    limit: int | None,
    drain_timeout_s: float,
    progress: bool,
) -> None:
    """Start the stack, replay the hotel_rates bookings through processor and
    sink, and print produced/stored/dead_lettered/lost/duplicated from Kafka
    and ClickHouse. Exit 1 unless nothing was lost or duplicated."""
    from booking_events.stack.config import StackSettings

    state_dir = StackSettings().state_dir
    # The job's own metrics (the replay's producer); its workers get the
    # next two ports (booking_events.pipeline.worker_metrics_env).
    metrics.serve(role="pipeline")
    stack_peaks: dict[str, float] = {}
    if local_stack:
        from booking_events.stack import LocalStack

        stack = LocalStack(state_dir)
        started = time.monotonic()
        stack.install()
        click.echo(f"stack installed in {time.monotonic() - started:.1f} s", err=True)
        started = time.monotonic()
        stack.start(fresh=fresh)
        click.echo(f"stack healthy in {time.monotonic() - started:.1f} s", err=True)
        os.environ.update(stack.env())

    try:
        result = run_pipeline(
            state_dir,
            bookings_limit=limit,
            drain_timeout_s=drain_timeout_s,
            progress=progress,
        )
    except KeyboardInterrupt:
        if ctx.obj and ctx.obj.get("debug"):
            raise
        stack_note = (
            f"; the stack keeps running: stop it with `{command_name()} stack down`"
            if local_stack
            else ""
        )
        click.secho(f"interrupted: processor and sink stopped{stack_note}", err=True)
        ctx.exit(EXIT_INTERRUPTED)

    if local_stack:
        for name, service in stack.services.items():
            pid = service.pid()
            peak = peak_rss_mib(pid) if pid else None
            if peak is not None:
                stack_peaks[name] = peak
    for name, seconds in result.seconds.items():
        click.echo(f"time {name}: {seconds:.1f} s", err=True)
    for name, mib in {**result.peak_rss_mib, **stack_peaks}.items():
        click.echo(f"peak memory {name}: {mib:.0f} MiB", err=True)
    if local_stack:
        cli = command_name()
        click.echo(
            f"the stack keeps running: try `{cli} query --example events_per_type`"
            f" (or `{cli} query --list-examples`); stop it with `{cli} stack down`",
            err=True,
        )
    click.echo(result.reconciliation.line())
    if not result.reconciliation.clean:
        ctx.exit(1)
