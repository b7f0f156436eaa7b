"""The pipeline's closing hint names a command the user can paste."""

from __future__ import annotations

from pathlib import Path

import pytest

# The CLI group registers its subcommand modules; import it first.
from booking_events.cli.main import main  # noqa: F401
from booking_events.cli.pipeline import command_name


def script(tmp_path: Path) -> Path:
    path = tmp_path / ".venv" / "bin" / "booking-events"
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_a_script_off_path_is_named_by_its_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", [str(script(tmp_path)), "pipeline"])
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.chdir(tmp_path)

    assert command_name() == ".venv/bin/booking-events"


def test_the_script_on_path_is_named_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = script(tmp_path)
    monkeypatch.setattr("sys.argv", [str(path), "pipeline"])
    monkeypatch.setenv("PATH", str(path.parent))

    assert command_name() == "booking-events"
