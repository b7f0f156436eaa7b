"""``booking-events query``: run SQL against ClickHouse and print a table."""

from __future__ import annotations

import click
import clickhouse_connect
from rich.console import Console
from rich.table import Table

from booking_events.examples import EXAMPLES
from booking_events.settings import ClickHouseSettings


@click.command("query")
@click.argument("sql", required=False)
@click.option(
    "--example",
    type=click.Choice(sorted(EXAMPLES)),
    help="Run one of the documented example queries.",
)
@click.option("--list-examples", is_flag=True, help="List the example questions.")
def command(sql: str | None, example: str | None, list_examples: bool) -> None:
    """Run SQL in the pipeline's ClickHouse database and print the result.

    Table names resolve in BOOKING_EVENTS_CLICKHOUSE_DATABASE (default
    booking_events), e.g. `booking-events query "SELECT count() FROM
    booking_events"`.
    """
    if list_examples:
        for name, item in EXAMPLES.items():
            click.echo(f"{name}\t{item.question}")
        return
    if example:
        sql = EXAMPLES[example].sql
    if not sql:
        raise click.UsageError("give SQL, --example NAME or --list-examples")

    settings = ClickHouseSettings()
    client = clickhouse_connect.get_client(
        **settings.client_kwargs(), database=settings.database
    )
    try:
        result = client.query(sql)
    finally:
        client.close()

    table = Table(show_header=True, header_style="bold")
    for name in result.column_names:
        table.add_column(name)
    for row in result.result_rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    # Off a terminal (a pipe, a file) nothing limits the width: do not wrap.
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(200, console.width))
    console.print(table)
    click.echo(f"{len(result.result_rows)} row(s)", err=True)
