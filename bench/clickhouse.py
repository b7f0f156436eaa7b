"""ClickHouse side of the benchmark: per-arm databases, row counts, latencies.

Every ClickHouse arm stores ``kafka_timestamp`` (the raw record's produce
time) and ``ingested_at`` (when its writer sent the row) with each row, so
produce-to-queryable latency is read from the table the same way for all.
"""

from __future__ import annotations

from typing import Any

import clickhouse_connect

from booking_events.settings import ClickHouseSettings

TABLE = "booking_events"
"""Table name in every arm's database (the pipeline sink's default)."""


def client(settings: ClickHouseSettings) -> Any:
    return clickhouse_connect.get_client(**settings.client_kwargs())


def database_for(run_id: str, arm: str) -> str:
    return f"bench_{run_id}_{arm}".replace("-", "_").replace(".", "_")


def stored_rows(ch: Any, database: str) -> int:
    """Rows in the arm's table; 0 while it does not exist yet."""
    if not int(ch.command(f"EXISTS TABLE `{database}`.`{TABLE}`")):
        return 0
    return int(ch.command(f"SELECT count() FROM `{database}`.`{TABLE}`"))


def latencies_ms(ch: Any, database: str) -> list[float]:
    """Produce-to-ingest latency of every row, milliseconds."""
    result = ch.query(
        "SELECT toUnixTimestamp64Milli(ingested_at)"
        " - toUnixTimestamp64Milli(kafka_timestamp)"
        f" FROM `{database}`.`{TABLE}`"
    )
    return [float(row[0]) for row in result.result_rows]


def drop_database(ch: Any, database: str) -> None:
    ch.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
