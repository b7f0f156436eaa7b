"""The Quix Streams application of the quix arm (runs in the quix virtualenv).

Two dataframes in one application, as Quix Streams is meant to be used:

1. raw -> decode -> judge -> validated or dead-letter topic. Decoding and the
   judgement are this project's (``schemas.EventDeserializer``,
   ``processors.routing.judge``); each booking's state lives in Quix's state
   store (RocksDB with a changelog topic), keyed by the booking id.
2. validated -> rows -> ``ClickHouseSink``, a ``BatchingSink`` that inserts
   each checkpoint's batch with clickhouse-connect into the pipeline sink's
   table layout.

Everything else is Quix's default: at-least-once, a checkpoint every 5 s,
and outputs keep the source record's timestamp.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from typing import Any

import clickhouse_connect
from confluent_kafka.schema_registry import SchemaRegistryClient
from quixstreams import Application, message_context
from quixstreams.sinks import BatchingSink, SinkBatch

from booking_events.settings import ClickHouseSettings, KafkaSettings, RegistrySettings
from processors.ordering import BookingState
from processors.routing import Outcome, SourceRecord, judge
from schemas import EventDeserializer
from schemas.exceptions import EventDecodeError
from sinks.rows import COLUMN_NAMES, INGESTED_AT, kafka_time, to_row

TABLE = "booking_events"
STATE_KEY = "booking"


class ClickHouseSink(BatchingSink):
    """Inserts each batch Quix hands over; Quix commits offsets afterwards."""

    def __init__(self, settings: ClickHouseSettings, database: str) -> None:
        super().__init__()
        self._settings = settings
        self._database = database
        self._client: Any = None

    def setup(self) -> None:
        self._client = clickhouse_connect.get_client(**self._settings.client_kwargs())

    def write(self, batch: SinkBatch) -> None:
        ingested_at = datetime.now(UTC)
        rows = []
        for item in batch:
            row = item.value
            row[INGESTED_AT] = ingested_at
            rows.append(row)
        self._client.insert(
            TABLE, rows, column_names=COLUMN_NAMES, database=self._database
        )


def build(args: argparse.Namespace) -> Application:
    kafka, registry = KafkaSettings(), RegistrySettings()
    app = Application(
        broker_address=kafka.bootstrap_servers,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    decoder = EventDeserializer(SchemaRegistryClient(registry.client_config()))
    raw = app.topic(args.raw, key_deserializer="bytes", value_deserializer="bytes")
    validated_in = app.topic(
        args.validated, key_deserializer="bytes", value_deserializer="bytes"
    )
    validated_out = app.topic(
        args.validated, key_serializer="bytes", value_serializer="bytes"
    )
    dead_letter = app.topic(
        args.dead_letter, key_serializer="bytes", value_serializer="bytes"
    )

    def route(value: bytes, key: bytes, timestamp: int, headers: Any, state: Any):
        ctx = message_context()
        source = SourceRecord(
            ctx.topic, ctx.partition, ctx.offset, key, value, headers or ()
        )
        try:
            event = decoder.event(value, ctx.topic)
        except EventDecodeError as exc:
            return ("malformed", str(exc), value)
        stored = state.get(STATE_KEY)
        previous = BookingState.from_bytes(stored.encode() if stored else None)
        verdict = judge(source, event, previous)
        if verdict.state is not None:
            state.set(STATE_KEY, verdict.state.to_bytes().decode())
        if verdict.outcome is Outcome.VALIDATED:
            return ("validated", "", value)
        if verdict.outcome is Outcome.DROPPED:
            return ("dropped", "", value)
        return (verdict.violations[0].code, verdict.violations[0].detail, value)

    judged = app.dataframe(raw).apply(route, stateful=True, metadata=True)
    judged.filter(lambda v: v[0] == "validated").apply(lambda v: v[2]).to_topic(
        validated_out
    )
    rejected = judged.filter(lambda v: v[0] not in ("validated", "dropped"))
    rejected = rejected.set_headers(
        lambda v, _key, _ts, headers: [
            *(headers or ()),
            ("dlq.reason", v[0].encode()),
            ("dlq.detail", v[1].encode()),
        ]
    )
    rejected.apply(lambda v: v[2]).to_topic(dead_letter)

    def to_table_row(value: bytes, _key: bytes, timestamp: int, _headers: Any):
        ctx = message_context()
        record = decoder.record(value, ctx.topic)
        return to_row(
            record,
            topic=ctx.topic,
            partition=ctx.partition,
            offset=ctx.offset,
            timestamp=kafka_time(timestamp),
        )

    sink = ClickHouseSink(ClickHouseSettings(), args.database)
    app.dataframe(validated_in).apply(to_table_row, metadata=True).sink(sink)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.arms.quix_app")
    for name in ("--raw", "--validated", "--dead-letter", "--group", "--database"):
        parser.add_argument(name, required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # Quix's run() stops cleanly on SIGTERM and SIGINT.
    build(args).run()


if __name__ == "__main__":
    main()
