"""Ports and places of the local stack, read from ``BOOKING_EVENTS_STACK_*``."""

from __future__ import annotations

import dataclasses
import socket
from contextlib import ExitStack
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "BOOKING_EVENTS_STACK_"
LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class StackPorts:
    """Loopback ports the services listen on."""

    kafka: int = 9092
    """Kafka PLAINTEXT listener that clients bootstrap from."""
    kafka_controller: int = 9093
    """Kafka KRaft controller listener."""
    registry: int = 8081
    """Apicurio Registry HTTP API (the Confluent-compatible API lives below it)."""
    registry_management: int = 8091
    """Apicurio's Quarkus management interface (health, metrics); always on."""
    clickhouse_http: int = 8123
    """ClickHouse HTTP interface, used by clickhouse-connect."""
    clickhouse_tcp: int = 9000
    """ClickHouse native TCP interface."""

    def __post_init__(self) -> None:
        ports = dataclasses.astuple(self)
        for field, port in zip(self.names(), ports, strict=True):
            if not 1 <= port <= 65535:
                raise ValueError(f"port {field}={port} is outside 1..65535")
        if len(set(ports)) != len(ports):
            raise ValueError(f"each service needs its own port, got {self}")

    @staticmethod
    def names() -> tuple[str, ...]:
        """Field names, in declaration order."""
        return tuple(field.name for field in dataclasses.fields(StackPorts))

    @staticmethod
    def env_var(name: str) -> str:
        """The environment variable that overrides the port ``name``."""
        return f"{ENV_PREFIX}{name.upper()}_PORT"

    @classmethod
    def free(cls) -> StackPorts:
        """Ports that are free on the loopback right now, distinct from each other."""
        return cls(*free_ports(len(cls.names())))


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that nothing listens on right now."""
    with ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket())
            sock.bind((LOOPBACK, 0))
            ports.append(sock.getsockname()[1])
    return ports


class StackSettings(BaseSettings):
    """Where the stack keeps its state and which ports it uses."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", case_sensitive=False
    )

    state_dir: Path = Field(
        default=Path(".state"),
        description="Directory of downloaded libraries, data, logs and pid files.",
    )
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    registry_port: int = Field(default=8081, ge=1, le=65535)
    registry_management_port: int = Field(default=8091, ge=1, le=65535)
    clickhouse_http_port: int = Field(default=8123, ge=1, le=65535)
    clickhouse_tcp_port: int = Field(default=9000, ge=1, le=65535)
    java_home: Path | None = Field(
        default=None,
        description="JDK to run Kafka and the registry (21+ for the registry).",
    )
    maven: str = Field(
        default="mvn", description="Maven executable, a name on PATH or a path."
    )
    start_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="How long start waits for every service, seconds.",
    )
    stop_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Grace period between SIGTERM and SIGKILL, seconds.",
    )

    def ports(self) -> StackPorts:
        """The ports as a :class:`StackPorts`."""
        return StackPorts(
            **{name: getattr(self, f"{name}_port") for name in StackPorts.names()}
        )
