"""The command line as an operator meets it: help, exit codes, one-line errors.

No service runs here: "down" is a loopback port nothing listens on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from booking_events import pipeline
from booking_events.cli.main import main
from booking_events.exceptions import ServiceError
from booking_events.settings import KafkaSettings, TopicSettings
from booking_events.topics import ensure_topics


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BOOKING_EVENTS_* variable from the caller leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("BOOKING_EVENTS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "command",
    [[], ["topics"], ["topics", "create"], ["query"], ["pipeline"], ["report"]],
)
def test_help_works_and_exits_0(command: list[str]) -> None:
    result = run(*command, "--help")

    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


@pytest.mark.parametrize(
    "args", [["no-such-command"], ["query"], ["pipeline", "--bookings", "0"]]
)
def test_wrong_usage_exits_2(args: list[str]) -> None:
    assert run(*args).exit_code == 2


def test_a_misspelt_variable_stops_every_subcommand_with_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVER", "kafka:9092")

    result = run("topics", "create")

    assert result.exit_code == 2
    assert "BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVER " in result.output
    assert "did you mean BOOKING_EVENTS_KAFKA_BOOTSTRAP_SERVERS?" in result.output
    assert "Traceback" not in result.output


def test_help_still_works_with_a_misspelt_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_CLICKHOUSE_URLL", "http://x")

    assert run("query", "--help").exit_code == 0


def test_an_invalid_value_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_CLICKHOUSE_CONNECT_TIMEOUT_S", "soon")

    result = run("query", "SELECT 1")

    assert result.exit_code == 2
    assert "BOOKING_EVENTS_CLICKHOUSE_CONNECT_TIMEOUT_S" in result.output
    assert "soon" not in result.output


def test_query_with_clickhouse_down_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv(
        "BOOKING_EVENTS_CLICKHOUSE_URL", f"http://127.0.0.1:{closed_port}"
    )
    monkeypatch.setenv("BOOKING_EVENTS_CLICKHOUSE_PASSWORD", "hunter2")

    result = run("query", "SELECT 1")

    assert result.exit_code == 3
    assert result.output.startswith(
        f"error: ClickHouse at http://127.0.0.1:{closed_port} could not be reached"
    )
    assert "booking-events stack status" in result.output
    assert "Traceback" not in result.output
    assert "hunter2" not in result.output


def test_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv(
        "BOOKING_EVENTS_CLICKHOUSE_URL", f"http://127.0.0.1:{closed_port}"
    )

    result = run("--debug", "query", "SELECT 1")

    assert result.exit_code != 0
    assert result.exception is not None
    assert not isinstance(result.exception, SystemExit)


def test_topics_create_with_kafka_down_fails_within_its_timeout(
    closed_port: int,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{closed_port}")

    with pytest.raises(ServiceError, match="could not be reached"):
        ensure_topics(kafka, TopicSettings(), timeout_s=1.0)


def test_an_interrupted_pipeline_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("booking_events.cli.pipeline.run_pipeline", interrupted)

    result = run("pipeline", "--external")

    assert result.exit_code == 130
    assert "interrupted: processor and sink stopped" in result.output


class FakeProcess:
    """Stands in for a worker's Popen: records signals, never exits by itself."""

    def __init__(self, *, interrupt_on_wait: bool = False) -> None:
        self.signals: list[str] = []
        self.returncode: int | None = None
        self.interrupt_on_wait = interrupt_on_wait

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.signals.append("TERM")

    def kill(self) -> None:
        self.signals.append("KILL")
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self.interrupt_on_wait:
            raise KeyboardInterrupt
        if self.returncode is None:
            self.returncode = 0
        return self.returncode


def worker(name: str, process: FakeProcess) -> pipeline.Worker:
    popen: subprocess.Popen[bytes] = process  # type: ignore[assignment]
    return pipeline.Worker(name, popen, Path(f"/logs/{name}.log"))


def test_stop_workers_signals_all_before_waiting() -> None:
    processor, sink = FakeProcess(), FakeProcess()

    codes = pipeline.stop_workers(
        [worker("processor", processor), worker("sink", sink)]
    )

    assert codes == {"processor": 0, "sink": 0}
    assert processor.signals == sink.signals == ["TERM"]


def test_a_second_interrupt_while_stopping_kills_instead_of_orphaning() -> None:
    processor, sink = FakeProcess(interrupt_on_wait=True), FakeProcess()

    with pytest.raises(KeyboardInterrupt):
        pipeline.stop_workers([worker("processor", processor), worker("sink", sink)])

    assert processor.signals == ["TERM", "KILL"]
    assert sink.signals == ["TERM", "KILL"]


def test_sigterm_unwinds_like_ctrl_c() -> None:
    with pytest.raises(KeyboardInterrupt):
        pipeline._raise_interrupt(15, None)


def test_events_kept_from_an_earlier_run_do_not_count_as_drained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 692 rows from an earlier run are stored; this run produced 170 events
    # and its processor died: the wait must notice, not report success.
    monkeypatch.setattr(pipeline, "processed_and_stored", lambda *_: 692)
    crashed = FakeProcess()
    crashed.returncode = 1

    with pytest.raises(pipeline.PipelineError, match=r"processor\.log"):
        pipeline.wait_drained(
            KafkaSettings(),
            None,  # type: ignore[arg-type]
            TopicSettings(),
            170,
            [worker("processor", crashed)],
            timeout_s=5,
            baseline=692,
        )


@pytest.mark.parametrize("debug", [False, True])
def test_with_json_logs_the_final_error_is_a_json_line_too(
    monkeypatch: pytest.MonkeyPatch, closed_port: int, debug: bool
) -> None:
    monkeypatch.setenv("BOOKING_EVENTS_LOG_FORMAT", "json")
    monkeypatch.setenv(
        "BOOKING_EVENTS_CLICKHOUSE_URL", f"http://127.0.0.1:{closed_port}"
    )

    result = run(*(["--debug"] if debug else []), "query", "SELECT 1")

    assert result.exit_code == 3
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines[-1]["level"] == "error"
    assert lines[-1]["exit_code"] == 3
    assert "could not be reached" in lines[-1]["msg"]
    # --debug still shows the traceback: inside the line, not after it.
    assert ("Traceback" in lines[-1].get("exc", "")) is debug
