"""DDL of the events table: created when missing, extended when the contract grows.

The table is a plain MergeTree: one row per Kafka record of the validated
topic, partitioned by month of ``occurred_at`` and sorted by
``(booking_id, seq, event_id)`` so one booking's history is one range read.

``non_replicated_deduplication_window`` makes ClickHouse remember the
``insert_deduplication_token`` of recent inserts, so an insert repeated after
an ambiguous failure (a timeout after the server stored the block) is dropped.
The ``by_kafka_offset`` projection keeps the sink's restart lookup ("which
offsets of this partition are already stored?") a range read instead of a
scan of the whole table.
"""

from __future__ import annotations

import logging
from typing import Any

from sinks.types import KAFKA_COLUMNS, Column, table_columns

log = logging.getLogger(__name__)

DEDUPLICATION_WINDOW = 10_000
"""Insert tokens ClickHouse remembers per table; each flush uses a few."""

TABLE_COMMENT = (
    "Booking events as the validated Kafka topic carries them: one row per event,"
    " written exactly once per Kafka record by the booking-events sink. The"
    " envelope (event_id, booking_id, seq, event_type, occurred_at) is always set;"
    " payload columns are NULL for event types that do not carry them. A"
    " booking's history is ORDER BY seq; bookings_current and stays are views of"
    " the latest state."
)


def quote_identifier(name: str) -> str:
    """Return ``name`` as a ClickHouse identifier in backquotes."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(text: str) -> str:
    """Return ``text`` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def qualified(database: str, table: str) -> str:
    """Return ``database.table``, both quoted."""
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def column_ddl(column: Column) -> str:
    """Return ``name type [DEFAULT expr] COMMENT '...'`` of a column."""
    default = f" DEFAULT {column.default_sql}" if column.default_sql else ""
    return (
        f"{quote_identifier(column.name)} {column.type}{default}"
        f" COMMENT {quote_string(column.comment)}"
    )


def create_table_sql(database: str, table: str) -> str:
    """Return the CREATE TABLE IF NOT EXISTS statement of the events table."""
    columns = ",\n    ".join(column_ddl(c) for c in table_columns())
    offsets = ", ".join(c.name for c in KAFKA_COLUMNS[:3])
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, table)}\n(\n"
        f"    {columns},\n"
        f"    PROJECTION by_kafka_offset (SELECT {offsets} ORDER BY {offsets})\n"
        ")\n"
        "ENGINE = MergeTree\n"
        "PARTITION BY toYYYYMM(occurred_at)\n"
        "ORDER BY (booking_id, seq, event_id)\n"
        f"SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}\n"
        f"COMMENT {quote_string(TABLE_COMMENT)}"
    )


def ensure_tables(client: Any, database: str, table: str) -> list[str]:
    """Create the database and the events table if missing; add new columns.

    Columns the contract gained since the table was created (a new optional
    payload field) are added with ALTER TABLE ... ADD COLUMN. Columns are never
    dropped or retyped here: a differing type is logged for a person to decide.

    Args:
        client: A clickhouse-connect client.
        database: Database of the table; created if missing.
        table: Table name.

    Returns:
        The table's column names in table order, for inserts.
    """
    client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    client.command(create_table_sql(database, table))

    existing = dict(
        client.query(
            "SELECT name, type FROM system.columns"
            " WHERE database = {db:String} AND table = {table:String}"
            " ORDER BY position",
            parameters={"db": database, "table": table},
        ).result_rows
    )
    previous = None
    for column in table_columns():
        if column.name not in existing:
            after = f" AFTER {quote_identifier(previous)}" if previous else " FIRST"
            client.command(
                f"ALTER TABLE {qualified(database, table)} ADD COLUMN IF NOT EXISTS"
                f" {column_ddl(column)}{after}"
            )
            log.info(
                "added column",
                extra={
                    "table": f"{database}.{table}",
                    "column": column.name,
                    "type": column.type,
                },
            )
        elif _normalise(existing[column.name]) != _normalise(column.type):
            log.warning(
                "column type differs from the contract, kept as it is",
                extra={
                    "table": f"{database}.{table}",
                    "column": column.name,
                    "table_type": existing[column.name],
                    "contract_type": column.type,
                },
            )
        previous = column.name

    names = client.query(
        "SELECT name FROM system.columns"
        " WHERE database = {db:String} AND table = {table:String}"
        " ORDER BY position",
        parameters={"db": database, "table": table},
    ).result_columns[0]
    return list(names)


def _normalise(ch_type: str) -> str:
    return ch_type.replace(" ", "").replace('"', "'")
