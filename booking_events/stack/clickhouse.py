"""ClickHouse of the stack: :mod:`clickhouse_server` run as a detached process."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import booking_events
from booking_events.stack.config import LOOPBACK
from booking_events.stack.exceptions import CHDB_INSTALL_HINT, MissingToolError
from booking_events.stack.process import Service

log = logging.getLogger(__name__)


class ClickHouseService(Service):
    """A ClickHouse HTTP and native TCP server over ``<state>/data/clickhouse``."""

    name = "clickhouse"

    def __init__(self, state_dir: Path, http_port: int, tcp_port: int) -> None:
        super().__init__(state_dir)
        self.http_port = http_port
        self.tcp_port = tcp_port
        self.data_dir = state_dir / "data" / "clickhouse"
        self.work_dir = state_dir / "conf" / "clickhouse"

    @property
    def ports(self) -> Mapping[str, int]:
        return {"clickhouse_http": self.http_port, "clickhouse_tcp": self.tcp_port}

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def data_dirs(self) -> Sequence[Path]:
        return [self.data_dir]

    def check_tools(self) -> None:
        if importlib.util.find_spec("chdb") is None:
            raise MissingToolError(
                "ClickHouse needs chdb-core, which is not installed: "
                f"{CHDB_INSTALL_HINT}"
            )

    def install(self) -> None:
        self.check_tools()  # a Python package: pip installs it, not the stack

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/ping", timeout=2) as reply:
                return reply.read().strip() == b"Ok."
        except (urllib.error.URLError, OSError):
            return False

    def _prepare(self) -> tuple[list[str], Path, dict[str, str]]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "booking_events.stack.clickhouse_server",
            "--path",
            str(self.data_dir),
            "--http-port",
            str(self.http_port),
            "--tcp-port",
            str(self.tcp_port),
        ]
        # Let the child import this very package even when it is not installed.
        source_root = str(Path(booking_events.__file__).resolve().parents[1])
        python_path = os.pathsep.join(
            p for p in (source_root, os.environ.get("PYTHONPATH")) if p
        )
        return command, self.work_dir, {"PYTHONPATH": python_path}
