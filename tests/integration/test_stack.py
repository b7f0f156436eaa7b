"""The local stack starts real Kafka, Apicurio Registry and ClickHouse processes."""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from booking_events.stack import KafkaCluster, LocalStack, StackPorts

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

SCHEMA = """{"type": "record", "name": "Ping", "namespace": "booking_events.test",
 "fields": [{"name": "id", "type": "string"}]}"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(tmp_path_factory.mktemp("stack"), StackPorts.free())

    began = time.monotonic()
    local.install()
    log.info("install took %.1fs", time.monotonic() - began)
    began = time.monotonic()
    local.start()
    log.info("start to healthy took %.1fs", time.monotonic() - began)
    for name, service in local.services.items():
        rss = subprocess.run(
            ["ps", "-o", "rss=", "-p", str(service.pid())], capture_output=True
        ).stdout.decode()
        log.info("%s memory", name, extra={"rss_kib": rss.strip()})

    yield local
    local.stop()
    assert local.status() == {"kafka": False, "registry": False, "clickhouse": False}


def _produce_and_consume(bootstrap: str, topic: str, value: bytes | None) -> bytes:
    """Produce ``value`` (unless None), then read the topic's first message."""
    if value is not None:
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(topic, key=b"k", value=value)
        assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            payload = message.value()
            assert payload is not None
            return payload
        raise AssertionError(f"no message on {topic} within 60s")
    finally:
        consumer.close()


def test_all_services_answer(stack: LocalStack) -> None:
    assert stack.status() == {"kafka": True, "registry": True, "clickhouse": True}


def test_kafka_creates_topic_and_round_trips_a_message(stack: LocalStack) -> None:
    bootstrap = stack.endpoints.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic("stack-test.ping", 3, 1)])
    futures["stack-test.ping"].result(30)

    assert _produce_and_consume(bootstrap, "stack-test.ping", b"hello") == b"hello"


def test_registry_registers_and_fetches_a_schema(stack: LocalStack) -> None:
    client = SchemaRegistryClient({"url": stack.endpoints.registry_url})

    schema_id = client.register_schema("stack-test-value", Schema(SCHEMA, "AVRO"))

    assert "Ping" in client.get_schema(schema_id).schema_str
    assert "stack-test-value" in client.get_subjects()


def test_clickhouse_creates_inserts_and_selects(stack: LocalStack) -> None:
    client = clickhouse_connect.get_client(dsn=stack.endpoints.clickhouse_url)
    client.command("CREATE DATABASE IF NOT EXISTS stack_test")
    client.command(
        "CREATE TABLE IF NOT EXISTS stack_test.pings (id String) "
        "ENGINE = MergeTree ORDER BY id"
    )
    client.insert("stack_test.pings", [["a"], ["b"]], column_names=["id"])

    assert client.query("SELECT count() FROM stack_test.pings").result_rows == [(2,)]


def test_start_when_running_is_a_no_op(stack: LocalStack) -> None:
    pids = {name: service.pid() for name, service in stack.services.items()}

    again = LocalStack(stack.state_dir, stack.ports)
    again.start()

    assert {name: s.pid() for name, s in again.services.items()} == pids


def test_clickhouse_restarts_alone(stack: LocalStack) -> None:
    clickhouse = stack.services["clickhouse"]
    clickhouse.stop()
    assert stack.status()["clickhouse"] is False
    assert stack.status()["kafka"] is True

    clickhouse.start()

    assert stack.status()["clickhouse"] is True


def test_data_survives_a_restart(stack: LocalStack) -> None:
    registry = SchemaRegistryClient({"url": stack.endpoints.registry_url})
    schema_id = registry.register_schema("stack-restart-value", Schema(SCHEMA, "AVRO"))
    clickhouse = clickhouse_connect.get_client(dsn=stack.endpoints.clickhouse_url)
    clickhouse.command(
        "CREATE TABLE IF NOT EXISTS default.restart (n UInt32) "
        "ENGINE = MergeTree ORDER BY n"
    )
    clickhouse.insert("default.restart", [[7]], column_names=["n"])
    bootstrap = stack.endpoints.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("stack-test.restart", 1, 1)])[
        "stack-test.restart"
    ].result(30)
    _produce_and_consume(bootstrap, "stack-test.restart", b"kept")

    stack.stop()
    stack.start()

    registry = SchemaRegistryClient({"url": stack.endpoints.registry_url})
    assert "Ping" in registry.get_schema(schema_id).schema_str
    clickhouse = clickhouse_connect.get_client(dsn=stack.endpoints.clickhouse_url)
    assert clickhouse.query("SELECT sum(n) FROM default.restart").result_rows == [(7,)]
    assert _produce_and_consume(bootstrap, "stack-test.restart", None) == b"kept"


def test_libraries_live_in_the_state_dir(stack: LocalStack) -> None:
    state: Path = stack.state_dir

    assert list((state / "lib" / "kafka").glob("kafka_2.13-*.jar"))
    assert (state / "lib" / "apicurio" / "quarkus-run.jar").is_file()
    for name in stack.services:
        assert (state / "logs" / f"{name}.log").is_file()
        assert (state / "run" / f"{name}.pid").is_file()


def test_kafka_cluster_keeps_serving_without_one_node(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path, nodes=3)
    began = time.monotonic()
    cluster.start()
    log.info("3-node cluster healthy in %.1fs", time.monotonic() - began)
    try:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        admin.create_topics([NewTopic("stack-test.failover", 3, 3)])[
            "stack-test.failover"
        ].result(30)

        cluster.nodes[0].kill()

        value = _produce_and_consume(cluster.bootstrap, "stack-test.failover", b"ok")
        assert value == b"ok"
        assert cluster.status() == {"kafka-1": False, "kafka-2": True, "kafka-3": True}
        cluster.nodes[0].start()
        assert all(cluster.status().values())
    finally:
        began = time.monotonic()
        cluster.stop()
        log.info("3-node cluster stopped in %.1fs", time.monotonic() - began)
