"""The live schema evolves while events flow, and every event lands right.

Processor and sink run as processes (``booking-events process`` / ``sink``).
An old producer (the contract, v1) and a new one emit side by side while the
new one moves to v2 (``BookingCreated`` gains ``loyalty_tier``, default
``"standard"``) and then v3 (a new event type ``GUEST_NO_SHOW``), each
registered with BACKWARD compatibility before it is used, and used with
auto-registration off as in production.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import clickhouse_connect
import evolved
import pytest
from confluent_kafka import Producer
from factories import booking_created

from booking_events import schema_registry
from booking_events.pipeline import Worker, start_worker
from booking_events.reconcile import read_topic
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from producers import BookingEventProducer
from schemas import EVENT_SCHEMA, BookingEvent, EventSerializer, GuestCheckedIn
from sinks import ClickHouseSink, SinkSettings
from sinks.exceptions import IncompatibleColumnError

pytestmark = pytest.mark.integration

T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


# --- producers -----------------------------------------------------------------


class NewProducer:
    """A producer built against a newer schema: dict records, no auto-register."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.registry = schema_registry.client(RegistrySettings())
        self.kafka = Producer(
            {**KafkaSettings().librdkafka(), "enable.idempotence": True, "acks": "all"}
        )
        self.serializer: EventSerializer | None = None

    def use(self, schema: dict[str, Any]) -> None:
        self.serializer = EventSerializer(
            self.registry, auto_register=False, schema_str=evolved.text(schema)
        )

    def emit(self, record: dict[str, Any]) -> None:
        assert self.serializer is not None
        value = self.serializer.serialize(record, self.topic)
        self.kafka.produce(
            self.topic,
            key=record["booking_id"].encode(),
            value=value,
            headers=[("event_type", record["event_type"].encode())],
        )
        self.kafka.poll(0)

    def flush(self) -> None:
        assert self.kafka.flush(30) == 0


def side_by_side(*jobs: Callable[[], None]) -> None:
    """Run the jobs in threads at once; re-raise the first failure."""
    errors: list[BaseException] = []

    def guard(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]


def booking(prefix: str, number: int) -> tuple[BookingEvent, GuestCheckedIn]:
    at = T0 + timedelta(minutes=number)
    created = booking_created(
        booking_id=f"{prefix}-{number:03d}", occurred_at=at, source=prefix
    )
    checked_in = GuestCheckedIn(
        booking_id=created.booking_id,
        seq=2,
        occurred_at=at + timedelta(days=1),
        source=prefix,
        room_type="A",
        adults=2,
        children=0,
        babies=0,
    )
    return created, checked_in


# --- fixtures --------------------------------------------------------------------


@pytest.fixture
def workers(
    topics: TopicSettings,
    clickhouse_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str, list[str]], Worker]]:
    prefix = f"evo{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("BOOKING_EVENTS_PROCESSOR_APP_ID", f"{prefix}-processor")
    monkeypatch.setenv("BOOKING_EVENTS_PROCESSOR_DATA_DIR", str(tmp_path / "proc"))
    monkeypatch.setenv("BOOKING_EVENTS_SINK_GROUP_ID", f"{prefix}-sink")
    monkeypatch.setenv("BOOKING_EVENTS_SINK_BATCH_MAX_MS", "300")
    started: list[Worker] = []

    def start(name: str, args: list[str]) -> Worker:
        worker = start_worker(name, args, tmp_path / "logs")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(30)


def query(sql: str) -> list[tuple[Any, ...]]:
    client = clickhouse_connect.get_client(
        **ClickHouseSettings().client_kwargs(), tz_mode="aware"
    )
    try:
        db = ClickHouseSettings().database
        return list(client.query(sql.replace("{db}", f"`{db}`")).result_rows)
    finally:
        client.close()


def stored() -> int:
    if not query("EXISTS TABLE {db}.booking_events")[0][0]:
        return 0
    return int(query("SELECT uniqExact(event_id) FROM {db}.booking_events")[0][0])


def wait_stored(count: int, workers: list[Worker], timeout_s: float = 180) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    while stored() < count:
        for worker in workers:
            if worker.process.poll() is not None:
                log = worker.log_path.read_text()[-3000:]
                raise AssertionError(f"{worker.name} exited:\n{log}")
        if datetime.now(UTC) > deadline:
            raise AssertionError(f"{stored()} of {count} events stored")
        threading.Event().wait(0.5)


# --- the live evolution ----------------------------------------------------------


def test_schema_evolves_while_old_and_new_producers_emit(
    topics: TopicSettings, workers: Callable[[str, list[str]], Worker]
) -> None:
    registry = schema_registry.client(RegistrySettings())
    subjects = schema_registry.subjects(topics)
    (v1, _) = schema_registry.register(registry, EVENT_SCHEMA, subjects)
    processor = workers("processor", ["process"])
    sink = workers("sink", ["sink"])
    running = [processor, sink]

    old = BookingEventProducer(handle_sigterm=False)
    old.start()
    new = NewProducer(topics.raw)
    expected_tier: dict[str, str | None] = {}
    no_shows: dict[str, dict[str, Any]] = {}

    def emit_old(prefix: str, count: int) -> None:
        for n in range(count):
            created, checked_in = booking(prefix, n)
            old.emit(created)
            old.emit(checked_in)
            expected_tier[str(created.event_id)] = "standard"
            expected_tier[str(checked_in.event_id)] = None
        old.flush()

    def emit_new_v2(prefix: str, count: int) -> None:
        for n in range(count):
            created, checked_in = booking(prefix, n)
            tier = ("gold", "silver", "")[n % 3]
            new.emit(evolved.record(created, loyalty_tier=tier))
            new.emit(checked_in.to_avro())
            expected_tier[str(created.event_id)] = tier
            expected_tier[str(checked_in.event_id)] = None
        new.flush()

    def emit_new_v3(prefix: str, count: int) -> None:
        for n in range(count):
            created, checked_in = booking(prefix, n)
            new.emit(evolved.record(created, loyalty_tier="platinum"))
            fields = {
                "noted_at": created.occurred_at + timedelta(microseconds=n + 1),
                "no_show_fee": Decimal("80.00") + n if n % 2 else None,
                "currency": "EUR",
            }
            new.emit(evolved.no_show(checked_in, **fields))
            expected_tier[str(created.event_id)] = "platinum"
            expected_tier[str(checked_in.event_id)] = None
            no_shows[str(checked_in.event_id)] = fields
        new.flush()

    # v1 only: rows stored before any migration.
    emit_old("old-a", 15)
    wait_stored(30, running)

    # v2 registered; old and new producers side by side.
    (v2, _) = schema_registry.register(registry, evolved.text(evolved.v2()), subjects)
    new.use(evolved.v2())
    side_by_side(lambda: emit_old("old-b", 15), lambda: emit_new_v2("new-b", 15))

    # v3 registered (a new event type); still side by side.
    (v3, _) = schema_registry.register(registry, evolved.text(evolved.v3()), subjects)
    new.use(evolved.v3())
    side_by_side(lambda: emit_old("old-c", 15), lambda: emit_new_v3("new-c", 15))
    old.close()

    total = len(expected_tier)
    wait_stored(total, running)
    assert sum(1 for _ in read_topic(KafkaSettings(), topics.dead_letter, 10)) == 0

    # Every event once, with the value its producer gave or the default.
    rows = query(
        "SELECT toString(event_id), event_type, loyalty_tier, noted_at, no_show_fee,"
        " currency FROM {db}.booking_events"
    )
    assert len(rows) == total
    tiers = {event_id: tier for event_id, _, tier, *_ in rows}
    assert tiers == expected_tier
    for event_id, event_type, _, noted_at, fee, currency in rows:
        if event_id in no_shows:
            fields = no_shows[event_id]
            assert event_type == "GUEST_NO_SHOW"
            assert (noted_at, fee, currency) == (
                fields["noted_at"],
                fields["no_show_fee"],
                "EUR",
            )
        else:
            assert noted_at is None and fee is None

    # Each writer schema recorded once, with what it took.
    migrations = query(
        "SELECT schema_id, subject, version, statements FROM {db}.schema_migrations"
        " WHERE table = 'booking_events' ORDER BY schema_id"
    )
    by_id = {
        schema_id: (subject, version, s)
        for schema_id, subject, version, s in migrations
    }
    assert len(migrations) == len(by_id) == 3
    assert set(by_id) == {v1.schema_id, v2.schema_id, v3.schema_id}
    assert by_id[v1.schema_id][2] == []
    assert [s.split("`")[5] for s in by_id[v2.schema_id][2]] == ["loyalty_tier"]
    assert sorted(s.split("`")[5] for s in by_id[v3.schema_id][2]) == [
        "no_show_fee",
        "noted_at",
    ]
    assert {version for _, version, _ in by_id.values()} == {1, 2, 3}
    ((default,),) = query(
        "SELECT default_expression FROM system.columns"
        f" WHERE database = '{ClickHouseSettings().database}'"
        " AND table = 'booking_events' AND name = 'loyalty_tier'"
    )
    assert default == "multiIf(event_type = 'BOOKING_CREATED', 'standard', NULL)"


# --- what stops the sink -----------------------------------------------------------


def run_sink(topics: TopicSettings, group: str) -> None:
    settings = SinkSettings(group_id=group, insert_retry_max_s=30)
    ClickHouseSink(
        KafkaSettings(), RegistrySettings(), ClickHouseSettings(), topics, settings
    ).run(idle_exit_s=3.0)


def test_an_incompatible_type_change_stops_the_sink_and_loses_nothing(
    topics: TopicSettings, clickhouse_database: str
) -> None:
    registry = schema_registry.client(RegistrySettings())
    kafka = Producer(KafkaSettings().librdkafka())
    first = booking_created(booking_id="I-1")
    serializer = EventSerializer(registry, auto_register=True)
    kafka.produce(
        topics.validated,
        key=b"I-1",
        value=serializer.serialize(first, topics.validated),
    )
    kafka.flush(10)
    group = f"incompatible-{uuid.uuid4().hex[:8]}"
    run_sink(topics, group)
    assert stored() == 1

    # A producer that made `hotel` an int, in a subject that accepts anything.
    schema = evolved.contract()
    created = evolved._record(schema, "BookingCreated")
    next(f for f in created["fields"] if f["name"] == "hotel")["type"] = "int"
    registry.set_compatibility(f"{topics.validated}-value", "NONE")
    breaking = EventSerializer(
        registry, auto_register=True, schema_str=evolved.text(schema)
    )
    second = booking_created(booking_id="I-2")
    value = breaking.serialize(evolved.record(second, hotel=7), topics.validated)
    kafka.produce(topics.validated, key=b"I-2", value=value)
    kafka.flush(10)

    for _ in range(2):  # stops again after a restart: the record waits in Kafka
        with pytest.raises(IncompatibleColumnError) as info:
            run_sink(topics, group)
        error = info.value
        assert (error.field, error.writer_type) == ("hotel", "Nullable(Int32)")
        assert error.table_type == "LowCardinality(Nullable(String))"
        assert f"{topics.validated}[" in str(error) and "no offset committed" in str(
            error
        )
        assert stored() == 1
