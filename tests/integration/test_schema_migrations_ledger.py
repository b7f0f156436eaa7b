"""``schema_migrations`` when sinks restart or meet a new schema at once: each
schema id is recorded once, and two sinks adding the same columns agree."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import clickhouse_connect
import evolved
import pytest

from booking_events import schema_registry
from booking_events.settings import (
    ClickHouseSettings,
    RegistrySettings,
    TopicSettings,
)
from schemas import EventDeserializer
from sinks import SinkSettings
from sinks.migrations import MIGRATIONS_TABLE, TableEvolution
from sinks.writer import ClickHouseWriter

pytestmark = pytest.mark.integration


@pytest.fixture
def sinks(
    topics: TopicSettings, clickhouse_database: str
) -> Iterator[list[TableEvolution]]:
    """Two sinks' table evolutions (writer and decoder each), as at start-up."""
    writers = []
    evolutions = []
    for _ in range(2):
        writer = ClickHouseWriter(ClickHouseSettings(), SinkSettings())
        writer.start()
        writers.append(writer)
        deserializer = EventDeserializer(
            schema_registry.client(RegistrySettings()), resolve=False
        )
        evolutions.append(
            TableEvolution(
                writer,
                deserializer,
                schema_registry.subjects(topics),
                flush=lambda: None,
            )
        )
    yield evolutions
    for writer in writers:
        writer.close()


def register(topics: TopicSettings, schema: dict[str, object]) -> int:
    registry = schema_registry.client(RegistrySettings())
    (registration, _) = schema_registry.register(
        registry, evolved.text(schema), schema_registry.subjects(topics)
    )
    return registration.schema_id


def records(database: str, schema_id: int) -> list[tuple[Any, ...]]:
    client = clickhouse_connect.get_client(**ClickHouseSettings().client_kwargs())
    try:
        return list(
            client.query(
                f"SELECT statements FROM `{database}`.{MIGRATIONS_TABLE}"
                " WHERE table = 'booking_events' AND schema_id = {id:UInt32}",
                parameters={"id": schema_id},
            ).result_rows
        )
    finally:
        client.close()


def test_a_restarted_sink_records_a_schema_id_once_past_the_token_window(
    topics: TopicSettings,
    clickhouse_database: str,
    sinks: list[TableEvolution],
) -> None:
    first, restarted = sinks
    v2 = register(topics, evolved.v2())
    first.accept(v2, topic="t", partition=0, offset=0)

    # More records than the deduplication window keeps tokens of (other
    # tables of the database, or many schema ids), then a restart.
    client = clickhouse_connect.get_client(**ClickHouseSettings().client_kwargs())
    try:
        for n in range(1001):
            client.insert(
                MIGRATIONS_TABLE,
                [[f"other_{n}", n + 1]],
                column_names=["table", "schema_id"],
                database=clickhouse_database,
                settings={
                    "async_insert": 0,
                    "insert_deduplication_token": f"other_{n}/{n + 1}",
                },
            )
    finally:
        client.close()
    restarted.accept(v2, topic="t", partition=0, offset=5)

    ((statements,),) = records(clickhouse_database, v2)
    assert [s.split("`")[5] for s in statements] == ["loyalty_tier"]


def test_two_sinks_meeting_a_new_schema_at_once_migrate_it_once(
    topics: TopicSettings,
    clickhouse_database: str,
    sinks: list[TableEvolution],
) -> None:
    v3 = register(topics, evolved.v3())
    start = threading.Barrier(len(sinks))
    errors: list[BaseException] = []

    def accept(sink: TableEvolution, partition: int) -> None:
        try:
            start.wait(10)
            sink.accept(v3, topic="t", partition=partition, offset=0)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=accept, args=(sink, n)) for n, sink in enumerate(sinks)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert len(records(clickhouse_database, v3)) == 1
    for sink in sinks:
        names = sink._writer.layout.names
        assert {"loyalty_tier", "noted_at", "no_show_fee"} <= set(names)
        sink._writer.refresh_types()  # every column of its layout is in the table
