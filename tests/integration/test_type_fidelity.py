"""Every value arrives exactly as produced: producer object -> Kafka -> sink ->
ClickHouse query result, with producer and sink in processes of their own
running under TZ=America/New_York (a naive datetime anywhere would shift)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import clickhouse_connect
import evolved
import pytest

from booking_events.settings import ClickHouseSettings, TopicSettings

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parents[1]


def run(args: list[str], env: dict[str, str], timeout_s: float = 120) -> str:
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_values_round_trip_exactly_across_processes_in_new_york(
    topics: TopicSettings, clickhouse_database: str, pipeline_env: dict[str, str]
) -> None:
    env = {
        **pipeline_env,
        "TZ": "America/New_York",
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),
        # The producer writes straight to the sink's topic: no processor here.
        "BOOKING_EVENTS_TOPIC_RAW": topics.validated,
        "BOOKING_EVENTS_SINK_GROUP_ID": f"fidelity-{uuid.uuid4().hex[:8]}",
    }
    produce = f"import evolved; evolved.produce_fidelity({topics.validated!r})"
    run([sys.executable, "-c", produce], env)
    run([sys.executable, "-m", "booking_events", "sink", "--idle-exit", "4"], env, 180)

    client = clickhouse_connect.get_client(
        **ClickHouseSettings().client_kwargs(), tz_mode="aware"
    )
    try:
        result = client.query(
            f"SELECT * FROM `{clickhouse_database}`.booking_events ORDER BY seq"
        )
        rows = [
            dict(zip(result.column_names, r, strict=True)) for r in result.result_rows
        ]
        types = dict(
            client.query(
                "SELECT name, type FROM system.columns WHERE database = {db:String}"
                " AND table = 'booking_events'",
                parameters={"db": clickhouse_database},
            ).result_rows
        )
        text_times = client.query(
            "SELECT toString(occurred_at), toString(checked_out_at)"
            f" FROM `{clickhouse_database}`.booking_events ORDER BY seq"
        ).result_rows
    finally:
        client.close()

    (created, _), (checkout, fields) = evolved.fidelity_events()
    assert len(rows) == 2
    stored_created, stored_checkout = rows

    expected = {**created.to_avro(), **created.payload()}
    expected.pop("payload")
    expected["event_id"] = created.event_id
    for name, value in expected.items():
        if name != "source":
            assert stored_created[name] == value, name
    assert stored_created["occurred_at"].utcoffset().total_seconds() == 0

    for name, value in checkout.payload().items():
        assert stored_checkout[name] == value, name
    for name, value in fields.items():
        assert stored_checkout[name] == value, name
    assert stored_checkout["occurred_at"] == checkout.occurred_at

    # The same instants as text, in UTC: no zone shift on the way.
    assert text_times == [
        ("2024-03-10 06:59:59.999", None),
        ("2024-03-10 07:00:00.001", "2024-03-10 07:00:00.000001"),
    ]
    assert types["country"] == "LowCardinality(Nullable(String))"
    assert types["currency"] == "LowCardinality(Nullable(String))"
    assert types["arrival_date"] == "Nullable(Date32)"
    assert types["average_daily_rate"] == "Nullable(Decimal(12, 2))"
    assert types["event_id"] == "UUID"
    assert types["occurred_at"] == "DateTime64(3, 'UTC')"
    assert types["checked_out_at"] == "Nullable(DateTime64(6, 'UTC'))"
    assert types["extras"] == "Array(String)"
    assert types["minibar"] == "Map(String, Decimal(12, 2))"
    assert types["guest"] == (
        "Nullable(Tuple(name String, born Date32, vip Bool, nickname Nullable(String)))"
    )
    assert types["charges"] == (
        "Array(Tuple(label String, amount Decimal(12, 2), at DateTime64(6, 'UTC')))"
    )
    assert types["invoice_id"] == "Nullable(UUID)"
