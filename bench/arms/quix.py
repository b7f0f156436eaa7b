"""Quix Streams: the same validation and routing, and a small ClickHouse sink.

The application (``bench.arms.quix_app``) runs in its own virtualenv, since
quixstreams 3.28 requires confluent-kafka < 2.13 and this project >= 2.16.
``bench/run`` creates that virtualenv on first use (``--quix-venv``).
"""

from __future__ import annotations

from bench.arms.base import Arm, python_path_env
from bench.arms.naive import create_table


class QuixArm(Arm):
    name = "quix"

    def available(self) -> str | None:
        if self.ctx.quix_python is None or not self.ctx.quix_python.exists():
            return "no virtualenv with quixstreams (see --quix-venv)"
        return None

    def prepare(self) -> None:
        super().prepare()
        create_table(self.ch, self.database)

    def commands(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        assert self.ctx.quix_python is not None
        argv = [
            str(self.ctx.quix_python),
            "-m",
            "bench.arms.quix_app",
            "--raw",
            self.topics.raw,
            "--validated",
            self.topics.validated,
            "--dead-letter",
            self.topics.dead_letter,
            "--group",
            f"bench-{self.run_id}-quix",
            "--database",
            self.database,
            "--state-dir",
            str(self.dir / "quix-state"),
        ]
        return {"app": (argv, python_path_env())}
