"""The metric definitions, the lag gauge, the endpoint and the producer's counters."""

from __future__ import annotations

import re
import socket
import urllib.request
import uuid
from pathlib import Path

import pytest
from factories import booking_created
from prometheus_client import REGISTRY

from booking_events import metrics
from booking_events.exceptions import ConfigurationError
from booking_events.settings import (
    KafkaSettings,
    MetricsSettings,
    RegistrySettings,
    TopicSettings,
)
from producers import BookingEventProducer, BufferFullError, ProducerSettings

UNIT = re.compile(r"_(total|seconds|rows|records)(_bucket|_sum|_count)?$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_series_is_ours_and_names_its_unit() -> None:
    names = metrics.sample_names()

    assert "booking_events_processor_events_in_total" in names
    assert "booking_events_sink_insert_duration_seconds_bucket" in names
    assert "booking_events_consumer_lag_records" in names
    for name in names:
        assert name.startswith("booking_events_"), name
        assert UNIT.search(name), f"{name} does not end in its unit"


def test_no_label_names_a_booking_or_an_event() -> None:
    for metric in metrics.ALL:
        labels = set(metric._labelnames)
        assert not labels & {"booking_id", "event_id", "offset", "key"}, metric


def test_lag_gauge_forgets_partitions_no_longer_assigned() -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    lag = metrics.LagGauge(group, "t", interval_s=60)

    lag.update({0: 5, 1: 7})
    lag.update({1: 2})

    def value(partition: int) -> float | None:
        return REGISTRY.get_sample_value(
            "booking_events_consumer_lag_records",
            {"group": group, "topic": "t", "partition": str(partition)},
        )

    assert value(0) is None
    assert value(1) == 2


def test_lag_gauge_is_due_once_per_interval() -> None:
    lag = metrics.LagGauge("g", "t", interval_s=60)

    assert lag.due()
    assert not lag.due()


def test_port_zero_serves_nothing() -> None:
    assert metrics.serve(MetricsSettings(port=0), role="test") is None


def test_the_endpoint_serves_the_metrics() -> None:
    port = free_port()
    metrics.SINK_COMMITS.inc()

    assert metrics.serve(MetricsSettings(port=port), role="test") == port
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert "booking_events_sink_commits_total" in text


def test_a_port_in_use_is_a_configuration_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigurationError, match="BOOKING_EVENTS_METRICS_PORT"):
            metrics.serve(MetricsSettings(port=port), role="test")


def test_the_producer_counts_back_pressure_and_refused_events() -> None:
    topic = f"unit.{uuid.uuid4().hex[:8]}"
    producer = BookingEventProducer(
        KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"),
        RegistrySettings(url="mock://metrics-tests"),
        TopicSettings(raw=topic),
        ProducerSettings(buffer_max_messages=1, buffer_full_timeout_ms=100),
        handle_sigterm=False,
    )
    producer.start()
    try:
        producer.emit(booking_created(booking_id="B1"))
        with pytest.raises(BufferFullError):
            producer.emit(booking_created(booking_id="B2"))
    finally:
        producer._producer = None  # no broker to flush towards

    def sample(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"topic": topic, **labels})

    assert sample("booking_events_producer_buffer_full_waits_total") == 1
    assert (
        sample("booking_events_producer_produce_errors_total", error="buffer_full") == 1
    )
    assert sample("booking_events_producer_events_produced_total") == 0


def test_pipeline_workers_get_the_next_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    from booking_events.pipeline import worker_metrics_env

    monkeypatch.setenv("BOOKING_EVENTS_METRICS_PORT", "9464")
    assert worker_metrics_env(1) == {"BOOKING_EVENTS_METRICS_PORT": "9465"}
    assert worker_metrics_env(2) == {"BOOKING_EVENTS_METRICS_PORT": "9466"}

    monkeypatch.delenv("BOOKING_EVENTS_METRICS_PORT")
    assert worker_metrics_env(1) == {"BOOKING_EVENTS_METRICS_PORT": "0"}


class _Table:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


def test_the_router_counts_each_outcome_by_topic_and_reason() -> None:
    from processors.config import ProcessorSettings
    from processors.router import EventRouter
    from processors.routing import SourceRecord
    from schemas import UnknownSchemaError

    prefix = f"u{uuid.uuid4().hex[:8]}"
    topics = TopicSettings(
        raw=f"{prefix}.raw",
        validated=f"{prefix}.validated",
        dead_letter=f"{prefix}.dead-letter",
    )
    router = EventRouter(
        None,  # type: ignore[arg-type]
        _Table(),
        None,  # type: ignore[arg-type]
        ProcessorSettings(),
        topics,
    )
    source = SourceRecord(topic=topics.raw, partition=0, offset=1, key=b"B1", value=b"")
    event = booking_created(booking_id="B1")

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    reason = ("booking_events_processor_dead_lettered_total", "unknown_schema")
    duplicates = "booking_events_processor_duplicates_dropped_total"
    before = sample(reason[0], reason=reason[1]), sample(duplicates)

    router.plan(source, event)
    _, state = router.plan(source, event)  # nothing stored yet: not a repeat
    assert state is not None
    router._table.data[state[0]] = state[1]
    router.plan(source, event)  # now a repeat of an accepted event
    router.plan(source, UnknownSchemaError("schema id 9 is not in the registry"))

    out = "booking_events_processor_events_out_total"
    assert sample(out, topic=topics.validated, outcome="validated") == 2
    assert sample(out, topic=topics.dead_letter, outcome="dead_lettered") == 1
    after = sample(reason[0], reason=reason[1]), sample(duplicates)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_the_readme_lists_every_metric_with_its_labels() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = {
        m.group(1): set(filter(None, (m.group(2) or "").split(",")))
        for m in re.finditer(
            r"^\| `(booking_events_[a-z_]+)(?:\{([a-z_,]+)\})?` \|", readme, re.M
        )
    }
    defined = {
        family.name + ("_total" if family.type == "counter" else ""): set(
            metric._labelnames
        )
        for metric in metrics.ALL
        for family in metric.describe()
    }
    assert documented == defined
