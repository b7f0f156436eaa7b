"""Naive: what a user writes by hand, as one confluent-kafka consumer.

Reads the raw topic, decodes each value with fastavro (writer schema fetched
from the registry once per id), and inserts batches with clickhouse-connect
into the same table layout the pipeline's sink uses; commits offsets after
each insert (at-least-once). No validation, no ordering check, no dead
letters, no deduplication. Batches flush at the sink's production thresholds
(10,000 rows or 500 ms) so that both write to ClickHouse at the same pace.

Worker: ``python -m bench.arms.naive --topic T --group G --database D``;
endpoints from ``BOOKING_EVENTS_*``; SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import time
import urllib.request
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import clickhouse_connect
from confluent_kafka import Consumer
from fastavro import parse_schema, schemaless_reader

from bench.arms.base import Arm, bench_python
from bench.clickhouse import TABLE
from booking_events.settings import ClickHouseSettings, KafkaSettings, RegistrySettings
from sinks.rows import COLUMN_NAMES, INGESTED_AT, kafka_time, to_row
from sinks.schema import create_table_sql

BATCH_ROWS = 10_000
BATCH_MS = 500


class NaiveArm(Arm):
    name = "naive"

    def prepare(self) -> None:
        super().prepare()
        create_table(self.ch, self.database)

    def commands(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        argv = [
            *bench_python(),
            "bench.arms.naive",
            "--topic",
            self.topics.raw,
            "--group",
            f"bench-{self.run_id}-naive",
            "--database",
            self.database,
        ]
        return {"consumer": (argv, {})}


def create_table(ch: Any, database: str) -> None:
    """The pipeline sink's table layout, in the arm's own database."""
    ch.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    ch.command(create_table_sql(database, TABLE))


class _Schemas:
    """Writer schemas by id, fetched from the registry's REST API once each."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.parsed: dict[int, Any] = {}

    def get(self, schema_id: int) -> Any:
        if schema_id not in self.parsed:
            with urllib.request.urlopen(f"{self.url}/schemas/ids/{schema_id}") as r:
                body = json.load(r)
            self.parsed[schema_id] = parse_schema(json.loads(body["schema"]))
        return self.parsed[schema_id]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.arms.naive")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--database", required=True)
    args = parser.parse_args(argv)

    stopping = False

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    kafka, registry = KafkaSettings(), RegistrySettings()
    ch_settings = ClickHouseSettings()
    ch = clickhouse_connect.get_client(**ch_settings.client_kwargs())
    schemas = _Schemas(registry.url)
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])

    rows: list[list[Any]] = []
    oldest = None
    while not stopping:
        for msg in consumer.consume(num_messages=1000, timeout=0.1):
            if msg.error() is not None:
                continue
            value = msg.value()
            body = io.BytesIO(value)
            body.seek(5)
            record = schemaless_reader(
                body,
                schemas.get(int.from_bytes(value[1:5], "big")),
                None,
                return_record_name=True,
            )
            rows.append(
                to_row(
                    record,
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    timestamp=kafka_time(msg.timestamp()[1]),
                )
            )
            oldest = oldest or time.monotonic()
        if rows and (
            len(rows) >= BATCH_ROWS or (time.monotonic() - oldest) * 1000 >= BATCH_MS
        ):
            ingested_at = datetime.now(UTC)
            for row in rows:
                row[INGESTED_AT] = ingested_at
            ch.insert(TABLE, rows, column_names=COLUMN_NAMES, database=args.database)
            consumer.commit(asynchronous=False)
            rows, oldest = [], None
    consumer.close()
    ch.close()


if __name__ == "__main__":
    main()
