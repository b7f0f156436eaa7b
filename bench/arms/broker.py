"""Broker ceiling: confluent-kafka consuming the encoded bytes, no processing.

The driver fills the raw topic like every other arm's; the worker only reads
it. Done means every record consumed (nothing is written to ClickHouse). In
the latency profile the worker takes receive time minus the record's produce
timestamp per record.

Worker: ``python -m bench.arms.broker --topic T --group G --progress FILE
[--latency FILE]``; SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from array import array
from pathlib import Path
from types import FrameType

from confluent_kafka import Consumer

from bench.arms.base import Arm, bench_python

PROGRESS_INTERVAL_S = 0.1


class BrokerArm(Arm):
    name = "broker"
    writes_clickhouse = False

    def commands(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        argv = [
            *bench_python(),
            "bench.arms.broker",
            "--bootstrap",
            self.ctx.kafka.bootstrap_servers,
            "--topic",
            self.topics.raw,
            "--group",
            f"bench-{self.run_id}-broker",
            "--progress",
            str(self.dir / "progress.json"),
            "--latency",
            str(self.dir / "latency.json"),
        ]
        return {"consumer": (argv, {})}

    def progress(self) -> int:
        try:
            return int(json.loads((self.dir / "progress.json").read_text())["count"])
        except (OSError, ValueError, KeyError):
            return 0

    def latencies_ms(self) -> list[float]:
        try:
            return json.loads((self.dir / "latency.json").read_text())
        except (OSError, ValueError):
            return []


def _write_atomic(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.arms.broker")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--progress", type=Path, required=True)
    parser.add_argument("--latency", type=Path, required=True)
    args = parser.parse_args(argv)

    stopping = False

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([args.topic])
    count = 0
    latencies = array("d")
    next_progress = 0.0
    while not stopping:
        messages = consumer.consume(num_messages=10_000, timeout=0.1)
        now_ms = time.time() * 1000
        for msg in messages:
            if msg.error() is None:
                count += 1
                latencies.append(now_ms - msg.timestamp()[1])
        if time.monotonic() >= next_progress:
            _write_atomic(args.progress, {"count": count})
            next_progress = time.monotonic() + PROGRESS_INTERVAL_S
    _write_atomic(args.progress, {"count": count})
    _write_atomic(args.latency, list(latencies))
    consumer.close()


if __name__ == "__main__":
    main()
