"""ClickHouse side of the sink: connect, create the table, look up, insert.

Every call to ClickHouse goes through ``sinks.retry.retry``, which classifies
the driver's error (``sinks.exceptions.classify``) and retries the retriable
ones with exponential backoff for at most ``insert_retry_max_s``.
A terminal error, or a retriable one that outlasts the budget, is raised; the
caller then stops without committing, so the records stay in Kafka.

An insert is one :class:`~sinks.rows.InsertGroup` (one Kafka partition, one
table partition), sent with ``async_insert=0`` so the rows are in a part when
the call returns (the server's default is 1, and an async insert is buffered,
merged with others and deduplicated differently), and with the group's
``insert_deduplication_token``, so a second block that starts at the same
record is dropped. ClickHouse reports a dropped insert as a success, so the
caller learns what is stored only from :meth:`ClickHouseWriter.stored_counts`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

import clickhouse_connect

from booking_events.settings import ClickHouseSettings
from sinks import analytics
from sinks.config import SinkSettings
from sinks.exceptions import SchemaMappingError
from sinks.retry import retry
from sinks.rows import INGESTED_AT, InsertGroup, RowLayout
from sinks.schema import ensure_tables, quote_identifier

log = logging.getLogger(__name__)

T = TypeVar("T")


class ClickHouseWriter:
    """Writes insert groups to the events table.

    Args:
        clickhouse: Endpoint, credentials and database.
        settings: Table name, retry budget and backoff.
    """

    def __init__(self, clickhouse: ClickHouseSettings, settings: SinkSettings) -> None:
        self._clickhouse = clickhouse
        self._settings = settings
        self._database = clickhouse.database
        self._table = settings.table
        self._client: Any = None
        self._column_types: list[str] = []
        self.layout = RowLayout()
        """Columns of the rows; grows with the writer schemas met (sinks.migrations)."""

    @property
    def database(self) -> str:
        """Database of the events table."""
        return self._database

    @property
    def table(self) -> str:
        """Name of the events table."""
        return self._table

    @property
    def client(self) -> Any:
        """The clickhouse-connect client; only after :meth:`start`."""
        if self._client is None:
            raise RuntimeError("ClickHouseWriter.start() was not called")
        return self._client

    def start(self) -> None:
        """Connect, create database, table and views; learn the column types."""
        self._client = self._retry("connect to ClickHouse", self._connect)
        self._retry(
            "create the events table",
            lambda: ensure_tables(self._client, self._database, self._table),
        )
        if self._settings.create_views:
            self._retry(
                "create the analytics views",
                lambda: analytics.ensure_views(
                    self._client, self._database, self._table
                ),
            )
        self.refresh_types()
        log.info(
            "ClickHouse ready",
            extra={
                "url": self._clickhouse.url,
                "table": f"{self._database}.{self._table}",
            },
        )

    def table_types(self) -> dict[str, str]:
        """The events table's columns as ClickHouse has them: name -> type."""
        return dict(
            self._retry(
                "read the table's columns",
                lambda: (
                    self.client.query(
                        "SELECT name, type FROM system.columns"
                        " WHERE database = {db:String} AND table = {table:String}",
                        parameters={"db": self._database, "table": self._table},
                    ).result_rows
                ),
            )
        )

    def refresh_types(self) -> None:
        """Learn the types of the layout's columns (sent with every insert)."""
        types = self.table_types()
        missing = [name for name in self.layout.names if name not in types]
        if missing:
            raise SchemaMappingError(
                f"table {self._database}.{self._table} lacks columns {missing}"
            )
        self._column_types = [types[name] for name in self.layout.names]

    def execute(self, what: str, statement: str) -> None:
        """Run one statement (DDL), retrying while ClickHouse is away."""
        self._retry(what, lambda: self.client.command(statement))

    def query_rows(
        self, what: str, sql: str, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Run one small query, retrying while ClickHouse is away."""
        return list(
            self._retry(
                what,
                lambda: self.client.query(sql, parameters=parameters).result_rows,
            )
        )

    def insert_rows(
        self, table: str, rows: list[list[Any]], names: list[str], token: str
    ) -> None:
        """Insert a small block into another table of the database, once per token."""
        settings = {
            "async_insert": 0,
            "insert_deduplicate": 1,
            "insert_deduplication_token": token,
        }
        self._retry(
            f"insert into {self._database}.{table}",
            lambda: self.client.insert(
                table,
                rows,
                column_names=names,
                database=self._database,
                settings=settings,
            ),
        )

    def close(self) -> None:
        """Release the HTTP connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def stored_offsets(
        self, topic: str, ranges: Mapping[int, tuple[int, int]]
    ) -> dict[int, set[int]]:
        """Return, per partition, the offsets in its range the table holds.

        One query for all partitions of a flush; the by_kafka_offset
        projection makes it a range read.

        Args:
            topic: The Kafka topic.
            ranges: Partition -> (first, last) offset, both included.
        """
        found: dict[int, set[int]] = {number: set() for number in ranges}
        result = self._retry(
            f"look up stored offsets of {topic} {_describe(ranges)}",
            lambda: (
                self.client.query(
                    f"SELECT kafka_partition, kafka_offset FROM {self._where(ranges)}",
                    parameters={"topic": topic},
                ).result_rows
            ),
        )
        for partition, offset in result:
            found[partition].add(offset)
        return found

    def stored_counts(
        self, topic: str, ranges: Mapping[int, tuple[int, int]]
    ) -> dict[int, int]:
        """Return, per partition, how many distinct offsets of its range are stored.

        The cheap check after a flush: equal to the number of rows the flush
        holds for that range means every one of them is in the table.
        """
        result = self._retry(
            f"count stored offsets of {topic} {_describe(ranges)}",
            lambda: (
                self.client.query(
                    "SELECT kafka_partition, uniqExact(kafka_offset)"
                    f" FROM {self._where(ranges)} GROUP BY kafka_partition",
                    parameters={"topic": topic},
                ).result_rows
            ),
        )
        counts = {number: 0 for number in ranges}
        counts.update({partition: int(count) for partition, count in result})
        return counts

    def insert(
        self,
        group: InsertGroup,
        ingested_at: datetime,
        *,
        deduplicate: bool = True,
        body: Callable[[Any], AbstractContextManager[None]] | None = None,
        extra_settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert one group as one block, retrying while ClickHouse is away.

        Args:
            group: The rows; one Kafka partition, one month.
            ingested_at: The ingested_at of every row.
            deduplicate: Send the group's token (False only for the
                negative-control test, see SinkSettings.deduplication).
            body: Test only: a context manager factory wrapped around the
                request, given the client (sinks.testing.PausePoints).
            extra_settings: Test only: more ClickHouse settings of the request.
        """
        # Column-oriented data converts about twice as fast as rows.
        columns: list[Any] = list(zip(*group.rows, strict=True))
        columns[INGESTED_AT] = [ingested_at] * len(group.rows)
        settings: dict[str, Any] = {"async_insert": 0}
        if deduplicate:
            settings["insert_deduplicate"] = 1
            settings["insert_deduplication_token"] = group.token
        else:
            settings["insert_deduplicate"] = 0
        if "deduplicate_insert" in self.client.server_settings:
            settings["deduplicate_insert"] = "enable" if deduplicate else "disable"
        settings.update(extra_settings or {})

        def send() -> Any:
            with body(self.client) if body else contextlib.nullcontext():
                return self.client.insert(
                    self._table,
                    columns,
                    column_names=self.layout.names,
                    database=self._database,
                    column_type_names=self._column_types,
                    column_oriented=True,
                    settings=settings,
                )

        started = time.monotonic()
        self._retry(
            f"insert {len(group.rows)} rows of {group.topic}[{group.partition}]"
            f" offsets {group.offsets[0]}-{group.offsets[-1]}",
            send,
        )
        log.debug(
            "inserted",
            extra={
                "topic": group.topic,
                "partition": group.partition,
                "offsets": f"{group.offsets[0]}-{group.offsets[-1]}",
                "month": group.month,
                "rows": len(group.rows),
                "ms": round((time.monotonic() - started) * 1000, 1),
            },
        )

    def _where(self, ranges: Mapping[int, tuple[int, int]]) -> str:
        table = f"{quote_identifier(self._database)}.{quote_identifier(self._table)}"
        # Partitions and offsets are ints from Kafka, safe to inline.
        spans = " OR ".join(
            f"(kafka_partition = {int(number)}"
            f" AND kafka_offset BETWEEN {int(first)} AND {int(last)})"
            for number, (first, last) in sorted(ranges.items())
        )
        return f"{table} WHERE kafka_topic = {{topic:String}} AND ({spans})"

    def _connect(self) -> Any:
        return clickhouse_connect.get_client(
            **self._clickhouse.client_kwargs(),
            autogenerate_session_id=False,
            tz_mode="aware",
        )

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        return retry(what, call, self._settings)


def _describe(ranges: Mapping[int, tuple[int, int]]) -> str:
    return " ".join(f"[{n}]@{a}-{b}" for n, (a, b) in sorted(ranges.items()))
