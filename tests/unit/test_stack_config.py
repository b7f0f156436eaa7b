"""The local stack's configuration and checks, without starting any process."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from booking_events.exceptions import BookingEventsError, ConfigurationError
from booking_events.stack import (
    LocalStack,
    MissingToolError,
    PortInUseError,
    StackPorts,
    StackSettings,
)
from booking_events.stack import java as java_module
from booking_events.stack.artifacts import find_maven
from booking_events.stack.clickhouse_server import write_config
from booking_events.stack.kafka import KafkaNode, KafkaNodeSpec, new_cluster_id
from booking_events.stack.process import port_in_use


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_default_ports() -> None:
    ports = StackPorts()

    assert (ports.kafka, ports.registry, ports.clickhouse_http) == (9092, 8081, 8123)
    assert (ports.kafka_controller, ports.clickhouse_tcp) == (9093, 9000)


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = StackPorts.free()

    values = [getattr(ports, name) for name in StackPorts.names()]
    assert len(set(values)) == len(values)
    assert not any(port_in_use(port) for port in values)


def test_ports_must_differ_and_be_in_range() -> None:
    with pytest.raises(ValueError, match="own port"):
        StackPorts(kafka=9000)
    with pytest.raises(ValueError, match="outside"):
        StackPorts(registry=70000)


def test_settings_read_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_STACK_KAFKA_PORT", "19092")
    monkeypatch.setenv("BOOKING_EVENTS_STACK_CLICKHOUSE_HTTP_PORT", "18123")
    monkeypatch.setenv("BOOKING_EVENTS_STACK_STATE_DIR", str(tmp_path))

    settings = StackSettings()

    assert settings.state_dir == tmp_path
    assert settings.ports() == StackPorts(kafka=19092, clickhouse_http=18123)
    assert StackPorts.env_var("kafka") == "BOOKING_EVENTS_STACK_KAFKA_PORT"


def test_stack_uses_environment_ports_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_STACK_REGISTRY_PORT", "18081")

    stack = LocalStack(tmp_path / "state")

    assert stack.endpoints.registry_url == "http://127.0.0.1:18081/apis/ccompat/v7"


def test_constructor_is_cheap_and_endpoints_follow_ports(tmp_path: Path) -> None:
    ports = StackPorts(kafka=1, kafka_controller=2, registry=3, clickhouse_http=4)

    stack = LocalStack(tmp_path / "state", ports)

    assert not (tmp_path / "state").exists()
    assert stack.endpoints.kafka_bootstrap == "127.0.0.1:1"
    assert stack.endpoints.clickhouse_url == "http://127.0.0.1:4"
    assert stack.env() == {
        "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "BOOKING_EVENTS_REGISTRY_URL": "http://127.0.0.1:3/apis/ccompat/v7",
        "BOOKING_EVENTS_CLICKHOUSE_URL": "http://127.0.0.1:4",
    }
    assert set(stack.services) == {"kafka", "registry", "clickhouse"}
    assert stack.status() == {"kafka": False, "registry": False, "clickhouse": False}


def test_state_dir_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text("")

    with pytest.raises(ConfigurationError, match="is a file"):
        LocalStack(path)


def test_port_in_use_is_detected(listening_port: int) -> None:
    assert port_in_use(listening_port)


def test_port_in_use_names_port_and_setting(
    tmp_path: Path, listening_port: int
) -> None:
    ports = StackPorts.free()
    stack = LocalStack(tmp_path, StackPorts(**{**vars(ports), "kafka": listening_port}))

    with pytest.raises(PortInUseError) as caught:
        stack.services["kafka"].check_ports()

    message = str(caught.value)
    assert f"port {listening_port} is in use" in message
    assert "BOOKING_EVENTS_STACK_KAFKA_PORT" in message
    assert isinstance(caught.value, BookingEventsError)
    stack.services["clickhouse"].check_ports()  # its ports are free


def test_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, StackPorts.free())
    service = stack.services["clickhouse"]
    service.pid_file.parent.mkdir(parents=True)
    service.pid_file.write_text("999999999\n")

    assert not service.running()
    assert not service.pid_file.exists()
    service.stop()  # idempotent when nothing runs


def test_missing_java_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(java_module, "_candidates", lambda configured: [])

    with pytest.raises(MissingToolError, match="BOOKING_EVENTS_STACK_JAVA_HOME"):
        java_module.find_java(21, None, "Apicurio Registry")


def test_missing_maven_says_what_to_do() -> None:
    with pytest.raises(MissingToolError, match="BOOKING_EVENTS_STACK_MAVEN"):
        find_maven("no-such-maven-here")


def test_missing_chdb_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "chdb" else real_find_spec(name, *a),
    )
    stack = LocalStack(tmp_path, StackPorts.free())

    with pytest.raises(
        MissingToolError, match=r"pip install 'booking-events\[local\]'"
    ):
        stack.services["clickhouse"].check_tools()


def test_single_node_kafka_properties(tmp_path: Path) -> None:
    node = KafkaNode(tmp_path, StackSettings(), KafkaNodeSpec(1, 19092, 19093))

    properties = dict(
        line.split("=", 1) for line in node._server_properties().splitlines()
    )

    assert properties["process.roles"] == "broker,controller"
    assert properties["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert properties["listeners"].startswith("PLAINTEXT://127.0.0.1:19092,")
    assert properties["auto.create.topics.enable"] == "false"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    assert properties["offsets.topic.replication.factor"] == "1"
    assert properties["log.dirs"].startswith(str(tmp_path))


def test_cluster_kafka_properties_list_every_voter(tmp_path: Path) -> None:
    specs = [KafkaNodeSpec(i, 19090 + 2 * i, 19091 + 2 * i) for i in (1, 2, 3)]
    node = KafkaNode(tmp_path, StackSettings(), specs[1], specs, name="kafka-2")

    properties = dict(
        line.split("=", 1) for line in node._server_properties().splitlines()
    )

    assert properties["node.id"] == "2"
    assert properties["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    )
    assert properties["min.insync.replicas"] == "2"
    assert "controller.quorum.bootstrap.servers" not in properties


def test_cluster_id_looks_like_kafkas() -> None:
    cluster_id = new_cluster_id()

    assert len(cluster_id) == 22
    assert not cluster_id.startswith("-")


def test_clickhouse_config_names_loopback_and_ports(tmp_path: Path) -> None:
    text = write_config(tmp_path, "127.0.0.1", 18123, 19000).read_text()

    assert "<listen_host>127.0.0.1</listen_host>" in text
    assert "<http_port>18123</http_port>" in text
    assert "<tcp_port>19000</tcp_port>" in text
