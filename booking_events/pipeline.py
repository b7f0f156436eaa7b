"""The main job: the whole pipeline on the real data set, end to end.

Steps: start the local stack (unless endpoints are given), create the topics,
start one processor and one sink as separate processes, replay the bookings,
wait until every event is stored or dead-lettered, stop the workers, and
reconcile Kafka with ClickHouse.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import clickhouse_connect
from confluent_kafka import Consumer, TopicPartition

from booking_events.exceptions import BookingEventsError
from booking_events.reconcile import TABLE, Reconciliation, reconcile
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from booking_events.topics import ensure_topics
from producers import BookingEventProducer
from producers.hotel_rates import events_in_time_order, load_bookings
from producers.replay import replay

log = logging.getLogger(__name__)


class PipelineError(BookingEventsError):
    """A stage of the main job failed; the message names it."""


@dataclass
class Worker:
    """A pipeline stage running as its own process."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def peak_rss_mib(self) -> float | None:
        return peak_rss_mib(self.process.pid)

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "worker did not stop in %.0f s, killing name=%s", timeout_s, self.name
            )
            self.process.kill()
            return self.process.wait()


@dataclass
class RunResult:
    """What the main job measured."""

    reconciliation: Reconciliation
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)


def peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory of a live process (VmHWM), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_worker(name: str, args: list[str], log_dir: Path) -> Worker:
    """Start ``booking-events <args>`` with this process's environment."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "booking_events", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    log.info("worker started name=%s pid=%s log=%s", name, process.pid, log_path)
    return Worker(name, process, log_path)


def topic_size(kafka: KafkaSettings, topic: str) -> int:
    """Records between low and high watermarks: a progress gauge, not an audit."""
    consumer = Consumer({**kafka.librdkafka(), "group.id": "booking-events-gauge"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10, cached=False
            )
            total += high - low
        return total
    finally:
        consumer.close()


def stored_rows(clickhouse: ClickHouseSettings) -> int:
    client = clickhouse_connect.get_client(**clickhouse.client_kwargs())
    try:
        exists = client.command(f"EXISTS TABLE {clickhouse.database}.{TABLE}")
        if not int(exists):
            return 0
        return int(client.command(f"SELECT count() FROM {clickhouse.database}.{TABLE}"))
    finally:
        client.close()


def wait_drained(
    kafka: KafkaSettings,
    clickhouse: ClickHouseSettings,
    topics: TopicSettings,
    produced: int,
    workers: list[Worker],
    timeout_s: float,
) -> None:
    """Wait until stored + dead-lettered reaches ``produced``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                raise PipelineError(
                    f"the {worker.name} exited with code {worker.process.returncode};"
                    f" see {worker.log_path}"
                )
        done = stored_rows(clickhouse) + topic_size(kafka, topics.dead_letter)
        if done >= produced:
            return
        time.sleep(1.0)
    log.warning(
        "not drained after %.0f s: the report below shows what is missing", timeout_s
    )


def run_pipeline(
    state_dir: Path,
    *,
    bookings_limit: int | None = None,
    drain_timeout_s: float = 600.0,
    progress: bool = True,
) -> RunResult:
    """Run processor and sink, replay the bookings, and reconcile.

    Endpoints come from the ``BOOKING_EVENTS_*`` environment, so the caller
    decides whether they are a local stack or a real cluster.
    """
    kafka, registry = KafkaSettings(), RegistrySettings()
    clickhouse, topics = ClickHouseSettings(), TopicSettings()
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    ensure_topics(kafka, topics)
    bookings = load_bookings()[:bookings_limit]
    events = events_in_time_order(bookings)
    log.info("derived events=%s from bookings=%s", len(events), len(bookings))

    workers = [
        start_worker("processor", ["process"], state_dir / "logs"),
        start_worker("sink", ["sink"], state_dir / "logs"),
    ]
    peaks: dict[str, float] = {}
    try:
        t_replay = time.monotonic()
        with BookingEventProducer(handle_sigterm=False) as producer:
            produced = replay(producer, events, progress=progress)
        timings["replay"] = time.monotonic() - t_replay

        wait_drained(kafka, clickhouse, topics, produced, workers, drain_timeout_s)
        timings["replay_to_drained"] = time.monotonic() - t_replay
        for worker in workers:
            peak = worker.peak_rss_mib()
            if peak is not None:
                peaks[worker.name] = peak
    finally:
        for worker in workers:
            code = worker.stop()
            if code != 0:
                log.error("worker exited with code=%s name=%s", code, worker.name)

    peaks["replay"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = reconcile(kafka, registry, clickhouse, topics)
    timings["total"] = time.monotonic() - t0
    return RunResult(result, timings, peaks)
