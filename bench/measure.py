"""CPU and memory of processes, sampled from /proc while an arm runs.

Each process is named (``kafka``, ``registry``, ``clickhouse``, ``processor``,
``sink``, ...). CPU is the process's user + system time, threads included;
memory is its resident set (VmRSS) sampled every ``interval_s``, and the
kernel's own peak (VmHWM) where it is higher and the process is still alive.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return parse_cpu_ticks(stat) / CLOCK_TICKS


def parse_cpu_ticks(stat: str) -> int:
    """utime + stime (clock ticks) from the text of ``/proc/<pid>/stat``.

    The command name (field 2) may hold spaces and parentheses, so fields are
    counted from the last closing parenthesis.
    """
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of ``pid`` in KiB; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return parse_status_kib(text, "VmRSS"), parse_status_kib(text, "VmHWM")


def parse_status_kib(status: str, name: str) -> int:
    """The value of a ``kB`` line of ``/proc/<pid>/status``; 0 when absent."""
    for line in status.splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


@dataclass
class ProcessUsage:
    """What one process used between :meth:`Sampler.start` and :meth:`stop`."""

    pid: int
    cpu_start: float | None = None
    cpu_last: float | None = None
    peak_rss_kib: int = 0
    rss_series: list[tuple[float, int]] = field(default_factory=list)

    @property
    def cpu_seconds(self) -> float:
        if self.cpu_start is None or self.cpu_last is None:
            return 0.0
        return self.cpu_last - self.cpu_start


class Sampler:
    """Samples named processes in a background thread.

    Processes may be added after start (an arm's workers start after the
    stack's services are already being watched); their CPU counts from the
    first sample, which for a freshly started process is its whole life.
    """

    def __init__(self, interval_s: float = 0.5, *, keep_series: bool = False):
        self.interval_s = interval_s
        self.keep_series = keep_series
        self.usage: dict[str, ProcessUsage] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    def watch(self, name: str, pid: int, *, from_birth: bool = False) -> None:
        """Add a process; ``from_birth`` counts its CPU since it started."""
        with self._lock:
            usage = self.usage[name] = ProcessUsage(pid)
            usage.cpu_start = 0.0 if from_birth else cpu_seconds(pid)
        self._sample_one(name, usage)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="bench-sampler")
        self._thread.daemon = True
        self._thread.start()

    def sample(self) -> None:
        """Take one sample of every process now (also call it just before they
        are stopped, so that their last CPU reading is not lost)."""
        with self._lock:
            items = list(self.usage.items())
        for name, usage in items:
            self._sample_one(name, usage)

    def stop(self) -> dict[str, ProcessUsage]:
        self.sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.usage

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def _sample_one(self, name: str, usage: ProcessUsage) -> None:
        cpu = cpu_seconds(usage.pid)
        memory = memory_kib(usage.pid)
        if cpu is None or memory is None:
            return
        rss, _hwm = memory
        usage.cpu_last = cpu
        usage.peak_rss_kib = max(usage.peak_rss_kib, rss)
        if self.keep_series:
            usage.rss_series.append((time.monotonic() - self._t0, rss))


def stack_pids(state_dir: Path) -> dict[str, int]:
    """Pids of the stack's services from their pid files (name -> pid)."""
    pids = {}
    for name in ("kafka", "registry", "clickhouse"):
        pid_file = state_dir / "run" / f"{name}.pid"
        try:
            pids[name] = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return pids
