"""``python -m bench``: the benchmark of issue #5 (``bench/run`` calls it).

Starts (or reuses) a local stack, pre-generates the events, runs the backlog
drain for every arm, interleaved over the repetitions, then the rate-limited
latency profile at half the slowest arm's drain rate, optionally a soak, and
writes ``results.json`` and ``results.png``. The last line printed is the
summary line of the issue.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import events, report, stats
from bench.arms import ARMS, Context
from bench.arms.base import ArmError
from bench.measure import stack_pids
from bench.profiles import ArmResult, ProfileTimeout, drain, rate_limited
from booking_events import logs
from booking_events.settings import ClickHouseSettings, KafkaSettings, RegistrySettings
from booking_events.stack import LocalStack, StackPorts, StackSettings

log = logging.getLogger("bench")

QUIX_REQUIREMENTS = [
    "quixstreams[avro]==3.28.1",
    "clickhouse-connect>=1.12,<2",
    "pydantic-settings>=2.7,<3",
    # The app imports this project's event builders, which count into metrics.
    "prometheus-client>=0.20",
]
DEFAULT_QUIX_VENV = Path.home() / ".cache" / "booking-events-bench" / "quix-venv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="60,000 events, one repetition"
    )
    parser.add_argument("--events", type=int, help="events per arm and repetition")
    parser.add_argument("--repetitions", type=int, help="drain repetitions per arm")
    parser.add_argument(
        "--latency-seconds", type=float, help="length of each rate-limited run"
    )
    parser.add_argument(
        "--arms",
        default=",".join(stats.ARMS),
        help=f"comma-separated subset of {','.join(stats.ARMS)}",
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=0.0,
        help="also run the pipeline this long at half load and track its memory",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results",
        help="directory of results.json and results.png",
    )
    parser.add_argument("--quix-venv", type=Path, default=DEFAULT_QUIX_VENV)
    parser.add_argument(
        "--timeout-s", type=float, default=900.0, help="longest wait for one arm"
    )
    args = parser.parse_args(argv)
    args.events = args.events or (60_000 if args.quick else 200_000)
    args.repetitions = args.repetitions or (1 if args.quick else 3)
    args.latency_seconds = args.latency_seconds or (15.0 if args.quick else 60.0)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = set(args.arms) - set(stats.ARMS)
    if unknown:
        parser.error(f"unknown arms {sorted(unknown)}; known: {list(stats.ARMS)}")
    return args


def stack_for_bench() -> LocalStack:
    """The stack of ``BOOKING_EVENTS_STACK_*``; its own dir and free ports if unset."""
    if "BOOKING_EVENTS_STACK_STATE_DIR" not in os.environ:
        state = Path(tempfile.gettempdir()) / "booking-events-bench"
        os.environ["BOOKING_EVENTS_STACK_STATE_DIR"] = str(state)
    settings = StackSettings()
    explicit = any(
        StackPorts.env_var(name) in os.environ for name in StackPorts.names()
    )
    ports = settings.ports() if explicit else StackPorts.free()
    return LocalStack(settings.state_dir, ports, settings)


def ensure_quix_venv(venv: Path) -> Path | None:
    """The interpreter of the quix virtualenv, created or updated on first use.

    A stamp file holds the requirements it was installed with; a venv from an
    older list gets the current one installed over it.
    """
    python = venv / "bin" / "python"
    stamp = venv / "booking-events-requirements.txt"
    wanted = "\n".join(QUIX_REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log.info("installing the quix virtualenv", extra={"venv": str(venv)})
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *QUIX_REQUIREMENTS],
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        log.warning("quix arm unavailable: %s", exc)
        return None
    stamp.write_text(wanted)
    return python


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def failed(arm: str, profile: str, rep: int, exc: Exception) -> ArmResult:
    log.error("arm failed: %s", exc, extra={"arm": arm, "profile": profile})
    return ArmResult(arm, profile, rep, 0, 0.0, stats.NAN, note=str(exc))


def run(args: argparse.Namespace) -> int:
    stack = stack_for_bench()
    was_running = all(stack.status().values())
    if not was_running:
        stack.start(fresh=True)
    os.environ.update(stack.env())
    results: list[ArmResult] = []
    soak: dict[str, object] = {}
    began = time.monotonic()
    try:
        work = stack.state_dir / "bench" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        ctx = Context(
            KafkaSettings(),
            RegistrySettings(),
            ClickHouseSettings(),
            dict(os.environ),
            work,
            ensure_quix_venv(args.quix_venv) if "quix" in args.arms else None,
        )
        pids = stack_pids(stack.state_dir)
        # Names unique to this invocation: a reused stack keeps old topics,
        # groups and databases, whose committed offsets would skip new records.
        session = datetime.now(UTC).strftime("%H%M%S")
        events_file = work / "events.bin"
        events.generate(events_file, args.events, ctx.registry)
        records = events.read(events_file)

        for rep in range(1, args.repetitions + 1):
            # Rotate the order so that no arm always runs first or last.
            order = args.arms[rep - 1 :] + args.arms[: rep - 1]
            for name in order:
                arm = ARMS[name](ctx, f"s{session}d{rep}")
                reason = arm.available()
                if reason:
                    results.append(failed(name, "drain", rep, RuntimeError(reason)))
                    continue
                log.info(
                    "drain", extra={"rep": rep, "arm": name, "events": len(records)}
                )
                try:
                    results.append(drain(arm, records, pids, rep, args.timeout_s))
                except (ArmError, ProfileTimeout) as exc:
                    arm.kill()
                    results.append(failed(name, "drain", rep, exc))

        eps = report.drain_eps(results)
        measured = [v for v in eps.values() if not math.isnan(v)]
        rate = 0.5 * min(measured) if measured else stats.NAN
        if not math.isnan(rate):
            duration = min(args.latency_seconds, len(records) / rate)
            for name in args.arms:
                arm = ARMS[name](ctx, f"s{session}lat")
                if arm.available():
                    continue
                log.info(
                    "latency",
                    extra={
                        "arm": name,
                        "rate_eps": round(rate),
                        "seconds": round(duration),
                    },
                )
                try:
                    result, _ = rate_limited(
                        arm, records, pids, rate, duration, args.timeout_s
                    )
                    results.append(result)
                except (ArmError, ProfileTimeout) as exc:
                    arm.kill()
                    results.append(failed(name, "latency", 1, exc))

        if args.soak_minutes > 0 and not math.isnan(rate):
            soak = run_soak(ctx, pids, rate, args, session)
    finally:
        if not was_running:
            stack.stop()

    doc = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - began, 1),
        "machine": machine(),
        "settings": {
            "events": args.events,
            "repetitions": args.repetitions,
            "latency_seconds": args.latency_seconds,
            "arms": args.arms,
        },
        "results": [r.as_dict() for r in results],
        "soak": soak,
    }
    eps = report.drain_eps(results)
    line = stats.summary_line(eps, report.latency(results, "pipeline", "p99"))
    doc["summary"] = line
    report.write_json(args.out / "results.json", doc)
    report.write_chart(args.out / "results.png", results)
    print(report.table(results))  # noqa: T201
    print(f"results: {args.out / 'results.json'} {args.out / 'results.png'}")  # noqa: T201
    print(line)  # noqa: T201
    return 0


def run_soak(
    ctx: Context, pids: dict[str, int], rate: float, args, session: str
) -> dict:
    """The pipeline at half load for ``--soak-minutes``; RSS slope per process."""
    seconds = args.soak_minutes * 60
    needed = int(rate * seconds) + 1000
    path = ctx.work_dir / "soak-events.bin"
    events.generate(path, needed, ctx.registry)
    records = events.read(path)
    arm = ARMS["pipeline"](ctx, f"s{session}soak")
    log.info("soak", extra={"minutes": args.soak_minutes, "rate_eps": round(rate)})
    result, sampler = rate_limited(
        arm,
        records,
        pids,
        rate,
        seconds,
        args.timeout_s,
        profile="soak",
        keep_series=True,
    )
    series = {n: u.rss_series for n, u in sampler.usage.items()}
    slopes = {}
    for name, points in series.items():
        # The first fifth is warm-up (caches, JIT of the JVMs): left out.
        cut = [(t, v / 1024) for t, v in points if t >= seconds / 5]
        slopes[name] = stats.slope_per_minute(cut)
    report.write_soak_chart(args.out / "soak.png", series)
    return {
        "result": result.as_dict(),
        "rss_slope_mib_per_min_after_warmup": slopes,
        "rss_series_kib": series,
    }


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so workers and the stack are stopped."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    # The project's log lines: coordinates as key=value pairs (or JSON fields).
    logs.configure()
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
