"""Pure arithmetic of the benchmark: rates, ratios, percentiles, the last line."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

ARMS = ("broker", "naive", "quix", "pipeline")
"""Arm names, in the order the summary line names them."""

NAN = float("nan")


def events_per_second(events: int, seconds: float) -> float:
    """``events / seconds``; NaN when nothing was timed."""
    if seconds <= 0 or events <= 0:
        return NAN
    return events / seconds


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; NaN when either is missing or zero."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return NAN
    return numerator / denominator


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between ranks.

    The same definition as numpy's default ("linear"); NaN for no values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return NAN
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The median of the values that are not NaN; NaN when none is."""
    return percentile([v for v in values if not math.isnan(v)], 50)


def cpu_per_thousand(cpu_seconds: float, events: int) -> float:
    """CPU seconds spent per thousand events."""
    if events <= 0:
        return NAN
    return cpu_seconds * 1000 / events


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` points, per minute."""
    if len(points) < 2:
        return NAN
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return NAN
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60


def _number(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def summary_line(eps: Mapping[str, float], p99_ms: float) -> str:
    """The benchmark's last line, exactly as issue #5 specifies it.

    ``eps`` maps arm name to events/s; a missing arm counts as NaN.
    """
    pipeline = eps.get("pipeline", NAN)
    fields = [
        f"pipeline_eps={_number(pipeline, 0)}",
        f"naive_eps={_number(eps.get('naive', NAN), 0)}",
        f"quix_eps={_number(eps.get('quix', NAN), 0)}",
        f"broker_eps={_number(eps.get('broker', NAN), 0)}",
    ]
    for arm in ("naive", "quix", "broker"):
        fields.append(f"ratio_{arm}={_number(ratio(pipeline, eps.get(arm, NAN)), 3)}")
    fields.append(f"p99_ms={_number(p99_ms, 1)}")
    return " ".join(fields)


def parse_summary_line(line: str) -> dict[str, float]:
    """The inverse of :func:`summary_line`: field name to value."""
    result = {}
    for part in line.split():
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise ValueError(f"not a name=value field: {part!r}")
        result[name] = float(value)
    return result
