"""The whole local stack: Kafka, Apicurio Registry and ClickHouse on loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from booking_events.exceptions import ConfigurationError
from booking_events.stack.clickhouse import ClickHouseService
from booking_events.stack.config import StackPorts, StackSettings
from booking_events.stack.kafka import KafkaNode, KafkaNodeSpec
from booking_events.stack.process import Service, stop_all
from booking_events.stack.registry import RegistryService

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where clients reach the running stack."""

    kafka_bootstrap: str
    """``host:port`` list for ``bootstrap.servers``."""
    registry_url: str
    """Base URL of the registry's Confluent-compatible API."""
    clickhouse_url: str
    """ClickHouse HTTP endpoint, a DSN for clickhouse-connect."""


class LocalStack:
    """Starts, checks and stops the three services, all state in ``state_dir``.

    The constructor only validates; :meth:`install` fetches what is missing and
    :meth:`start` runs the services as detached processes that outlive this
    object, found again later through their pid files. Each service is also
    reachable alone, e.g. ``stack.services["clickhouse"].stop()``.
    """

    def __init__(
        self,
        state_dir: Path,
        ports: StackPorts | None = None,
        settings: StackSettings | None = None,
    ) -> None:
        self.settings = settings or StackSettings()
        self.state_dir = Path(state_dir).expanduser().resolve()
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise ConfigurationError(
                f"state dir {self.state_dir} is a file: remove it or set "
                "BOOKING_EVENTS_STACK_STATE_DIR to a directory"
            )
        self.ports = ports or self.settings.ports()

        kafka = KafkaNodeSpec(1, self.ports.kafka, self.ports.kafka_controller)
        self.services: dict[str, Service] = {
            "kafka": KafkaNode(self.state_dir, self.settings, kafka),
            "registry": RegistryService(
                self.state_dir,
                self.settings,
                self.ports.registry,
                self.ports.registry_management,
            ),
            "clickhouse": ClickHouseService(
                self.state_dir, self.ports.clickhouse_http, self.ports.clickhouse_tcp
            ),
        }

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            kafka_bootstrap=self.services["kafka"].endpoint,
            registry_url=self.services["registry"].endpoint,
            clickhouse_url=self.services["clickhouse"].endpoint,
        )

    def env(self) -> dict[str, str]:
        """Environment variables that point the project's settings at this stack."""
        endpoints = self.endpoints
        return {
            "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
            "BOOKING_EVENTS_REGISTRY_URL": endpoints.registry_url,
            "BOOKING_EVENTS_CLICKHOUSE_URL": endpoints.clickhouse_url,
        }

    def install(self) -> None:
        """Fetch whatever is missing; fast and offline when everything is there."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for service in self.services.values():
            service.install()

    def start(self, fresh: bool = False, timeout_s: float | None = None) -> None:
        """Start every service that is not running and wait until all answer.

        ``fresh`` stops running services and wipes their data (not the libraries).
        On failure, services started by this call are stopped again and the
        :class:`~booking_events.stack.exceptions.StackError` names the service
        and ends with its last log lines.
        """
        timeout_s = timeout_s or self.settings.start_timeout_s
        began = time.monotonic()
        with self._lock():
            # Fail on a missing tool or a taken port before any slow download.
            for service in self.services.values():
                if fresh or not service.running():
                    service.check_tools()
                if not fresh:
                    service.check_ports()
            self.install()

            started: list[Service] = []
            try:
                for service in self.services.values():
                    if service.launch(fresh=fresh):
                        started.append(service)
                deadline = began + timeout_s
                for service in self.services.values():
                    service.wait_healthy(max(1.0, deadline - time.monotonic()))
            except BaseException:
                stop_all(started, self.settings.stop_timeout_s)
                raise
        log.info(
            "local stack healthy in %.1f s",
            time.monotonic() - began,
            extra={"state_dir": str(self.state_dir)},
        )

    def stop(self) -> None:
        """Stop every service; does nothing for those already stopped."""
        with self._lock():
            stop_all(list(self.services.values()), self.settings.stop_timeout_s)

    def status(self) -> dict[str, bool]:
        """Service name -> whether it answers right now."""
        return {name: service.healthy() for name, service in self.services.items()}

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start and stop of one state dir across processes."""
        lock_file = self.state_dir / "run" / "stack.lock"
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        with lock_file.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
