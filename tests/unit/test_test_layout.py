"""The test tree itself: pytest imports test files by basename."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_test_file_names_are_unique_across_folders() -> None:
    # tests/ has no __init__.py files, so two test_x.py in different folders
    # collide at collection time and the whole run stops.
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [name for name, n in names.items() if n > 1] == []
