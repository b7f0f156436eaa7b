"""Results: a JSON file, a PNG chart, and the summary line."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import stats
from bench.profiles import ArmResult


def drain_eps(results: Sequence[ArmResult]) -> dict[str, float]:
    """Median drain events/s per arm over the repetitions."""
    by_arm: dict[str, list[float]] = {}
    for r in results:
        if r.profile == "drain":
            by_arm.setdefault(r.arm, []).append(r.eps)
    return {arm: stats.median(values) for arm, values in by_arm.items()}


def latency(results: Sequence[ArmResult], arm: str, q: str) -> float:
    for r in results:
        if r.profile == "latency" and r.arm == arm:
            return r.latency_ms.get(q, stats.NAN)
    return stats.NAN


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str, allow_nan=True) + "\n")


def write_chart(path: Path, results: Sequence[ArmResult]) -> None:
    """Drain events/s per arm and latency percentiles per arm, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = drain_eps(results)
    arms = [a for a in stats.ARMS if a in eps]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.bar(arms, [0 if math.isnan(eps[a]) else eps[a] for a in arms])
    left.set_title("Backlog drain (median over repetitions)")
    left.set_ylabel("events/s")
    for i, arm in enumerate(arms):
        left.annotate(
            f"{eps[arm]:.0f}",
            (i, eps[arm] if eps[arm] == eps[arm] else 0),
            ha="center",
            va="bottom",
            fontsize=8,
        )

    quantiles = ("p50", "p99", "p99.9")
    width = 0.25
    lat_arms = [a for a in stats.ARMS if not math.isnan(latency(results, a, "p50"))]
    for j, q in enumerate(quantiles):
        values = [latency(results, a, q) for a in lat_arms]
        right.bar(
            [i + (j - 1) * width for i in range(len(lat_arms))], values, width, label=q
        )
    right.set_xticks(range(len(lat_arms)), lat_arms)
    right.set_yscale("log")
    right.set_ylabel("produce to queryable, ms (log)")
    right.set_title("Rate-limited latency")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_soak_chart(path: Path, series: dict[str, list[tuple[float, int]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, points in series.items():
        ax.plot([t / 60 for t, _ in points], [v / 1024 for _, v in points], label=name)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS, MiB")
    ax.set_title("Soak at half load: resident memory")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results: Sequence[ArmResult]) -> str:
    """Human-readable lines, one per arm and profile."""
    lines = []
    for r in results:
        cpu = " ".join(f"{n}={v:.3f}" for n, v in sorted(r.cpu_s_per_1k.items()))
        rss = " ".join(f"{n}={v:.0f}" for n, v in sorted(r.peak_rss_mib.items()))
        lat = " ".join(f"{q}={v:.0f}" for q, v in r.latency_ms.items())
        rate = f" rate={r.rate_eps:.0f}/s" if r.rate_eps else ""
        lines.append(
            f"{r.profile:7} rep={r.repetition} {r.arm:8} events={r.events}"
            f" seconds={r.seconds:.1f} eps={r.eps:.0f}{rate}"
            + (f" latency_ms[{lat}]" if lat else "")
            + f"\n        cpu_s_per_1k[{cpu}]\n        peak_rss_mib[{rss}]"
            + (f"\n        note: {r.note}" if r.note else "")
        )
    return "\n".join(lines)
