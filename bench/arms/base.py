"""What every arm does: its topics and database, its worker processes, progress."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import clickhouse
from bench.kafka import ArmTopics, create_topics
from booking_events.settings import ClickHouseSettings, KafkaSettings, RegistrySettings

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 60.0


class ArmError(RuntimeError):
    """An arm's worker failed; the message points to its log."""


@dataclass(frozen=True)
class Context:
    """What the arms share in one benchmark run."""

    kafka: KafkaSettings
    registry: RegistrySettings
    clickhouse: ClickHouseSettings
    env: dict[str, str]
    """Environment of the workers: the stack's endpoints, nothing else added."""
    work_dir: Path
    """Logs, state directories and result files of the workers."""
    quix_python: Path | None
    """Interpreter of the virtualenv that has quixstreams; None: not available."""


class Arm:
    """One contender. Subclasses name their workers and how progress is read."""

    name = "arm"
    writes_clickhouse = True

    def __init__(self, ctx: Context, run_id: str) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.topics = ArmTopics.named(run_id, self.name)
        self.database = clickhouse.database_for(run_id, self.name)
        self.dir = ctx.work_dir / run_id / self.name
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self._ch: Any = None

    def available(self) -> str | None:
        """None when the arm can run; otherwise why not."""
        return None

    def prepare(self) -> None:
        """Create the arm's topics and an empty database, before any timing."""
        self.dir.mkdir(parents=True, exist_ok=True)
        create_topics(self.ctx.kafka, self.topics)
        if self.writes_clickhouse:
            clickhouse.drop_database(self.ch, self.database)

    @property
    def ch(self) -> Any:
        if self._ch is None:
            self._ch = clickhouse.client(self.ctx.clickhouse)
        return self._ch

    def commands(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        """Worker name -> (argv, extra environment)."""
        raise NotImplementedError

    def start(self) -> dict[str, int]:
        """Start the workers; return their pids by name."""
        for name, (argv, extra_env) in self.commands().items():
            log_path = self.dir / f"{name}.log"
            with log_path.open("ab") as out:
                self.workers[name] = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**self.ctx.env, **python_path_env(), **extra_env},
                    cwd=self.dir,
                )
            log.debug("worker started", extra={"arm": self.name, "worker": name})
        return {name: p.pid for name, p in self.workers.items()}

    def check_alive(self) -> None:
        for name, process in self.workers.items():
            if process.poll() is not None:
                raise ArmError(
                    f"{self.name} arm: worker {name} exited with code"
                    f" {process.returncode}; see {self.dir / (name + '.log')}"
                )

    def progress(self) -> int:
        """Events this arm has finished with (stored rows, or consumed records)."""
        return clickhouse.stored_rows(self.ch, self.database)

    def latencies_ms(self) -> list[float]:
        """Produce-to-queryable latency of every event, after :meth:`stop`."""
        return clickhouse.latencies_ms(self.ch, self.database)

    def stop(self) -> dict[str, int]:
        """SIGTERM every worker, wait, kill the ones that do not stop."""
        for process in self.workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.workers.items():
            try:
                codes[name] = process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning(
                    "worker did not stop, killing it",
                    extra={"arm": self.name, "worker": name},
                )
                process.kill()
                codes[name] = process.wait()
        return codes

    def kill(self) -> None:
        for process in self.workers.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    def close(self) -> None:
        if self._ch is not None:
            self._ch.close()
            self._ch = None


def bench_python() -> list[str]:
    """argv prefix running a module with this interpreter."""
    return [sys.executable, "-m"]


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def python_path_env() -> dict[str, str]:
    """PYTHONPATH that makes the project importable from any interpreter."""
    current = os.environ.get("PYTHONPATH")
    root = str(project_root())
    return {"PYTHONPATH": root if not current else f"{root}:{current}"}
