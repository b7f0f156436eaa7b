"""Pure parts of the benchmark: arithmetic, the summary line, file and /proc parsing."""

from __future__ import annotations

import math

import pytest

from bench import events, measure, stats


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert stats.percentile(values, 50) == pytest.approx(50.5)
    assert stats.percentile(values, 99) == pytest.approx(99.01)
    assert stats.percentile(values, 99.9) == pytest.approx(99.901)
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile(values, 100) == 100.0


def test_percentile_ignores_input_order_and_handles_edges() -> None:
    assert stats.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert stats.percentile([7.0], 99.9) == 7.0
    assert math.isnan(stats.percentile([], 50))
    with pytest.raises(ValueError, match=r"0\.\.100"):
        stats.percentile([1.0], 101)


def test_median_skips_nan() -> None:
    assert stats.median([1.0, float("nan"), 3.0]) == 2.0
    assert math.isnan(stats.median([float("nan")]))


def test_ratio_and_rate_are_nan_when_undefined() -> None:
    assert stats.ratio(500.0, 1000.0) == 0.5
    assert math.isnan(stats.ratio(500.0, 0.0))
    assert math.isnan(stats.ratio(float("nan"), 2.0))
    assert stats.events_per_second(1000, 4.0) == 250.0
    assert math.isnan(stats.events_per_second(1000, 0.0))


def test_cpu_per_thousand_and_slope() -> None:
    assert stats.cpu_per_thousand(2.5, 5000) == pytest.approx(0.5)
    points = [(0.0, 100.0), (60.0, 102.0), (120.0, 104.0)]
    assert stats.slope_per_minute(points) == pytest.approx(2.0)
    assert math.isnan(stats.slope_per_minute([(0.0, 1.0)]))


def test_summary_line_has_the_issue_format() -> None:
    eps = {"pipeline": 1000.0, "naive": 4000.0, "quix": 800.0, "broker": 20000.0}
    line = stats.summary_line(eps, 1234.56)
    assert line == (
        "pipeline_eps=1000 naive_eps=4000 quix_eps=800 broker_eps=20000"
        " ratio_naive=0.250 ratio_quix=1.250 ratio_broker=0.050 p99_ms=1234.6"
    )
    assert list(stats.parse_summary_line(line)) == [
        "pipeline_eps",
        "naive_eps",
        "quix_eps",
        "broker_eps",
        "ratio_naive",
        "ratio_quix",
        "ratio_broker",
        "p99_ms",
    ]


def test_summary_line_prints_nan_for_a_missing_arm() -> None:
    line = stats.summary_line({"pipeline": 900.0, "naive": 3000.0}, float("nan"))
    parsed = stats.parse_summary_line(line)
    assert "quix_eps=nan" in line and "ratio_quix=nan" in line
    assert math.isnan(parsed["quix_eps"]) and math.isnan(parsed["p99_ms"])
    assert parsed["ratio_naive"] == pytest.approx(0.3)


def test_parse_summary_line_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="name=value"):
        stats.parse_summary_line("pipeline_eps=1 oops")


def test_events_file_round_trip_and_damage() -> None:
    records = [(b"HR-00001", b"\x00\x00\x00\x00\x01abc"), (b"HR-00002", b"")]
    data = events.encode_records(records)
    assert list(events.iter_records(data)) == records
    with pytest.raises(ValueError, match="truncated"):
        list(events.iter_records(data[:-2]))
    with pytest.raises(ValueError, match="magic"):
        list(events.iter_records(b"XXXX"))


def test_copies_needed_for_a_volume() -> None:
    assert events.copies_for(54_849, 54_849) == 0
    assert events.copies_for(54_850, 54_849) == 1
    assert events.copies_for(200_000, 54_849) == 3


def test_proc_stat_cpu_ticks_survive_odd_command_names() -> None:
    fields = ["S"] + ["0"] * 10 + ["150", "50"] + ["0"] * 30
    stat = "1234 (java (weird) name) " + " ".join(fields)
    assert measure.parse_cpu_ticks(stat) == 200


def test_proc_status_memory_lines() -> None:
    status = "Name:\tjava\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n"
    assert measure.parse_status_kib(status, "VmRSS") == 102400
    assert measure.parse_status_kib(status, "VmHWM") == 204800
    assert measure.parse_status_kib(status, "VmSwap") == 0
