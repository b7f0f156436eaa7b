"""The main job: the whole pipeline on the real data set, end to end.

Steps: start the local stack (unless endpoints are given), create the topics,
start one processor and one sink as separate processes, replay the bookings,
wait until every event is stored or dead-lettered, stop the workers, and
reconcile Kafka with ClickHouse.

With ``BOOKING_EVENTS_METRICS_PORT`` set to P, the job serves its own metrics
(the producer's) on P, its processor on P+1 and its sink on P+2.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import clickhouse_connect

from booking_events import schema_registry
from booking_events.exceptions import BookingEventsError
from booking_events.reconcile import TABLE, Reconciliation, read_topic, reconcile
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    MetricsSettings,
    RegistrySettings,
    TopicSettings,
)
from booking_events.status import consumer_lag
from booking_events.topics import ensure_topics
from processors.config import ProcessorSettings
from producers import BookingEventProducer
from producers.hotel_rates import events_in_time_order, load_bookings
from producers.replay import replay
from schemas import EVENT_SCHEMA

log = logging.getLogger(__name__)

# The drain also ends this long after the last stored row once the processor
# has caught up: the sink flushes every BOOKING_EVENTS_SINK_BATCH_MAX_MS.
DRAIN_IDLE_S = 15.0


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
        self.terminate()
        return self.wait(timeout_s)

    def terminate(self) -> None:
        """Ask the worker to finish (SIGTERM): it commits what it did and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> int:
        """Wait for the exit code; kill the worker if it takes longer."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "worker did not stop in %.0f s, killing it",
                timeout_s,
                extra={"worker": self.name, "pid": self.process.pid},
            )
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def stop_workers(workers: list[Worker], timeout_s: float = 60.0) -> dict[str, int]:
    """Stop every worker; return the exit code of each by name.

    All get SIGTERM first so that they shut down side by side. A second
    interrupt while waiting kills the ones still running rather than leaving
    them behind, then propagates.
    """
    for worker in workers:
        worker.terminate()
    codes = {}
    try:
        for worker in workers:
            codes[worker.name] = worker.wait(timeout_s)
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
    for worker in workers:
        code = codes[worker.name]
        if code != 0:
            log.error(
                "worker exited with an error",
                extra={
                    "worker": worker.name,
                    "exit_code": code,
                    "log": str(worker.log_path),
                },
            )
    return codes


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so the workers get stopped."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


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


def start_worker(
    name: str,
    args: list[str],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
) -> Worker:
    """Start ``booking-events <args>`` with this process's environment.

    ``env`` overrides some of its variables for this worker only.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "booking_events", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    log.info(
        "worker started",
        extra={"worker": name, "pid": process.pid, "log": str(log_path)},
    )
    return Worker(name, process, log_path)


def worker_metrics_env(offset: int) -> dict[str, str]:
    """The metrics port of a worker of this job: the job's port plus ``offset``.

    Processes on one host need distinct ports; with the endpoint off (port
    0) the workers serve none either.
    """
    port = MetricsSettings().port
    return {"BOOKING_EVENTS_METRICS_PORT": str(port + offset if port else 0)}


def stored_rows(clickhouse: ClickHouseSettings) -> int:
    client = clickhouse_connect.get_client(**clickhouse.client_kwargs())
    try:
        table = f"{clickhouse.database}.{TABLE}"
        if not client.query(f"EXISTS TABLE {table}").result_rows[0][0]:
            return 0
        return int(client.query(f"SELECT count() FROM {table}").result_rows[0][0])
    finally:
        client.close()


def processed_and_stored(
    kafka: KafkaSettings, clickhouse: ClickHouseSettings, topics: TopicSettings
) -> int:
    """Events the pipeline has finished with: rows stored plus dead letters.

    Dead letters are read record by record: under exactly-once the processor
    writes them in transactions, and watermarks would count the markers too.
    """
    dead_letters = sum(1 for _ in read_topic(kafka, topics.dead_letter))
    return stored_rows(clickhouse) + dead_letters


def processor_lag(kafka: KafkaSettings, topics: TopicSettings) -> int:
    """Raw records the processor group has not committed yet."""
    group = ProcessorSettings().app_id
    return sum(lag.lag for lag in consumer_lag(kafka, {group: topics.raw}))


def wait_drained(
    kafka: KafkaSettings,
    clickhouse: ClickHouseSettings,
    topics: TopicSettings,
    produced: int,
    workers: list[Worker],
    timeout_s: float,
    *,
    baseline: int = 0,
    idle_s: float | None = None,
) -> None:
    """Wait until stored + dead-lettered reaches ``baseline + produced``.

    ``baseline`` is what was stored and dead-lettered before this run's
    events were produced, so that data kept from an earlier run does not count
    as this run's. With ``idle_s``, the wait also ends once the processor has
    committed every raw record and nothing was stored or dead-lettered for
    that long: events produced again with ids already stored are not stored
    twice, so the count may never reach the target.

    Raises:
        PipelineError: A worker exited; the message points to its log.
    """
    deadline = time.monotonic() + timeout_s
    target = baseline + produced
    last_done, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                raise PipelineError(
                    f"the {worker.name} exited with code {worker.process.returncode}"
                    f" before the events were drained; see {worker.log_path}"
                )
        done = processed_and_stored(kafka, clickhouse, topics)
        if done >= target:
            return
        now = time.monotonic()
        if done != last_done:
            last_done, last_change = done, now
        elif (
            idle_s is not None
            and now - last_change >= idle_s
            and processor_lag(kafka, topics) == 0
        ):
            log.info(
                "processor caught up and nothing stored for %.0f s: drained",
                idle_s,
                extra={"stored_or_dead_lettered": done - baseline, "target": produced},
            )
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
    # Subjects get an explicit compatibility level before the first event, as
    # `booking-events schemas register` would give them in production.
    schema_registry.register(
        schema_registry.client(registry),
        EVENT_SCHEMA,
        schema_registry.subjects(topics),
    )
    bookings = load_bookings()[:bookings_limit]
    events = events_in_time_order(bookings)
    log.info("derived events", extra={"events": len(events), "bookings": len(bookings)})

    # SIGTERM (an operator's `kill`, a service manager) unwinds like Ctrl-C,
    # so the finally below stops the workers instead of orphaning them.
    previous_sigterm = None
    if threading.current_thread() is threading.main_thread():
        previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    workers: list[Worker] = []
    peaks: dict[str, float] = {}
    try:
        logs = state_dir / "logs"
        workers.append(
            start_worker("processor", ["process"], logs, worker_metrics_env(1))
        )
        workers.append(start_worker("sink", ["sink"], logs, worker_metrics_env(2)))

        baseline = processed_and_stored(kafka, clickhouse, topics)
        t_replay = time.monotonic()
        with BookingEventProducer(handle_sigterm=False) as producer:
            produced = replay(producer, events, progress=progress)
        timings["replay"] = time.monotonic() - t_replay

        wait_drained(
            kafka,
            clickhouse,
            topics,
            produced,
            workers,
            drain_timeout_s,
            baseline=baseline,
            idle_s=DRAIN_IDLE_S,
        )
        timings["replay_to_drained"] = time.monotonic() - t_replay
        for worker in workers:
            peak = worker.peak_rss_mib()
            if peak is not None:
                peaks[worker.name] = peak
    finally:
        try:
            stop_workers(workers)
        finally:
            if previous_sigterm is not None:
                signal.signal(signal.SIGTERM, previous_sigterm)

    peaks["replay"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = reconcile(kafka, registry, clickhouse, topics)
    timings["total"] = time.monotonic() - t0
    return RunResult(result, timings, peaks)
