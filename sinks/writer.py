"""ClickHouse side of the sink: connect, create the table, look up, insert.

Every call to ClickHouse goes through ``sinks.retry.retry``, which classifies
the driver's error (``sinks.exceptions.classify``) and retries the retriable
ones with exponential backoff for at most ``insert_retry_max_s``.
A terminal error, or a retriable one that outlasts the budget, is raised; the
caller then stops without committing, so the records stay in Kafka.

An insert is one :class:`~sinks.rows.InsertGroup` (one Kafka partition, one
table partition), sent with ``async_insert=0`` so the rows are in a part when
the call returns, and with a deterministic ``insert_deduplication_token`` so
the retry of an insert whose first attempt did reach the server is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import clickhouse_connect

from booking_events.settings import ClickHouseSettings
from sinks import analytics
from sinks.config import SinkSettings
from sinks.exceptions import SchemaMappingError
from sinks.retry import retry
from sinks.rows import COLUMN_NAMES, INGESTED_AT, InsertGroup
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
        types = dict(
            self._retry(
                "read the table's columns",
                lambda: (
                    self._client.query(
                        "SELECT name, type FROM system.columns"
                        " WHERE database = {db:String} AND table = {table:String}",
                        parameters={"db": self._database, "table": self._table},
                    ).result_rows
                ),
            )
        )
        missing = [name for name in COLUMN_NAMES if name not in types]
        if missing:
            raise SchemaMappingError(
                f"table {self._database}.{self._table} lacks columns {missing}"
            )
        self._column_types = [types[name] for name in COLUMN_NAMES]
        log.info(
            "ClickHouse ready url=%s table=%s.%s",
            self._clickhouse.url,
            self._database,
            self._table,
        )

    def close(self) -> None:
        """Release the HTTP connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def stored_offsets(self, topic: str, partition: int, from_offset: int) -> set[int]:
        """Return the offsets of ``topic[partition]`` at or after ``from_offset``
        that the table already holds.

        The sink asks this when it is given a partition: rows inserted by a
        previous owner that stopped before committing are skipped, not
        written twice. The by_kafka_offset projection serves it.
        """
        sql = (
            f"SELECT kafka_offset FROM {quote_identifier(self._database)}."
            f"{quote_identifier(self._table)}"
            " WHERE kafka_topic = {topic:String}"
            " AND kafka_partition = {partition:UInt16}"
            " AND kafka_offset >= {offset:UInt64}"
        )
        params = {"topic": topic, "partition": partition, "offset": from_offset}
        result = self._retry(
            f"look up stored offsets of {topic}[{partition}]",
            lambda: self.client.query(sql, parameters=params).result_columns,
        )
        return set(result[0]) if result else set()

    def insert(self, group: InsertGroup, ingested_at: datetime) -> None:
        """Insert one group as one block, retrying while ClickHouse is away."""
        # Column-oriented data converts about twice as fast as rows.
        columns: list[Any] = list(zip(*group.rows, strict=True))
        columns[INGESTED_AT] = [ingested_at] * len(group.rows)
        settings = {
            "async_insert": 0,
            "insert_deduplicate": 1,
            "insert_deduplication_token": group.token,
        }
        if "deduplicate_insert" in self.client.server_settings:
            settings["deduplicate_insert"] = "enable"

        started = time.monotonic()
        self._retry(
            f"insert {len(group.rows)} rows of {group.topic}[{group.partition}]"
            f" offsets {group.offsets[0]}-{group.offsets[-1]}",
            lambda: self.client.insert(
                self._table,
                columns,
                column_names=COLUMN_NAMES,
                database=self._database,
                column_type_names=self._column_types,
                column_oriented=True,
                settings=settings,
            ),
        )
        log.debug(
            "inserted topic=%s partition=%s offsets=%s-%s month=%s rows=%s ms=%.1f",
            group.topic,
            group.partition,
            group.offsets[0],
            group.offsets[-1],
            group.month,
            len(group.rows),
            (time.monotonic() - started) * 1000,
        )

    def _connect(self) -> Any:
        return clickhouse_connect.get_client(
            **self._clickhouse.client_kwargs(),
            autogenerate_session_id=False,
            tz_mode="aware",
        )

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        return retry(what, call, self._settings)
