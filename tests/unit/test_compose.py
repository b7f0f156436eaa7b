"""Static checks of deploy/compose.yaml and the Dockerfile; no Docker needed.

The compose file is read with ``yaml.safe_load``, which resolves the anchors
and ``<<`` merge keys the way Compose does, so the services are checked as
Compose would run them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from booking_events import metrics
from booking_events.settings import (
    ClickHouseSettings,
    KafkaSettings,
    LogSettings,
    MetricsSettings,
    RegistrySettings,
    TopicSettings,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "booking-events.json"

# Every settings class whose variables the compose file may set. Add the
# classes of new stages (producers, processors, sinks) here when they land.
SETTINGS_CLASSES: list[type[BaseSettings]] = [
    KafkaSettings,
    RegistrySettings,
    ClickHouseSettings,
    TopicSettings,
    MetricsSettings,
    LogSettings,
]

INFRA_SERVICES = ("kafka", "schema-registry", "clickhouse")
OBSERVABILITY_SERVICES = ("prometheus", "grafana")
PIPELINE_SERVICES = ("topics-init", "processor", "sink", "replay")
SUBCOMMANDS = {
    "topics-init": ["topics", "create"],
    "processor": ["process"],
    "sink": ["sink"],
    "replay": ["replay"],
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _settings_env_names() -> set[str]:
    """Variable names the settings classes read: env_prefix + field name."""
    names = set()
    for cls in SETTINGS_CLASSES:
        prefix = cls.model_config.get("env_prefix", "")
        names.update(f"{prefix}{field}".upper() for field in cls.model_fields)
    return names


def _published_ports(service: dict[str, Any]) -> set[int]:
    """Host ports of a service, from the short or the long port syntax."""
    published = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            if "published" in port:
                published.add(int(port["published"]))
            continue

        # "[IP:]HOST:CONTAINER[/proto]"; a bare "CONTAINER" publishes nothing fixed.
        parts = str(port).split("/")[0].split(":")
        if len(parts) >= 2 and parts[-2]:
            published.add(int(parts[-2]))
    return published


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return env


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else list(command)


def _dockerfile_instructions(name: str) -> list[str]:
    """Arguments of every Dockerfile instruction called ``name``."""
    pattern = re.compile(rf"^\s*{name}\s+(.+)$", re.IGNORECASE | re.MULTILINE)
    return pattern.findall(DOCKERFILE.read_text(encoding="utf-8"))


def test_every_service_exists(services: dict[str, Any]) -> None:
    expected = INFRA_SERVICES + PIPELINE_SERVICES + OBSERVABILITY_SERVICES
    assert set(expected) <= set(services)


def test_compose_specification_has_no_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose


@pytest.mark.parametrize("name", INFRA_SERVICES)
def test_infrastructure_has_healthcheck_and_pinned_image(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]

    test = service["healthcheck"]["test"]
    assert test, f"{name}: the healthcheck has no test command"
    if isinstance(test, list):
        assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1

    image, _, tag = service["image"].rpartition(":")
    assert image and "/" not in tag, f"{name}: image {service['image']} has no tag"
    assert tag != "latest"
    assert re.match(r"^\d+(\.\d+)+", tag), f"{name}: tag {tag} is not a version"


def test_host_ports_are_published(services: dict[str, Any]) -> None:
    assert 9092 in _published_ports(services["kafka"])
    assert 8081 in _published_ports(services["schema-registry"])
    assert 8123 in _published_ports(services["clickhouse"])


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = (
                volume.get("source")
                if isinstance(volume, dict)
                else str(volume).split(":")[0]
            )
            # Bind mounts start with a path; anything else names a volume.
            if source and not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name}: volume {source} is not declared"


@pytest.mark.parametrize("name", ["processor", "sink"])
def test_consumers_wait_for_a_healthy_kafka(
    services: dict[str, Any], name: str
) -> None:
    depends_on = services[name]["depends_on"]
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert depends_on["schema-registry"]["condition"] == "service_healthy"


def test_processor_waits_for_the_topics(services: dict[str, Any]) -> None:
    condition = services["processor"]["depends_on"]["topics-init"]["condition"]
    assert condition == "service_completed_successfully"


def test_sink_waits_for_a_healthy_clickhouse(services: dict[str, Any]) -> None:
    condition = services["sink"]["depends_on"]["clickhouse"]["condition"]
    assert condition == "service_healthy"


def test_every_booking_events_variable_is_a_setting() -> None:
    # Scan the raw text, so variables in interpolations and anchors count too.
    used = set(re.findall(r"BOOKING_EVENTS_[A-Z0-9_]+", COMPOSE_FILE.read_text()))
    unknown = used - _settings_env_names()
    assert not unknown, f"no settings field reads {sorted(unknown)}"


@pytest.mark.parametrize("name", PIPELINE_SERVICES)
def test_pipeline_services_point_inside_the_compose_network(
    services: dict[str, Any], name: str
) -> None:
    env = _environment(services[name])
    kafka_host = env["BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0]
    assert kafka_host == "kafka"
    assert env["BOOKING_EVENTS_REGISTRY_URL"].startswith("http://schema-registry:")
    assert env["BOOKING_EVENTS_REGISTRY_URL"].endswith("/apis/ccompat/v7")
    assert env["BOOKING_EVENTS_CLICKHOUSE_URL"].startswith("http://clickhouse:")


@pytest.mark.parametrize("name", PIPELINE_SERVICES)
def test_pipeline_services_run_their_subcommand(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    entrypoint = service.get("entrypoint", ["booking-events"])
    assert entrypoint[0] == "booking-events"
    assert (entrypoint[1:] + _command(service))[: len(SUBCOMMANDS[name])] == (
        SUBCOMMANDS[name]
    )


@pytest.mark.parametrize("name", ["kafka", "schema-registry", "clickhouse", "sink"])
def test_long_running_services_restart(services: dict[str, Any], name: str) -> None:
    assert services[name]["restart"] == "unless-stopped"


def test_processor_can_scale(services: dict[str, Any]) -> None:
    processor = services["processor"]
    assert "container_name" not in processor
    assert not _published_ports(processor)
    assert processor["restart"] == "unless-stopped"
    assert "9464" in {str(port) for port in processor.get("expose", [])}


def test_replay_starts_only_with_its_profile(services: dict[str, Any]) -> None:
    assert services["replay"]["profiles"] == ["replay"]


def test_dockerfile_runs_booking_events_as_non_root() -> None:
    assert DOCKERFILE.is_file()
    assert any("python:3.11-slim" in line for line in _dockerfile_instructions("FROM"))
    assert any("booking-events" in e for e in _dockerfile_instructions("ENTRYPOINT"))

    users = _dockerfile_instructions("USER")
    assert users, "the image runs as root"
    assert users[-1].strip() not in {"root", "0"}


def test_dockerignore_keeps_what_pip_install_needs() -> None:
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    needed = {"pyproject.toml", "README.md", "booking_events", "schemas"}
    assert not ignored & needed
    assert "*" not in ignored


@pytest.mark.parametrize("name", OBSERVABILITY_SERVICES)
def test_observability_has_healthcheck_pinned_image_and_volume(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]

    test = service["healthcheck"]["test"]
    assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1
    _, _, tag = service["image"].rpartition(":")
    assert re.match(r"^v?\d+\.\d+\.\d+$", tag), f"{name}: tag {tag} is not pinned"
    assert service["restart"] == "unless-stopped"
    named = [str(v).split(":")[0] for v in service["volumes"]]
    assert any(not v.startswith(".") for v in named), f"{name}: no data volume"


def test_grafana_is_provisioned_from_deploy(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    mounted = {str(v).split(":")[0] for v in grafana["volumes"]}
    assert {"./grafana/provisioning", "./grafana/dashboards"} <= mounted
    for source in mounted - {"grafana-data"}:
        assert (COMPOSE_FILE.parent / source).is_dir(), source

    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    assert datasources[0]["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard["panels"]
        for target in panel["targets"]
    }
    assert uids == {datasources[0]["uid"]}


def test_prometheus_scrapes_every_metrics_port(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    mounted = {str(v).split(":")[0] for v in prometheus["volumes"]}
    assert "./prometheus/prometheus.yml" in mounted
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    scraped = {
        (name, sd["port"])
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    for name in ("processor", "sink", "replay"):
        env = _environment(services[name])
        port = int(env["BOOKING_EVENTS_METRICS_PORT"])
        assert (name, port) in scraped, f"prometheus does not scrape {name}:{port}"
        assert str(port) in {str(p) for p in services[name].get("expose", [])}
        # Bound to every interface, or the prometheus container cannot reach it.
        assert env["BOOKING_EVENTS_METRICS_BIND"] == "0.0.0.0"


def test_dashboard_queries_only_defined_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"booking_events_[a-z0-9_]+", target["expr"])
    }
    assert queried, "the dashboard queries no booking_events metric"
    unknown = queried - metrics.sample_names()
    assert not unknown, f"not defined in booking_events/metrics.py: {sorted(unknown)}"


def test_dashboard_shows_what_issue_5_asks_for() -> None:
    text = DASHBOARD.read_text(encoding="utf-8")
    for name in (
        "booking_events_processor_events_in_total",
        "booking_events_processor_events_out_total",
        "booking_events_processor_dead_lettered_total",
        "booking_events_processor_duplicates_dropped_total",
        "booking_events_consumer_lag_records",
        "booking_events_sink_insert_duration_seconds_bucket",
        "booking_events_sink_batch_size_rows_bucket",
        "booking_events_producer_produce_errors_total",
    ):
        assert name in text, f"the dashboard does not show {name}"


def _label_names() -> dict[str, set[str]]:
    """Series name -> the labels it carries (``le`` on histogram buckets)."""
    labels: dict[str, set[str]] = {}
    for metric in metrics.ALL:
        for family in metric.describe():
            for name in metrics.sample_names():
                if name.startswith(family.name):
                    extra = {"le"} if name.endswith("_bucket") else set()
                    labels[name] = set(metric._labelnames) | extra
    return labels


def test_dashboard_queries_only_labels_its_metrics_carry() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    known = _label_names()
    problems = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr, legend = target["expr"], target.get("legendFormat", "")
            names = re.findall(r"booking_events_[a-z0-9_]+", expr)
            carried = set().union(*(known.get(n, set()) for n in names))
            grouped = re.findall(r"\bby\s*\(([^)]*)\)", expr)
            kept = {g.strip() for group in grouped for g in group.split(",")}
            selected = set(re.findall(r"[{,]\s*([a-z_]+)\s*(?:=~|!=|!~|=)", expr))
            shown = set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", legend))
            where = f"{panel['title']}: {expr}"
            if kept - carried or selected - carried:
                problems.append(f"{where} uses {sorted((kept | selected) - carried)}")
            # An aggregation drops every label it does not group by.
            visible = (
                kept if re.search(r"\b(sum|max|min|avg|count)\b", expr) else carried
            )
            if shown - visible:
                problems.append(f"{where} shows {sorted(shown - visible)}")
    assert problems == []


def test_documented_replay_runs_are_reachable_by_prometheus() -> None:
    # `compose run` gives its container the service's name only with
    # --use-aliases; without it the dns_sd target `replay` resolves to nothing.
    docs = [COMPOSE_FILE, PROMETHEUS_CONFIG, COMPOSE_FILE.parent / "README.md"]
    runs = [
        (path.name, line)
        for path in docs
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.search(r"\brun\b.*\breplay\b", line) and "compose" in line
    ]
    assert runs
    assert [run for run in runs if "--use-aliases" not in run[1]] == []
