"""Schema evolution reaching ClickHouse, while events flow.

The sink decodes every record with its writer's schema (by id), so a field a
newer producer added arrives with the record. The first time the sink meets a
schema id, before it stores any record written with it, :class:`TableEvolution`
makes the events table able to hold it:

1. map the writer's schema to columns (``sinks.types``, the README's table);
2. compare them with the table's columns as ClickHouse reports them:

   * a column the table lacks is added (``ALTER TABLE ... ADD COLUMN IF NOT
     EXISTS``) with the field's Avro default as its ``DEFAULT``, so rows
     stored before it keep the default (``sinks.defaults``);
   * a column whose type holds the writer's values is kept: the same type, or
     a Nullable column receiving non-null values. A new enum symbol needs no
     DDL: enums are ``LowCardinality(String)`` columns;
   * any other difference (a string field turned int, a nullable field into
     a non-nullable column) cannot be applied safely: the sink stops with
     ``IncompatibleColumnError`` naming the field and both types, and commits
     nothing, so the records wait in Kafka;
3. flush the rows already pending (built for the columns as they were), then
   apply the statements, then let the row layout grow;
4. record the schema id in ``schema_migrations``: subject and version, the
   statements applied (none when the table already fitted) and when.

Every step is idempotent: the statements say ``IF NOT EXISTS``, the plan is
made against the table as it is (another sink, or this one before a restart,
may have migrated it already), and a schema id is recorded only when
``schema_migrations`` lacks it; the insert carries the token
``<table>/<schema id>`` in a table with a deduplication window, so two sinks
meeting a new id at the same moment still record it once. Columns are never
dropped or retyped: a field a newer schema removed keeps its column, and rows
without it get the column's default (NULL for a nullable one).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sinks.exceptions import IncompatibleColumnError, SchemaMappingError
from sinks.schema import column_ddl, qualified
from sinks.types import Column, event_columns

if TYPE_CHECKING:
    from schemas import EventDeserializer
    from sinks.writer import ClickHouseWriter

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "schema_migrations"

MIGRATIONS_DDL = """CREATE TABLE IF NOT EXISTS {table}
(
    `table` LowCardinality(String) COMMENT 'Events table the schema was applied to.',
    `schema_id` UInt32 COMMENT 'Registry id of the writer schema.',
    `subject` String COMMENT 'Registry subject the schema id is registered under.',
    `version` Nullable(UInt32) COMMENT 'Version of the schema in that subject.',
    `statements` Array(String) COMMENT 'DDL applied for it; empty when the table
 already held every field.',
    `applied_at` DateTime64(3, 'UTC') COMMENT 'When the sink applied it (UTC).',
    `applied_by` String COMMENT 'Host and process of the sink that applied it.'
)
ENGINE = MergeTree
ORDER BY (`table`, schema_id)
SETTINGS non_replicated_deduplication_window = 1000
COMMENT 'Writer schemas the sink made the events table ready for, once each.'"""


@dataclass(frozen=True, slots=True)
class Plan:
    """What a writer schema needs of the table.

    Attributes:
        add: Columns the table lacks.
        conflicts: Columns whose table type cannot hold the writer's values,
            with that table type.
    """

    add: list[Column] = field(default_factory=list)
    conflicts: list[tuple[Column, str]] = field(default_factory=list)


def holds(table_type: str, writer_type: str) -> bool:
    """Whether a column of ``table_type`` stores every value of ``writer_type``."""
    table, writer = _normalise(table_type), _normalise(writer_type)
    if table == writer:
        return True
    # A nullable column takes non-null values; LowCardinality is storage only.
    return _plain(table) == _plain(writer) and (
        _is_nullable(table) or not _is_nullable(writer)
    )


def plan(table_types: dict[str, str], columns: list[Column]) -> Plan:
    """Compare a writer's columns with the table's (name -> ClickHouse type)."""
    result = Plan()
    for column in columns:
        existing = table_types.get(column.name)
        if existing is None:
            result.add.append(column)
        elif not holds(existing, column.type):
            result.conflicts.append((column, existing))
    return result


def add_column_sql(database: str, table: str, column: Column) -> str:
    """The idempotent statement that adds ``column``."""
    return (
        f"ALTER TABLE {qualified(database, table)}"
        f" ADD COLUMN IF NOT EXISTS {column_ddl(column)}"
    )


class TableEvolution:
    """Keeps the events table ready for every writer schema the sink meets.

    Args:
        writer: The sink's ClickHouse writer (table, retries, row layout).
        deserializer: The sink's decoder; knows each writer schema by id.
        subjects: Registry subjects to name the schema's version by.
        flush: Stores and commits what is pending; called before the row
            layout grows.
    """

    def __init__(
        self,
        writer: ClickHouseWriter,
        deserializer: EventDeserializer,
        subjects: list[str],
        flush: Callable[[], None],
    ) -> None:
        self._writer = writer
        self._deserializer = deserializer
        self._subjects = subjects
        self._flush = flush
        self._accepted: set[int] = set()
        self._ready = False

    def accept(
        self, schema_id: int, *, topic: str, partition: int, offset: int
    ) -> None:
        """Make the table ready for ``schema_id`` unless it already is.

        Raises:
            IncompatibleColumnError: A field's type cannot go into its column.
            SchemaMappingError: A field's type has no column mapping.
        """
        if schema_id in self._accepted:
            return
        schema = self._deserializer.writer_schema(schema_id)
        try:
            columns = event_columns(schema)
        except SchemaMappingError as exc:
            raise SchemaMappingError(
                f"schema id {schema_id} (first record {topic}[{partition}]@{offset})"
                f" does not map to columns: {exc}; stopping, nothing committed"
            ) from exc
        writer = self._writer
        todo = plan(writer.table_types(), columns)
        if todo.conflicts:
            column, table_type = todo.conflicts[0]
            raise IncompatibleColumnError(
                field=column.name,
                table_type=table_type,
                writer_type=column.type,
                schema_id=schema_id,
                table=f"{writer.database}.{writer.table}",
                topic=topic,
                partition=partition,
                offset=offset,
            )

        grows = any(c.name not in writer.layout.names for c in columns)
        if grows:
            # Rows pending now were built for the columns as they were.
            self._flush()
        statements = [
            add_column_sql(writer.database, writer.table, c) for c in todo.add
        ]
        for statement in statements:
            writer.execute(f"schema id {schema_id}: add a column", statement)
            log.info(
                "table migrated for a new writer schema",
                extra={
                    "table": f"{writer.database}.{writer.table}",
                    "schema_id": schema_id,
                    "statement": statement,
                },
            )
        if grows:
            writer.layout.learn(schema)
            writer.refresh_types()
        self._record(schema_id, statements)
        self._accepted.add(schema_id)

    def _record(self, schema_id: int, statements: list[str]) -> None:
        writer = self._writer
        target = qualified(writer.database, MIGRATIONS_TABLE)
        if not self._ready:
            writer.execute(
                "create the schema_migrations table",
                MIGRATIONS_DDL.format(table=target),
            )
            self._ready = True
        # The token alone is not enough: ClickHouse remembers only the last
        # tokens of its window, and a restarted sink records every id again.
        if self._recorded(target, schema_id):
            return
        subject, version = self._version(schema_id)
        row = [
            writer.table,
            schema_id,
            subject,
            version,
            statements,
            datetime.now(UTC),
            f"{socket.gethostname()}:{os.getpid()}",
        ]
        writer.insert_rows(
            MIGRATIONS_TABLE,
            [row],
            [
                "table",
                "schema_id",
                "subject",
                "version",
                "statements",
                "applied_at",
                "applied_by",
            ],
            token=f"{writer.table}/{schema_id}",
        )
        log.info(
            "writer schema recorded in schema_migrations",
            extra={
                "table": f"{writer.database}.{writer.table}",
                "schema_id": schema_id,
                "subject": subject,
                "version": version,
                "statements": len(statements),
            },
        )

    def _recorded(self, target: str, schema_id: int) -> bool:
        """Whether ``schema_id`` already has its row (a restart, another sink)."""
        rows = self._writer.query_rows(
            f"look up schema id {schema_id} in {MIGRATIONS_TABLE}",
            f"SELECT count() FROM {target}"
            " WHERE table = {table:String} AND schema_id = {id:UInt32}",
            {"table": self._writer.table, "id": schema_id},
        )
        return bool(rows[0][0])

    def _version(self, schema_id: int) -> tuple[str, int | None]:
        """The subject and version of ``schema_id``, as far as the registry says."""
        try:
            pairs = self._deserializer.registry.get_schema_versions(schema_id)
        except Exception as exc:  # the record is a label; the migration is done
            log.warning(
                "registry gave no subject and version for the schema; recorded"
                " without them: %s",
                exc,
                extra={"schema_id": schema_id},
            )
            return "", None
        for wanted in self._subjects:
            for pair in pairs:
                if pair.subject == wanted:
                    return wanted, int(pair.version) if pair.version else None
        if pairs:
            return str(pairs[0].subject), pairs[0].version
        return "", None


def _normalise(ch_type: str) -> str:
    return ch_type.replace(" ", "").replace('"', "'")


def _plain(ch_type: str) -> str:
    """The type without its outer LowCardinality and Nullable wrappers."""
    unwrapped = True
    while unwrapped:
        unwrapped = False
        for wrapper in ("LowCardinality(", "Nullable("):
            if ch_type.startswith(wrapper):
                ch_type = ch_type[len(wrapper) : -1]
                unwrapped = True
    return ch_type


def _is_nullable(ch_type: str) -> bool:
    return ch_type.startswith(("Nullable(", "LowCardinality(Nullable("))
