"""Shared fixtures: real services once per session, fresh names per test.

Where the services come from, in order:

1. ``BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS``, ``BOOKING_EVENTS_REGISTRY_URL``
   and ``BOOKING_EVENTS_CLICKHOUSE_URL`` when all three are set;
2. containers through testcontainers when a Docker engine answers;
3. otherwise the project's local stack (Kafka and Apicurio from Maven Central,
   ClickHouse from chdb-core) on free loopback ports in a temporary directory.

Each test gets its own topics and ClickHouse database, so tests never see each
other's events.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)

ENDPOINT_VARS = (
    "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS",
    "BOOKING_EVENTS_REGISTRY_URL",
    "BOOKING_EVENTS_CLICKHOUSE_URL",
)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _containers() -> Iterator[dict[str, str]]:
    """The same images as deploy/compose.yaml, through testcontainers."""
    from testcontainers.clickhouse import ClickHouseContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer

    with (
        KafkaContainer("apache/kafka:4.1.0").with_kraft() as kafka,
        DockerContainer("apicurio/apicurio-registry:3.3.3").with_exposed_ports(
            8080
        ) as registry,
        ClickHouseContainer("clickhouse/clickhouse-server:26.9") as clickhouse,
    ):
        wait_for_logs(registry, "Installed features", timeout=120)
        host = registry.get_container_host_ip()
        yield {
            "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server(),
            "BOOKING_EVENTS_REGISTRY_URL": (
                f"http://{host}:{registry.get_exposed_port(8080)}/apis/ccompat/v7"
            ),
            "BOOKING_EVENTS_CLICKHOUSE_URL": (
                f"http://{clickhouse.get_container_host_ip()}"
                f":{clickhouse.get_exposed_port(8123)}"
            ),
            "BOOKING_EVENTS_CLICKHOUSE_USERNAME": clickhouse.username,
            "BOOKING_EVENTS_CLICKHOUSE_PASSWORD": clickhouse.password,
        }


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The local stack on free ports, or None when endpoints are given."""
    if all(os.environ.get(v) for v in ENDPOINT_VARS) or _docker_answers():
        yield None
        return
    from booking_events.stack import LocalStack, StackPorts

    state = Path(tmp_path_factory.mktemp("stack"))
    stack = LocalStack(state, ports=StackPorts.free())
    stack.install()
    stack.start(fresh=True)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def stack_env(local_stack, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """``BOOKING_EVENTS_*`` endpoint variables of the session's services.

    They are also set in this process's environment, so settings classes built
    by the code under test find them.
    """
    if all(os.environ.get(v) for v in ENDPOINT_VARS):
        env = {v: os.environ[v] for v in ENDPOINT_VARS}
        yield env
        return
    if local_stack is not None:
        env = local_stack.env()
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            yield env
        return
    containers = _containers()
    env = next(containers)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env
    containers.close()


@pytest.fixture
def topics(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> TopicSettings:
    """A fresh raw/validated/dead-letter trio, created, for this test alone."""
    from booking_events.topics import ensure_topics

    prefix = f"t{uuid.uuid4().hex[:10]}"
    names = {"raw": f"{prefix}.raw", "validated": f"{prefix}.validated"}
    names["dead_letter"] = f"{prefix}.dead-letter"
    for field, name in names.items():
        monkeypatch.setenv(f"BOOKING_EVENTS_TOPIC_{field.upper()}", name)
    settings = TopicSettings()
    ensure_topics(KafkaSettings(), settings)
    return settings


@pytest.fixture
def clickhouse_database(
    stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A database name of this test's own; dropped afterwards."""
    import clickhouse_connect

    name = f"test_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BOOKING_EVENTS_CLICKHOUSE_DATABASE", name)
    yield name
    settings = ClickHouseSettings()
    client = clickhouse_connect.get_client(**settings.client_kwargs())
    try:
        client.command(f"DROP DATABASE IF EXISTS {name}")
    finally:
        client.close()


@pytest.fixture
def pipeline_env(topics: TopicSettings, clickhouse_database: str) -> dict[str, str]:
    """Environment for a child process of the pipeline under test."""
    env = {k: v for k, v in os.environ.items() if k.startswith("BOOKING_EVENTS_")}
    return {**os.environ, **env}


@pytest.fixture
def registry_settings(stack_env: dict[str, str]) -> RegistrySettings:
    return RegistrySettings()
