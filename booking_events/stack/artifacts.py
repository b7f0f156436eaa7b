"""Resolving the services' Java artifacts from Maven Central with ``mvn``.

Each artifact lands in its own folder under ``<state>/lib`` with a marker file
naming what was installed; a folder whose marker matches is left alone, so a
second install costs nothing. Maven keeps its downloads in ``~/.m2``, which
makes a reinstall after ``rm -rf <state>`` quick and offline.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from booking_events.stack.exceptions import MissingToolError, StackError

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
LOG4J_VERSION = "2.25.3"
APICURIO_VERSION = "3.3.3"

KAFKA_COORDINATES = [
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
    # Kafka's POM has no logging backend; 4.x logs through SLF4J 1.7.
    ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
    ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    ("org.apache.logging.log4j", "log4j-api", LOG4J_VERSION),
]
APICURIO_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"

MARKER = ".installed"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>booking-events.local-stack</groupId>
  <artifactId>{artifact_id}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""
_DEPENDENCY = """    <dependency>
      <groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version>
    </dependency>"""


def installed(directory: Path, what: str) -> bool:
    """Whether ``directory`` holds a complete install of ``what``."""
    marker = directory / MARKER
    return marker.is_file() and marker.read_text().strip() == what


def find_maven(maven: str) -> str:
    """The Maven executable; raise with a remedy when it is missing."""
    found = shutil.which(maven)
    if found is None:
        raise MissingToolError(
            f"Maven ({maven!r}) was not found: install it (Debian: apt-get install "
            "maven) or set BOOKING_EVENTS_STACK_MAVEN to its path"
        )
    return found


def _run_maven(maven: str, args: list[str], cwd: Path, what: str) -> None:
    command = [find_maven(maven), "-B", "-q", *args]
    log.info("resolving %s with Maven (slow only the first time)", what)
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise StackError(
            f"Maven could not resolve {what} (exit {result.returncode}); check that "
            f"Maven Central is reachable. Command: {' '.join(command)}\n{output}"
        )


def resolve_kafka(lib_root: Path, maven: str) -> Path:
    """The folder of Kafka's runtime jars, resolved first when missing."""
    target = lib_root / "kafka"
    what = " ".join(":".join(coordinate) for coordinate in KAFKA_COORDINATES)
    if installed(target, what):
        return target

    build = lib_root / "build" / "kafka"
    build.mkdir(parents=True, exist_ok=True)
    dependencies = "\n".join(_DEPENDENCY.format(*c) for c in KAFKA_COORDINATES)
    (build / "pom.xml").write_text(
        _POM.format(artifact_id="kafka-runtime", dependencies=dependencies)
    )
    shutil.rmtree(target, ignore_errors=True)
    _run_maven(
        maven,
        [
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={target}",
        ],
        build,
        f"Kafka {KAFKA_VERSION}",
    )

    if not list(target.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        raise StackError(f"Maven finished but left no Kafka jar in {target}")
    (target / MARKER).write_text(what + "\n")
    return target


def resolve_apicurio(lib_root: Path, maven: str) -> Path:
    """The unpacked Apicurio Registry distribution, fetched first when missing."""
    target = lib_root / "apicurio"
    if installed(target, APICURIO_ARTIFACT):
        return target

    lib_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib_root, prefix=".apicurio-") as tmp:
        download = Path(tmp) / "download"
        _run_maven(
            maven,
            [
                "dependency:copy",
                f"-Dartifact={APICURIO_ARTIFACT}",
                f"-DoutputDirectory={download}",
            ],
            Path(tmp),
            f"Apicurio Registry {APICURIO_VERSION}",
        )
        archives = list(download.glob("*.tar.gz"))
        if len(archives) != 1:
            raise StackError(f"expected one Apicurio archive in {download}")

        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(archives[0]) as archive:
            archive.extractall(unpacked, filter="data")
        if not (unpacked / "quarkus-run.jar").is_file():
            raise StackError(f"{archives[0].name} holds no quarkus-run.jar")
        (unpacked / MARKER).write_text(APICURIO_ARTIFACT + "\n")

        # Swap in the complete folder only, so a broken unpack never looks installed.
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
    return target
