"""``booking-events stack``: the local Kafka, Schema Registry and ClickHouse.

Ports and the state dir come from ``BOOKING_EVENTS_STACK_*`` (for example
``BOOKING_EVENTS_STACK_KAFKA_PORT``); ``--state-dir`` overrides the latter.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from booking_events.stack import LocalStack, StackSettings

EXIT_SERVICE_DOWN = 1


@click.group("stack")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Libraries, data, logs and pid files [env BOOKING_EVENTS_STACK_STATE_DIR; "
    "default .state].",
)
@click.pass_context
def command(ctx: click.Context, state_dir: Path | None) -> None:
    """Run Kafka, Apicurio Registry and ClickHouse locally, on 127.0.0.1."""
    settings = StackSettings()
    ctx.ensure_object(dict)
    ctx.obj["stack"] = LocalStack(state_dir or settings.state_dir, settings=settings)


def _stack(ctx: click.Context) -> LocalStack:
    stack: LocalStack = ctx.obj["stack"]
    return stack


@command.command()
@click.pass_context
def install(ctx: click.Context) -> None:
    """Fetch Kafka and Apicurio Registry from Maven Central (if missing)."""
    stack = _stack(ctx)
    began = time.monotonic()
    stack.install()
    click.echo(f"installed in {stack.state_dir / 'lib'} ({_since(began)})")


@command.command()
@click.option("--fresh", is_flag=True, help="Wipe the services' data first.")
@click.pass_context
def up(ctx: click.Context, fresh: bool) -> None:
    """Start the services (unless running) and wait until they answer."""
    stack = _stack(ctx)
    began = time.monotonic()
    stack.start(fresh=fresh)
    click.echo(f"stack healthy ({_since(began)}); logs in {stack.state_dir / 'logs'}")
    for name, value in stack.env().items():
        click.echo(f"  {name}={value}")


@command.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the services started from this state dir."""
    stack = _stack(ctx)
    began = time.monotonic()
    stack.stop()
    click.echo(f"stack stopped ({_since(began)})")


@command.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show each service and whether it answers; exit 1 if any does not."""
    stack = _stack(ctx)
    health = stack.status()
    for name, healthy in health.items():
        endpoint = stack.services[name].endpoint
        mark = (
            click.style("yes", fg="green") if healthy else click.style("no", fg="red")
        )
        click.echo(f"{name:<11} {endpoint:<45} healthy: {mark}")
    if not all(health.values()):
        ctx.exit(EXIT_SERVICE_DOWN)


@command.command()
@click.pass_context
def env(ctx: click.Context) -> None:
    """Print `export` lines pointing the pipeline at this stack (eval them)."""
    for name, value in _stack(ctx).env().items():
        click.echo(f"export {name}={value}")


def _since(began: float) -> str:
    return f"{time.monotonic() - began:.1f}s"
