"""The sink against real Kafka, registry and ClickHouse.

Every test runs under TZ=America/New_York, so a naive datetime anywhere on the
way to ClickHouse would shift the stored times and fail the value checks.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from schemas import (
    BookingCancelled,
    BookingCreated,
    BookingEvent,
    BookingModified,
    EventSerializer,
    GuestCheckedIn,
    GuestCheckedOut,
    RoomAssigned,
)
from sinks import ClickHouseSink, SinkSettings, SinkStats

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 1, 29, 22, 30, 0, 125000, tzinfo=UTC)
CLI = [sys.executable, "-c", "from booking_events.cli.main import main; main()"]


@pytest.fixture(autouse=True)
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --- events -----------------------------------------------------------------


def lifecycle(number: int, prefix: str) -> list[BookingEvent]:
    """A booking's events; every fourth is cancelled, the others stay.

    Events are a day apart from late January, so bookings span two months.
    """
    booking = f"{prefix}-{number:05d}"
    at = T0 + timedelta(hours=number)
    created = BookingCreated(
        booking_id=booking,
        seq=1,
        occurred_at=at,
        source="sink-test",
        hotel="Resort Hotel",
        arrival_date=date(2024, 2, 10),
        departure_date=date(2024, 2, 13),
        adults=2,
        children=number % 3,
        babies=0,
        meal_plan="bed_and_breakfast",
        reserved_room_type="A",
        average_daily_rate=Decimal("100.01") + number,
        currency="EUR",
        country="PRT" if number % 2 else None,
        market_segment="online_travel_agent",
        distribution_channel="ta_to",
        customer_type="transient",
        is_repeated_guest=bool(number % 5 == 0),
        previous_cancellations=0,
        previous_bookings_not_canceled=0,
        lead_time_days=12,
        days_in_waiting_list=0,
        required_car_parking_spaces=0,
        total_of_special_requests=1,
    )
    if number % 4 == 0:
        cancelled = BookingCancelled(
            booking_id=booking,
            seq=2,
            occurred_at=at + timedelta(days=1),
            cancellation_fee=Decimal("0.05"),
            currency="EUR",
        )
        return [created, cancelled]
    day = timedelta(days=1)
    return [
        created,
        BookingModified(
            booking_id=booking,
            seq=2,
            occurred_at=at + day,
            change_number=1,
            arrival_date=date(2024, 2, 10),
            departure_date=date(2299, 12, 31),
            adults=2,
            children=0,
            babies=0,
            meal_plan="half_board",
            reserved_room_type="A",
            average_daily_rate=Decimal("9999999999.99"),
            currency="EUR",
        ),
        RoomAssigned(
            booking_id=booking,
            seq=3,
            occurred_at=at + 2 * day,
            room_type="C",
            reserved_room_type="A",
        ),
        GuestCheckedIn(
            booking_id=booking,
            seq=4,
            occurred_at=at + 3 * day,
            room_type="C",
            adults=2,
            children=0,
            babies=0,
        ),
        GuestCheckedOut(
            booking_id=booking,
            seq=5,
            occurred_at=at + 6 * day,
            nights=3,
            total_amount=Decimal("300.03"),
            currency="EUR",
        ),
    ]


def produce(topics: TopicSettings, events: list[BookingEvent]) -> int:
    registry = SchemaRegistryClient(RegistrySettings().client_config())
    serializer = EventSerializer(registry, auto_register=True)
    producer = Producer({**KafkaSettings().librdkafka(), "linger.ms": 20})
    for event in events:
        value = serializer.serialize(event, topics.validated)
        producer.produce(topics.validated, key=event.booking_id, value=value)
        producer.poll(0)
    assert producer.flush(30) == 0
    return len(events)


def events_for(count: int, prefix: str | None = None) -> list[BookingEvent]:
    prefix = prefix or uuid.uuid4().hex[:6]
    return [e for n in range(count) for e in lifecycle(n, prefix)]


# --- sink and ClickHouse ------------------------------------------------------


def sink_settings(**overrides: Any) -> SinkSettings:
    values: dict[str, Any] = {
        "group_id": f"sink-{uuid.uuid4().hex[:8]}",
        "insert_backoff_initial_ms": 100,
        "insert_backoff_max_ms": 1000,
        "insert_retry_max_s": 60,
    }
    return SinkSettings(**{**values, **overrides})


def run_sink(
    topics: TopicSettings,
    settings: SinkSettings,
    clickhouse: ClickHouseSettings | None = None,
    idle_exit_s: float = 3.0,
) -> SinkStats:
    sink = ClickHouseSink(
        KafkaSettings(),
        RegistrySettings(),
        clickhouse or ClickHouseSettings(),
        topics,
        settings,
    )
    return sink.run(idle_exit_s=idle_exit_s)


def ch_client() -> Any:
    return clickhouse_connect.get_client(
        **ClickHouseSettings().client_kwargs(), tz_mode="aware"
    )


def query(sql: str) -> list[tuple[Any, ...]]:
    client = ch_client()
    try:
        db = ClickHouseSettings().database
        return list(client.query(sql.replace("{db}", db)).result_rows)
    finally:
        client.close()


def counts() -> tuple[int, int, int]:
    """count(), uniqExact(event_id), uniqExact(Kafka coordinates)."""
    ((total, events, records),) = query(
        "SELECT count(), uniqExact(event_id),"
        " uniqExact(kafka_partition, kafka_offset) FROM {db}.booking_events"
    )
    return total, events, records


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


# --- tests --------------------------------------------------------------------


def test_every_event_is_stored_once_with_exact_values(
    topics: TopicSettings, clickhouse_database: str
) -> None:
    events = events_for(120)
    produced = produce(topics, events)

    stats = run_sink(topics, sink_settings())

    assert stats.rows_inserted == produced
    assert counts() == (produced, produced, produced)

    # A booking's history reads back in seq order, 1..n without gaps.
    histories = query(
        "SELECT booking_id, groupArray(seq) FROM"
        " (SELECT booking_id, seq FROM {db}.booking_events ORDER BY booking_id, seq)"
        " GROUP BY booking_id"
    )
    assert len(histories) == 120
    assert all(seqs == list(range(1, len(seqs) + 1)) for _, seqs in histories)

    # Values as produced: decimals, far dates, UTC milliseconds.
    first = next(e for e in events if isinstance(e, BookingModified))
    ((rate, departure, occurred, event_id, ingested),) = query(
        "SELECT average_daily_rate, departure_date, occurred_at, event_id,"
        f" ingested_at FROM {{db}}.booking_events WHERE event_id = '{first.event_id}'"
    )
    assert rate == Decimal("9999999999.99")
    assert departure == date(2299, 12, 31)
    assert occurred == first.occurred_at
    assert occurred.utcoffset() == timedelta(0)
    assert event_id == first.event_id
    assert abs(ingested - datetime.now(UTC)) < timedelta(minutes=5)
    ((created_at,),) = query(
        "SELECT toString(occurred_at) FROM {db}.booking_events"
        f" WHERE booking_id = '{events[0].booking_id}' AND seq = 1"
    )
    assert created_at == "2024-01-29 22:30:00.125"
    ((nulls,),) = query(
        "SELECT countIf(country IS NULL) FROM {db}.booking_events"
        " WHERE event_type = 'BOOKING_CREATED'"
    )
    assert nulls == 60

    # The views.
    statuses = dict(
        query("SELECT status, count() FROM {db}.bookings_current GROUP BY status")
    )
    assert statuses == {"checked_out": 90, "cancelled": 30}
    ((stays, revenue, changed),) = query(
        "SELECT count(), sum(revenue), countIf(room_changed) FROM {db}.stays"
    )
    assert (stays, revenue, changed) == (90, Decimal("300.03") * 90, 90)


def test_an_undecodable_record_goes_to_the_dead_letter_topic(
    topics: TopicSettings, clickhouse_database: str
) -> None:
    produced = produce(topics, events_for(5))
    producer = Producer(KafkaSettings().librdkafka())
    producer.produce(topics.validated, key=b"x", value=b"\x00\x00\x00\x00\x01junk")
    producer.flush(10)

    stats = run_sink(topics, sink_settings())

    assert stats.records_dead_lettered == 1
    assert counts()[0] == produced
    consumer = Consumer(
        {
            **KafkaSettings().librdkafka(),
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topics.dead_letter])
    try:
        msg = None
        deadline = time.monotonic() + 30
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
        assert msg is not None and msg.error() is None
        headers = {k: v.decode() for k, v in msg.headers() or []}
        assert headers["dlq.reason"] == "sink_decode_failed"
        assert headers["dlq.source.topic"] == topics.validated
        assert msg.value() == b"\x00\x00\x00\x00\x01junk"
    finally:
        consumer.close()


def test_decode_failure_can_stop_the_sink_instead(
    topics: TopicSettings, clickhouse_database: str
) -> None:
    from sinks import SinkDecodeError

    producer = Producer(KafkaSettings().librdkafka())
    producer.produce(topics.validated, key=b"x", value=b"not avro")
    producer.flush(10)

    with pytest.raises(SinkDecodeError, match=rf"{topics.validated}\[\d\]@0"):
        run_sink(topics, sink_settings(decode_failure="stop"))


def test_rows_inserted_but_not_committed_are_not_written_again(
    topics: TopicSettings, clickhouse_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sink_settings()
    first = produce(topics, events_for(40))

    # A sink that dies between insert and commit: rows in, offsets not.
    stop = threading.Event()
    with monkeypatch.context() as patch:
        patch.setattr(ClickHouseSink, "_commit", lambda self, offsets: None)
        crashed = ClickHouseSink(
            KafkaSettings(), RegistrySettings(), ClickHouseSettings(), topics, settings
        )
        thread = threading.Thread(target=crashed.run, args=(stop,))
        thread.start()
        try:
            wait_for(lambda: _stored_safe() >= first, 60, "the first rows")
        finally:
            stop.set()
            thread.join(60)
    assert crashed.stats.rows_inserted == first
    more = produce(topics, events_for(10))

    restarted = run_sink(topics, settings)

    assert restarted.records_skipped == first
    assert restarted.rows_inserted == more
    assert counts() == (first + more,) * 3


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    topics: TopicSettings, clickhouse_database: str, tmp_path: Path
) -> None:
    produced = produce(topics, events_for(3000))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BOOKING_EVENTS_SINK_GROUP_ID": f"sink-{uuid.uuid4().hex[:8]}",
        "BOOKING_EVENTS_SINK_BATCH_MAX_ROWS": "500",
    }
    command = [*CLI, "sink"]

    log_path = tmp_path / "sink.log"
    with log_path.open("w") as log:
        first = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for(lambda: _stored_safe() >= 1500, 120, "the first rows")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        stored_at_kill = _stored_safe()

        second = subprocess.run(
            [*command, "--idle-exit", "5"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    assert second.returncode == 0, log_path.read_text()[-3000:]
    assert 0 < stored_at_kill < produced
    assert counts() == (produced, produced, produced)


def _stored_safe() -> int:
    try:
        return counts()[0]
    except Exception:
        return 0


def test_sigterm_flushes_commits_and_exits_0(
    topics: TopicSettings, clickhouse_database: str, tmp_path: Path
) -> None:
    produced = produce(topics, events_for(50))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env["BOOKING_EVENTS_SINK_GROUP_ID"] = f"sink-{uuid.uuid4().hex[:8]}"
    env["BOOKING_EVENTS_SINK_BATCH_MAX_MS"] = "60000"  # only SIGTERM flushes
    log_path = tmp_path / "sink.log"
    with log_path.open("w") as log:
        sink = subprocess.Popen(
            [*CLI, "sink"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: "assigned" in log_path.read_text(), 60, "assignment")
        time.sleep(3)
        sink.send_signal(signal.SIGTERM)
        assert sink.wait(60) == 0, log_path.read_text()[-3000:]

    assert counts()[0] == produced
    again = run_sink(
        topics, sink_settings(group_id=env["BOOKING_EVENTS_SINK_GROUP_ID"])
    )
    assert (again.rows_inserted, again.records_skipped) == (0, 0)


class PausableProxy:
    """A TCP proxy to ClickHouse that can drop every connection and refuse new
    ones for a while: ClickHouse unreachable, as the sink sees it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._paused = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def pause(self) -> None:
        self._paused.set()
        with self._lock:
            for sock in self._open:
                sock.close()
            self._open.clear()

    def resume(self) -> None:
        self._paused.clear()

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            if self._paused.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(
                target=self._pipe, args=(client, upstream), daemon=True
            ).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            a.close()
            b.close()


def test_clickhouse_unreachable_mid_stream_loses_nothing(
    topics: TopicSettings, clickhouse_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="sinks")
    url = ClickHouseSettings().url
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    proxy = PausableProxy(host, int(port))
    clickhouse = ClickHouseSettings(url=f"http://127.0.0.1:{proxy.port}")
    produced = produce(topics, events_for(100))
    result: dict[str, Any] = {}

    def sink() -> None:
        try:
            result["stats"] = run_sink(
                topics, sink_settings(), clickhouse, idle_exit_s=8
            )
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=sink)
    thread.start()
    wait_for(lambda: _stored_safe() >= produced, 60, "the first events")

    proxy.pause()
    produced += produce(topics, events_for(100))
    time.sleep(5)
    stored_while_down = counts()[0]
    proxy.resume()
    thread.join(120)

    assert "error" not in result, result.get("error")
    assert stored_while_down < produced
    assert "retrying" in caplog.text
    assert counts() == (produced, produced, produced)


def test_clickhouse_restart_mid_stream_loses_nothing(
    topics: TopicSettings, clickhouse_database: str, local_stack: Any
) -> None:
    if local_stack is None:
        pytest.skip("needs the local stack to stop and start ClickHouse")
    produced = produce(topics, events_for(100))
    result: dict[str, Any] = {}

    def sink() -> None:
        try:
            result["stats"] = run_sink(topics, sink_settings(), idle_exit_s=8)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=sink)
    thread.start()
    wait_for(lambda: _stored_safe() >= produced, 60, "the first events")

    clickhouse = local_stack.services["clickhouse"]
    clickhouse.stop()
    produced += produce(topics, events_for(100))
    time.sleep(4)
    clickhouse.start()
    thread.join(180)

    assert "error" not in result, result.get("error")
    assert counts() == (produced, produced, produced)


def test_a_repeated_insert_is_dropped_by_its_token(clickhouse_database: str) -> None:
    from sinks.rows import insert_groups, kafka_time, to_row
    from sinks.writer import ClickHouseWriter

    writer = ClickHouseWriter(ClickHouseSettings(), sink_settings(create_views=False))
    writer.start()
    try:
        events = events_for(30)
        rows = [
            to_row(
                e.to_avro(), topic="t", partition=0, offset=i, timestamp=kafka_time(0)
            )
            for i, e in enumerate(events)
        ]
        groups = insert_groups("t", 0, list(range(len(rows))), rows)
        assert len(groups) == 2  # January and February
        for group in groups:
            writer.insert(group, datetime.now(UTC))
        # The retry of an insert that reached the server: same token, dropped.
        for group in groups:
            writer.insert(group, datetime.now(UTC) + timedelta(seconds=1))

        assert counts() == (len(rows),) * 3
        stored = writer.stored_offsets("t", {0: (10, 10_000)})
        assert stored == {0: set(range(10, len(rows)))}
        assert writer.stored_counts("t", {0: (0, 99), 1: (0, 9)}) == {0: 100, 1: 0}
    finally:
        writer.close()


# --- the traps of issue #3 ----------------------------------------------------


def _state(events: list[BookingEvent], start: int, end: int) -> Any:
    from sinks.rebalance import PartitionState
    from sinks.rows import kafka_time, to_row

    state = PartitionState(0, committed=start, position=end)
    for offset in range(start, end):
        state.offsets.append(offset)
        state.rows.append(
            to_row(
                events[offset].to_avro(),
                topic="t",
                partition=0,
                offset=offset,
                timestamp=kafka_time(0),
            )
        )
    return state


@pytest.mark.parametrize("zombie_first", [True, False])
def test_a_zombie_with_a_stale_check_and_other_batch_bounds_adds_nothing(
    clickhouse_database: str, zombie_first: bool
) -> None:
    """Two sinks flush the same records with different bounds, each having
    checked before the other inserted: the tokens let exactly one copy in."""
    from sinks.flush import Flusher
    from sinks.rebalance import SinkStats
    from sinks.writer import ClickHouseWriter

    settings = sink_settings(create_views=False)
    writer = ClickHouseWriter(ClickHouseSettings(), settings)
    writer.start()
    events = events_for(12)  # over January and February
    n = len(events)
    try:
        zombie, owner = SinkStats(), SinkStats()
        stale = writer.stored_offsets("t", {0: (0, n - 1)})  # both check now
        flushes = [
            (Flusher("t", writer, settings, zombie), _state(events, 0, n // 2)),
            (Flusher("t", writer, settings, owner), _state(events, 0, n)),
        ]
        if not zombie_first:
            flushes.reverse()
        real = writer.stored_offsets
        for flusher, state in flushes:
            # Its first check is the stale one; later rounds look again.
            calls = iter([stale])
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(
                    writer,
                    "stored_offsets",
                    lambda topic, ranges, calls=calls: (
                        next(calls, None) or real(topic, ranges)
                    ),
                )
                flusher.flush([state])

        assert counts() == (n, n, n)
        # Whoever came second sent blocks ClickHouse dropped, noticed by the
        # count, and sent only what was missing.
        second = owner if zombie_first else zombie
        assert second.rounds_repeated == (1 if zombie_first else 0)
    finally:
        writer.close()


def test_a_batch_across_months_is_one_part_per_insert(
    topics: TopicSettings, clickhouse_database: str
) -> None:
    from sinks.writer import ClickHouseWriter

    writer = ClickHouseWriter(ClickHouseSettings(), sink_settings())
    writer.start()
    writer.client.command(f"SYSTEM STOP MERGES {clickhouse_database}.booking_events")
    writer.close()
    produced = produce(topics, events_for(60))  # late January into February

    stats = run_sink(topics, sink_settings())

    ((parts, months, rows),) = query(
        "SELECT count(), uniqExact(partition), sum(rows) FROM system.parts"
        " WHERE database = '{db}' AND table = 'booking_events' AND active"
    )
    assert months == 2
    assert rows == produced
    # Every insert became exactly one part: one block, stored whole or not.
    assert parts == stats.inserts


def test_inserts_are_synchronous_although_the_server_default_is_async(
    clickhouse_database: str,
) -> None:
    from sinks.rows import insert_groups, kafka_time, to_row
    from sinks.writer import ClickHouseWriter

    writer = ClickHouseWriter(ClickHouseSettings(), sink_settings(create_views=False))
    writer.start()
    sent: list[dict[str, Any]] = []
    real_insert = writer.client.insert

    def spy(*args: Any, **kwargs: Any) -> Any:
        sent.append(dict(kwargs["settings"]))
        return real_insert(*args, **kwargs)

    try:
        ((server_default,),) = query(
            "SELECT value FROM system.settings WHERE name = 'async_insert'"
        )
        writer.client.insert = spy
        events = events_for(4)
        rows = [
            to_row(
                e.to_avro(), topic="t", partition=0, offset=i, timestamp=kafka_time(0)
            )
            for i, e in enumerate(events)
        ]
        stored = 0
        for group in insert_groups("t", 0, list(range(len(rows))), rows):
            writer.insert(group, datetime.now(UTC))
            stored += len(group.rows)
            # Synchronous: the rows are readable as soon as the call returns.
            assert writer.stored_counts("t", {0: (0, 99)}) == {0: stored}
    finally:
        writer.close()
    assert server_default == "1"
    assert sent and all(s["async_insert"] == 0 for s in sent)
