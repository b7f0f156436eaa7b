"""Apicurio Registry 3, the Confluent-compatible Schema Registry of the stack.

It keeps its schemas in an H2 database file under ``<state>/data/registry``,
so registered schemas (and their ids) survive a restart. Clients use the
Confluent-compatible API at ``/apis/ccompat/v7``.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from booking_events.stack.artifacts import APICURIO_VERSION, MARKER, resolve_apicurio
from booking_events.stack.config import LOOPBACK, StackSettings
from booking_events.stack.exceptions import MissingToolError
from booking_events.stack.java import find_java
from booking_events.stack.process import Service

log = logging.getLogger(__name__)

MIN_JAVA = 21  # Apicurio 3.3 classes are compiled for Java 21
HEAP_OPTS = ["-Xms128m", "-Xmx512m"]
CCOMPAT_PATH = "/apis/ccompat/v7"


class RegistryService(Service):
    """Apicurio Registry run from its Quarkus distribution."""

    name = "registry"

    def __init__(
        self, state_dir: Path, settings: StackSettings, port: int, management_port: int
    ) -> None:
        super().__init__(state_dir)
        self.settings = settings
        self.port = port
        self.management_port = management_port
        self.lib_root = state_dir / "lib"
        self.data_dir = state_dir / "data" / "registry"

    @property
    def ports(self) -> Mapping[str, int]:
        return {"registry": self.port, "registry_management": self.management_port}

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{CCOMPAT_PATH}"

    @property
    def data_dirs(self) -> Sequence[Path]:
        return [self.data_dir]

    def check_tools(self) -> None:
        find_java(
            MIN_JAVA, self.settings.java_home, f"Apicurio Registry {APICURIO_VERSION}"
        )

    def install(self) -> None:
        resolve_apicurio(self.lib_root, self.settings.maven)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.endpoint}/subjects", timeout=2
            ) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _prepare(self) -> tuple[list[str], Path, dict[str, str]]:
        java = find_java(
            MIN_JAVA, self.settings.java_home, f"Apicurio Registry {APICURIO_VERSION}"
        )
        home = self.lib_root / "apicurio"
        if not (home / MARKER).is_file():
            raise MissingToolError(
                f"Apicurio Registry is missing in {home}: "
                "run `booking-events stack install`"
            )
        tmp = self.data_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)

        properties = {
            "quarkus.http.host": LOOPBACK,
            "quarkus.http.port": self.port,
            # The management interface is built in and cannot be switched off.
            "quarkus.management.host": LOOPBACK,
            "quarkus.management.port": self.management_port,
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "h2",
            "apicurio.datasource.url": f"jdbc:h2:file:{self.data_dir / 'registry'}",
            # The defaults keep 20 connections open, far more than one user needs.
            "apicurio.datasource.jdbc.initial-size": 2,
            "apicurio.datasource.jdbc.min-size": 2,
            "apicurio.datasource.jdbc.max-size": 20,
            "apicurio.storage.snapshot.location": tmp,
            "apicurio.import.work-dir": tmp,
            "java.io.tmpdir": tmp,
        }
        command = [
            str(java),
            *HEAP_OPTS,
            *(f"-D{key}={value}" for key, value in properties.items()),
            "-jar",
            str(home / "quarkus-run.jar"),
        ]
        return command, home, {}
