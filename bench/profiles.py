"""The profiles: backlog drain, rate-limited latency, and the memory soak.

Each measures one arm at a time on fresh topics and a fresh database, while
the sampler watches the stack's services and the arm's own processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import stats
from bench.arms import Arm
from bench.events import Record
from bench.kafka import produce
from bench.measure import Sampler

log = logging.getLogger(__name__)

POLL_S = 0.1


class ProfileTimeout(RuntimeError):
    """An arm did not finish the events in time."""


@dataclass
class ArmResult:
    """One arm in one profile and repetition."""

    arm: str
    profile: str
    repetition: int
    events: int
    seconds: float
    eps: float
    cpu_s_per_1k: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    rate_eps: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _watch(sampler: Sampler, stack: dict[str, int], workers: dict[str, int]) -> None:
    for name, pid in stack.items():
        sampler.watch(name, pid)
    for name, pid in workers.items():
        sampler.watch(name, pid, from_birth=True)


def _usage(sampler: Sampler, events: int) -> tuple[dict, dict]:
    usage = sampler.stop()
    cpu = {n: stats.cpu_per_thousand(u.cpu_seconds, events) for n, u in usage.items()}
    rss = {n: u.peak_rss_kib / 1024 for n, u in usage.items()}
    return cpu, rss


def wait_for(arm: Arm, target: int, timeout_s: float) -> int:
    """Poll the arm until it has finished ``target`` events; return the count."""
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        arm.check_alive()
        done = arm.progress()
        if done >= target:
            return done
        time.sleep(POLL_S)
    raise ProfileTimeout(
        f"{arm.name} arm finished {done} of {target} events in {timeout_s:.0f} s"
    )


def drain(
    arm: Arm,
    records: Sequence[Record],
    stack: dict[str, int],
    repetition: int,
    timeout_s: float,
) -> ArmResult:
    """Preload the raw topic, start the arm, time until every event is done."""
    arm.prepare()
    produce(arm.ctx.kafka, arm.topics.raw, records)
    sampler = Sampler()
    try:
        started = time.monotonic()
        workers = arm.start()
        _watch(sampler, stack, workers)
        sampler.start()
        wait_for(arm, len(records), timeout_s)
        seconds = time.monotonic() - started
        sampler.sample()
    finally:
        arm.stop()
        arm.close()
        sampler.stop()
    cpu, rss = _usage(sampler, len(records))
    return ArmResult(
        arm.name,
        "drain",
        repetition,
        len(records),
        seconds,
        stats.events_per_second(len(records), seconds),
        cpu,
        rss,
    )


def rate_limited(
    arm: Arm,
    records: Sequence[Record],
    stack: dict[str, int],
    rate_eps: float,
    duration_s: float,
    timeout_s: float,
    *,
    repetition: int = 1,
    profile: str = "latency",
    keep_series: bool = False,
) -> tuple[ArmResult, Sampler]:
    """Start the arm, produce at ``rate_eps`` for ``duration_s``, read latencies."""
    arm.prepare()
    sampler = Sampler(interval_s=2.0 if keep_series else 0.5, keep_series=keep_series)
    try:
        workers = arm.start()
        _watch(sampler, stack, workers)
        sampler.start()
        wait_ready(arm)
        produced, seconds = produce(
            arm.ctx.kafka,
            arm.topics.raw,
            records,
            rate_eps=rate_eps,
            duration_s=duration_s,
        )
        wait_for(arm, produced, timeout_s)
        sampler.sample()
    finally:
        arm.stop()
    latencies = arm.latencies_ms()
    arm.close()
    cpu, rss = _usage(sampler, produced)
    result = ArmResult(
        arm.name,
        profile,
        repetition,
        produced,
        seconds,
        stats.events_per_second(produced, seconds),
        cpu,
        rss,
        latency_ms={
            "p50": stats.percentile(latencies, 50),
            "p99": stats.percentile(latencies, 99),
            "p99.9": stats.percentile(latencies, 99.9),
            "max": max(latencies) if latencies else stats.NAN,
        },
        rate_eps=rate_eps,
    )
    return result, sampler


READY_WAIT_S = 20.0


def wait_ready(arm: Arm) -> None:
    """Give the arm's workers time to join their groups before the clock runs.

    Latency counts from produce time, so records produced while a consumer is
    still starting would measure its start-up. Waits until each worker has
    used no CPU for a moment (start-up done), at most ``READY_WAIT_S``.
    """
    from bench.measure import cpu_seconds

    deadline = time.monotonic() + READY_WAIT_S
    previous: dict[int, float | None] = {}
    time.sleep(2.0)
    while time.monotonic() < deadline:
        arm.check_alive()
        now = {p.pid: cpu_seconds(p.pid) for p in arm.workers.values()}
        idle = previous and all(
            now[pid] is not None
            and previous.get(pid) is not None
            and now[pid] - previous[pid] < 0.1  # type: ignore[operator]
            for pid in now
        )
        if idle:
            return
        previous = now
        time.sleep(1.0)
