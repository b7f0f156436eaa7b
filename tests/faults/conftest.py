"""Fixtures of the fault tests: real workers, real signals, and the audit.

A fault test starts the pipeline's workers as separate processes
(``booking-events process`` / ``sink``), replays real bookings, hurts a process
with a real signal (SIGKILL, SIGSTOP/SIGCONT), waits for the pipeline to drain
and ends with :func:`assert_audit_clean`. Typical use::

    def test_sink_killed(fault_topics, start_worker, bookings, replay,
                         wait_drained, stop_workers, assert_audit_clean):
        processor = start_worker("processor", ["process"])
        sink = start_worker("sink", ["sink"])
        events = bookings(100)
        replay(events).join()
        sink.wait_for_log("inserted", timeout_s=60)
        sink.kill()
        sink.restart()
        wait_drained(stored=len(events))
        stop_workers(processor, sink)
        assert_audit_clean()

The helpers are fixtures because a conftest is not importable: ``bookings``
(events of a slice of real bookings), ``wait_until``, ``stop_workers``.

Every test gets its own topics, ClickHouse database, processor app id (so its
own changelog topic) and sink consumer group; ``fault_env`` holds them and
puts them in this process's environment, which the workers inherit.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from booking_events.audit import AuditReport, audit
from booking_events.pipeline import Worker
from booking_events.pipeline import start_worker as start_pipeline_worker
from booking_events.reconcile import TABLE, read_topic
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    RegistrySettings,
    TopicSettings,
)
from booking_events.topics import ensure_topics
from producers import BookingEventProducer
from producers.hotel_rates import Booking, events_in_time_order, load_bookings
from schemas import BookingEvent

POLL_S = 0.5


# Plain helpers: also usable outside fixtures.


def wait_until(
    condition: Callable[[], Any], timeout_s: float, what: str, poll_s: float = POLL_S
) -> Any:
    """Return the first truthy value of ``condition()``; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f} s waiting for {what}"
            )
        time.sleep(poll_s)


@functools.cache
def _all_bookings() -> tuple[Booking, ...]:
    return tuple(load_bookings())


def booking_events(count: int, start: int = 0) -> list[BookingEvent]:
    """The events of ``count`` real bookings from ``start``, in time order."""
    return events_in_time_order(_all_bookings()[start : start + count])


WORKER_LOG_LINES = 25
"""How much of each worker's log a failed fault test shows: its last lines."""

NOTABLE = re.compile(r" (WARNING|ERROR|CRITICAL) ")


def worker_log_digest(log: Path, tail: int = WORKER_LOG_LINES) -> str:
    """The warnings and errors of a worker log, then its last ``tail`` lines.

    CI keeps only the end of the output, so a failed fault test carries this
    digest instead of whole logs: enough to tell a hung recovery from a crash.
    """
    lines = log.read_text(errors="replace").splitlines()
    notable = [line[:300] for line in lines if NOTABLE.search(line)][-tail:]
    last = [line[:300] for line in lines[-tail:]]
    header = f"-- {len(notable)} warning/error lines (last {tail}):"
    return "\n".join([header, *notable, f"-- last {len(last)} lines:", *last])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """A failed fault test reports its workers' logs (see ``worker_log_digest``)."""
    report = yield
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and tmp_path is not None:
        for log in sorted((tmp_path / "logs").glob("*.log")):
            report.sections.append((f"worker log {log.name}", worker_log_digest(log)))
    return report


@dataclass
class FaultWorker:
    """A pipeline worker that a test may kill, pause, resume and restart.

    ``log_path`` collects the output of every incarnation; ``wait_for_log``
    only looks at what was written since the last (re)start.
    """

    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    worker: Worker | None = None
    _log_start: int = 0
    restarts: int = field(default=0)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.worker is not None, f"{self.name} was never started"
        return self.worker.process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> FaultWorker:
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with pytest.MonkeyPatch.context() as mp:
            for key, value in self.env.items():
                mp.setenv(key, value)
            self.worker = start_pipeline_worker(self.name, self.args, self.log_dir)
        return self

    def restart(self) -> FaultWorker:
        """Start it again (after a kill or an exit), same arguments and env."""
        assert not self.alive(), f"{self.name} still runs; kill or stop it first"
        self.restarts += 1
        return self.start()

    def alive(self) -> bool:
        return self.worker is not None and self.process.poll() is None

    def send(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> int:
        """SIGKILL: no flush, no commit, no goodbye. Returns the exit code."""
        self.send(signal.SIGKILL)
        return self.process.wait(30)

    def pause(self) -> None:
        """SIGSTOP: the process freezes (sessions expire, leases lapse)."""
        self.send(signal.SIGSTOP)

    def resume(self) -> None:
        self.send(signal.SIGCONT)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait (SIGKILL after ``timeout_s``); returns the exit code."""
        if self.worker is None:
            return 0
        if self.alive():
            self.resume()
        return self.worker.stop(timeout_s)

    def log_text(self) -> str:
        """What this incarnation wrote so far."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as stream:
            stream.seek(self._log_start)
            return stream.read().decode("utf-8", "replace")

    def wait_for_log(self, pattern: str, timeout_s: float = 60.0) -> re.Match[str]:
        """Wait for a line matching regex ``pattern``; fail if the process exits."""
        regex = re.compile(pattern)

        def seen() -> re.Match[str] | None:
            match = regex.search(self.log_text())
            if match is None and not self.alive():
                raise AssertionError(
                    f"{self.name} exited ({self.process.returncode}) before logging"
                    f" {pattern!r}:\n{self.log_text()[-3000:]}"
                )
            return match

        return wait_until(seen, timeout_s, f"{pattern!r} in the {self.name} log")


class Replay:
    """Emits events through the real producer in a background thread."""

    def __init__(self, events: Sequence[BookingEvent], rate_eps: float | None) -> None:
        self.events = list(events)
        self.rate_eps = rate_eps
        self.emitted = 0
        self.error: BaseException | None = None
        self.producer = BookingEventProducer(handle_sigterm=False)
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)

    @property
    def delivered(self) -> int:
        """Events Kafka acknowledged so far."""
        return self.producer.delivered

    def start(self) -> Replay:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        try:
            with self.producer:
                for n, event in enumerate(self.events, start=1):
                    self.producer.emit(event)
                    self.emitted = n
                    if self.rate_eps:
                        ahead = n / self.rate_eps - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
        except BaseException as exc:
            self.error = exc

    def wait_emitted(self, count: int, timeout_s: float = 60.0) -> None:
        wait_until(
            lambda: self.emitted >= count or self.error or not self._thread.is_alive(),
            timeout_s,
            f"{count} events emitted",
            poll_s=0.05,
        )
        self._raise()

    def join(self, timeout_s: float = 120.0) -> int:
        """Wait until every event is flushed; return how many were emitted."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"replay not done in {timeout_s:.0f} s"
        self._raise()
        return self.emitted

    def _raise(self) -> None:
        if self.error is not None:
            raise AssertionError(f"replay failed: {self.error}") from self.error


def stored_event_ids(clickhouse: ClickHouseSettings) -> int:
    """Distinct event ids in the table (0 before the sink created it)."""
    client = clickhouse_connect.get_client(**clickhouse.client_kwargs())
    table = f"`{clickhouse.database}`.`{TABLE}`"
    try:
        if not int(str(client.command(f"EXISTS TABLE {table}"))):
            return 0
        return int(str(client.command(f"SELECT uniqExact(event_id) FROM {table}")))
    finally:
        client.close()


def dead_letter_records(kafka: KafkaSettings, topic: str) -> int:
    """Committed records of the dead-letter topic, counted one by one."""
    return sum(1 for _ in read_topic(kafka, topic, timeout_s=30))


def stop_workers(*workers: FaultWorker, timeout_s: float = 60.0) -> None:
    """SIGTERM all of them at once and wait; they flush and commit on the way."""
    for worker in workers:
        if worker.alive():
            worker.resume()
            worker.send(signal.SIGTERM)
    for worker in workers:
        worker.stop(timeout_s)


# Fixtures.


@pytest.fixture(name="bookings")
def bookings_fixture() -> Callable[..., list[BookingEvent]]:
    """``bookings(count, start=0)``: events of real bookings, in time order."""
    return booking_events


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """``wait_until(condition, timeout_s, what)``: first truthy value or fail."""
    return wait_until


@pytest.fixture(name="stop_workers")
def stop_workers_fixture() -> Callable[..., None]:
    """``stop_workers(*workers)``: SIGTERM all at once; they flush and commit."""
    return stop_workers


@pytest.fixture
def fault_env(
    stack_env: dict[str, str],
    clickhouse_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """This test's names (topics, database, app id, group), in os.environ too.

    Change Kafka or topic layout for the test with ``monkeypatch.setenv``
    before creating topics; the workers inherit the environment at start.
    """
    prefix = f"f{uuid.uuid4().hex[:10]}"
    names = {
        "BOOKING_EVENTS_TOPIC_RAW": f"{prefix}.raw",
        "BOOKING_EVENTS_TOPIC_VALIDATED": f"{prefix}.validated",
        "BOOKING_EVENTS_TOPIC_DEAD_LETTER": f"{prefix}.dead-letter",
        "BOOKING_EVENTS_PROCESSOR_APP_ID": f"{prefix}-processor",
        "BOOKING_EVENTS_PROCESSOR_DATA_DIR": str(tmp_path / "processor"),
        "BOOKING_EVENTS_SINK_GROUP_ID": f"{prefix}-sink",
    }
    for key, value in names.items():
        monkeypatch.setenv(key, value)
    return {
        **names,
        "BOOKING_EVENTS_CLICKHOUSE_DATABASE": clickhouse_database,
    }


@pytest.fixture
def fault_topics(fault_env: dict[str, str]) -> TopicSettings:
    """The test's topics, created on the Kafka the environment names now."""
    topics = TopicSettings()
    ensure_topics(KafkaSettings(), topics)
    return topics


@pytest.fixture
def start_worker(
    fault_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., FaultWorker]]:
    """Factory: ``start_worker(name, args, **env)`` starts ``booking-events args``.

    Extra keyword arguments are environment variables of that worker only
    (``BOOKING_EVENTS_SINK_BATCH_MAX_ROWS="50"``). Every worker still running
    at the end of the test is stopped (SIGCONT, SIGTERM, SIGKILL after 30 s).
    """
    started: list[FaultWorker] = []

    def start(name: str, args: Sequence[str], **env: str) -> FaultWorker:
        worker = FaultWorker(name, list(args), dict(env), tmp_path / "logs")
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        worker.stop(timeout_s=30)


@pytest.fixture
def replay(fault_env: dict[str, str]) -> Iterator[Callable[..., Replay]]:
    """Factory: ``replay(events, rate_eps=None)`` starts emitting in background.

    ``.join()`` waits for the flush; ``.wait_emitted(n)`` for progress.
    """
    started: list[Replay] = []

    def start(events: Sequence[BookingEvent], rate_eps: float | None = None) -> Replay:
        run = Replay(events, rate_eps).start()
        started.append(run)
        return run

    yield start
    for run in started:
        run.join(60)


@pytest.fixture
def wait_drained(fault_env: dict[str, str]) -> Callable[..., None]:
    """``wait_drained(stored=n, dead_lettered=m, timeout_s=120, workers=())``.

    Waits until ClickHouse holds ``n`` distinct events and the dead-letter
    topic ``m`` records. Fails at once when one of ``workers`` has exited (a
    test that kills a worker on purpose leaves it out, or restarts it first).
    """

    def wait(
        stored: int,
        dead_lettered: int = 0,
        timeout_s: float = 120.0,
        workers: Sequence[FaultWorker] = (),
    ) -> None:
        kafka, clickhouse = KafkaSettings(), ClickHouseSettings()
        topics = TopicSettings()

        def done() -> bool:
            for worker in workers:
                if not worker.alive():
                    raise AssertionError(
                        f"{worker.name} exited ({worker.process.returncode}) before"
                        f" the pipeline drained:\n{worker.log_text()[-3000:]}"
                    )
            return stored_event_ids(clickhouse) >= stored

        wait_until(done, timeout_s, f"{stored} events stored in {clickhouse.database}")
        if dead_lettered:
            wait_until(
                lambda: dead_letter_records(kafka, topics.dead_letter) >= dead_lettered,
                timeout_s,
                f"{dead_lettered} dead-letter records",
            )

    return wait


@pytest.fixture
def assert_audit_clean(fault_env: dict[str, str]) -> Callable[..., AuditReport]:
    """``assert_audit_clean()`` runs the audit; fails with its summary if not clean."""

    def check(**ranges: Any) -> AuditReport:
        report = audit(
            KafkaSettings(),
            RegistrySettings(),
            ClickHouseSettings(),
            TopicSettings(),
            **ranges,
        )
        print(report.summary())
        if not report.clean:
            named = "\n".join(report.offenders(20))
            raise AssertionError(f"audit not clean:\n{report.summary()}\n{named}")
        return report

    return check
