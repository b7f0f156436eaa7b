"""Compatibility governance of the event schema in the Schema Registry.

The working tree's schema (``schemas.EVENT_SCHEMA``) is registered under one
subject per topic (``<topic>-value``, TopicNameStrategy) for the raw and the
validated topic, and each subject gets its compatibility level set explicitly:
Apicurio's global default is ``NONE``, which accepts any change.

The default level is ``BACKWARD``: a new schema must read every event written
with the previous one. Consumers (processor, sink) then upgrade first and keep
reading the events already in the topics; producers upgrade after them. It is
the level that lets the topics be replayed from the start with current code.

The registry's compatibility endpoint gives the verdict. Apicurio answers only
``{"is_compatible": false}``, even with ``verbose=true``, so the reasons are
computed here with Avro's schema resolution rules (:func:`explain`), naming
the field and the rule broken.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from booking_events.exceptions import ServiceError
from booking_events.settings import RegistrySettings, TopicSettings

log = logging.getLogger(__name__)

LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)
DEFAULT_LEVEL = "BACKWARD"
SUBJECT_NOT_FOUND = 40401


def subjects(topics: TopicSettings) -> list[str]:
    """The subjects the event schema is registered under (raw, validated)."""
    return [f"{topics.raw}-value", f"{topics.validated}-value"]


@dataclasses.dataclass(frozen=True)
class Registration:
    """One subject after :func:`register`."""

    subject: str
    schema_id: int
    level: str


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The working tree's schema against one subject's latest version."""

    subject: str
    registered: bool
    """False when the subject does not exist yet (nothing to be compatible with)."""
    compatible: bool
    level: str | None = None
    latest_version: int | None = None
    problems: tuple[str, ...] = ()


def client(settings: RegistrySettings | None = None) -> SchemaRegistryClient:
    """A registry client; ``mock://`` URLs give the in-process one."""
    return SchemaRegistryClient.new_client(
        (settings or RegistrySettings()).client_config()
    )


def _service_error(exc: Exception, action: str) -> ServiceError:
    status = getattr(exc, "http_status_code", -1)
    unreachable = not isinstance(exc, SchemaRegistryError) or status < 0
    return ServiceError(
        f"schema registry {'unreachable' if unreachable else 'refused'} while"
        f" {action}: {exc}",
        retriable=unreachable or status >= 500,
    )


def register(
    registry: SchemaRegistryClient,
    schema_str: str,
    subject_names: list[str],
    level: str = DEFAULT_LEVEL,
) -> list[Registration]:
    """Set ``level`` on each subject, then register ``schema_str`` (idempotent).

    The level is set first, so that the registration is already judged by it;
    registering a schema the subject holds returns its existing id.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown compatibility level {level!r}: one of {LEVELS}")
    done = []
    for subject in subject_names:
        try:
            registry.set_compatibility(subject, level)
            schema_id = registry.register_schema(subject, Schema(schema_str, "AVRO"))
            read_back = registry.get_compatibility(subject)
        except Exception as exc:
            raise _service_error(exc, f"registering {subject}") from exc
        log.info(
            "schema registered",
            extra={
                "subject": subject,
                "schema_id": schema_id,
                "compatibility": read_back,
            },
        )
        done.append(Registration(subject, schema_id, read_back))
    return done


def check(registry: SchemaRegistryClient, schema_str: str, subject: str) -> CheckResult:
    """Ask the registry whether ``schema_str`` may follow ``subject``'s latest."""
    try:
        latest = registry.get_latest_version(subject)
    except SchemaRegistryError as exc:
        if exc.error_code == SUBJECT_NOT_FOUND or exc.http_status_code == 404:
            return CheckResult(subject, registered=False, compatible=True)
        raise _service_error(exc, f"reading {subject}") from exc
    except Exception as exc:
        raise _service_error(exc, f"reading {subject}") from exc
    try:
        level = registry.get_compatibility(subject)
    except SchemaRegistryError:
        # No level of its own: the registry's global one applies.
        level = registry.get_compatibility()
    except Exception as exc:
        raise _service_error(exc, f"reading {subject}'s compatibility") from exc
    try:
        ok = registry.test_compatibility(
            subject, Schema(schema_str, "AVRO"), verbose=True
        )
    except Exception as exc:
        raise _service_error(exc, f"testing {subject}") from exc

    problems: list[str] = []
    if level == "NONE":
        ok = False
        problems.append(
            "compatibility level is NONE: the registry would accept any schema;"
            " set a level with `booking-events schemas register`"
        )
    elif not ok:
        problems.extend(
            explain(
                json.loads(latest.schema.schema_str or "{}"),
                json.loads(schema_str),
                level,
            )
        )
        if len(problems) == 0:
            problems.append(
                f"the registry reports the schema incompatible under {level}"
                " (against an older version or for a reason not explained here)"
            )
    return CheckResult(
        subject,
        registered=True,
        compatible=bool(ok),
        level=level,
        latest_version=latest.version,
        problems=tuple(problems),
    )


def explain(registered: Any, proposed: Any, level: str) -> list[str]:
    """Readable reasons why ``proposed`` breaks ``level`` against ``registered``.

    BACKWARD: the proposed schema must read data written with the registered
    one; FORWARD: the other way round; FULL: both. ``_TRANSITIVE`` levels are
    explained against the latest version only.
    """
    problems = []
    base = level.removesuffix("_TRANSITIVE")
    if base in ("BACKWARD", "FULL"):
        problems += [
            f"BACKWARD: {p}; the new schema cannot read events already written"
            for p in incompatibilities(registered, proposed, new_reads_old=True)
        ]
    if base in ("FORWARD", "FULL"):
        problems += [
            f"FORWARD: {p}; consumers on the registered schema cannot read new events"
            for p in incompatibilities(registered, proposed, new_reads_old=False)
        ]
    return problems


# Avro schema resolution (specification, "Schema Resolution"): what a reader
# schema accepts from data written with a writer schema.

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_NAMED = ("record", "enum", "fixed")


def _names(schema: Any, namespace: str | None, table: dict[str, Any]) -> None:
    """Fill ``table`` with every named type of ``schema`` by full name."""
    if isinstance(schema, list):
        for branch in schema:
            _names(branch, namespace, table)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in _NAMED:
        full = _full_name(schema, namespace)
        table[full] = schema
        namespace = full.rpartition(".")[0] or None
        for field in schema.get("fields", []):
            _names(field["type"], namespace, table)
    elif kind == "array":
        _names(schema["items"], namespace, table)
    elif kind == "map":
        _names(schema["values"], namespace, table)
    elif isinstance(kind, (dict, list)):
        _names(kind, namespace, table)


def _full_name(schema: dict[str, Any], namespace: str | None) -> str:
    name: str = schema["name"]
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


class _Resolver:
    def __init__(self, reader: Any, writer: Any, *, new_reads_old: bool) -> None:
        self.new_reads_old = new_reads_old
        self.reader_names: dict[str, Any] = {}
        self.writer_names: dict[str, Any] = {}
        _names(reader, None, self.reader_names)
        _names(writer, None, self.writer_names)
        self.seen: set[tuple[str, str]] = set()

    def deref(self, schema: Any, table: dict[str, Any]) -> Any:
        """The schema itself: a name of a defined type, or a primitive in a dict."""
        while True:
            if isinstance(schema, str):
                if schema in table:
                    return table[schema]
                short = [v for k, v in table.items() if k.rsplit(".", 1)[-1] == schema]
                return short[0] if short else schema
            if isinstance(schema, dict) and not isinstance(schema.get("type"), str):
                schema = schema["type"]
                continue
            if isinstance(schema, dict) and schema["type"] not in (
                *_NAMED,
                "array",
                "map",
            ):
                return schema["type"]
            return schema

    def kind(self, schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, dict):
            return str(schema["type"])
        return str(schema)

    def label(self, schema: Any) -> str:
        if isinstance(schema, dict) and "name" in schema:
            return f"{schema['type']} {schema['name']}"
        if isinstance(schema, list):
            return "union"
        return self.kind(schema)

    def matches(self, reader: Any, writer: Any) -> bool:
        """Whether a reader union branch is the one chosen for ``writer``."""
        rk, wk = self.kind(reader), self.kind(writer)
        if rk in _NAMED and wk == rk:
            return (
                str(reader["name"]).rsplit(".", 1)[-1]
                == str(writer["name"]).rsplit(".", 1)[-1]
            )
        if rk in ("array", "map"):
            return rk == wk
        return rk == wk or rk in _PROMOTIONS.get(wk, set())

    def check(self, reader: Any, writer: Any, path: str) -> list[str]:
        reader = self.deref(reader, self.reader_names)
        writer = self.deref(writer, self.writer_names)
        rk, wk = self.kind(reader), self.kind(writer)
        where = f"field {path}" if path else "the top-level schema"

        if wk == "union":
            problems = []
            for branch in writer:
                branch = self.deref(branch, self.writer_names)
                problems += self.check(reader, branch, path)
            return problems
        if rk == "union":
            branches = [self.deref(b, self.reader_names) for b in reader]
            chosen = next((b for b in branches if self.matches(b, writer)), None)
            if chosen is None:
                change = "removed from" if self.new_reads_old else "added to"
                return [f"{where}: {self.label(writer)} {change} the union"]
            return self.check(chosen, writer, path)

        if not self.matches(reader, writer):
            old, new = (writer, reader) if self.new_reads_old else (reader, writer)
            return [
                f"{where}: type changed from {self.label(old)} to"
                f" {self.label(new)}, which Avro cannot convert"
            ]
        if rk == "record":
            return self.record(reader, writer, path)
        if rk == "enum":
            unknown = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if unknown and "default" not in reader:
                change = "removed" if self.new_reads_old else "added"
                return [
                    f"{where}: enum {reader['name']} symbol(s)"
                    f" {', '.join(unknown)} {change}, and the reading enum has"
                    " no default"
                ]
            return []
        if rk == "fixed" and reader.get("size") != writer.get("size"):
            return [f"{where}: fixed size changed {writer['size']} -> {reader['size']}"]
        if rk == "array":
            return self.check(reader["items"], writer["items"], f"{path}[]")
        if rk == "map":
            return self.check(reader["values"], writer["values"], f"{path}{{}}")
        return []

    def record(self, reader: Any, writer: Any, path: str) -> list[str]:
        key = (str(reader["name"]), str(writer["name"]))
        if key in self.seen:  # recursive types: checked once
            return []
        self.seen.add(key)
        prefix = f"{path}." if path else ""
        if path and not path.endswith(str(reader["name"])):
            prefix = f"{path}<{reader['name']}>."
        written = {f["name"]: f for f in writer["fields"]}
        for f in writer["fields"]:
            for alias in f.get("aliases", []):
                written.setdefault(alias, f)
        problems = []
        for field in reader["fields"]:
            source = written.get(field["name"]) or next(
                (written[a] for a in field.get("aliases", []) if a in written), None
            )
            if source is None:
                if "default" not in field:
                    change = (
                        "added without a default"
                        if self.new_reads_old
                        else "removed, and the registered schema gives it no default"
                    )
                    problems.append(f"field {prefix}{field['name']}: {change}")
                continue
            problems += self.check(
                field["type"], source["type"], f"{prefix}{field['name']}"
            )
        return problems


def incompatibilities(old: Any, new: Any, *, new_reads_old: bool) -> list[str]:
    """Why one schema cannot read data of the other (parsed JSON schemas).

    ``new_reads_old``: the new schema reads data written with the old one
    (BACKWARD); otherwise the old reads the new's (FORWARD). Empty when it can.
    """
    reader, writer = (new, old) if new_reads_old else (old, new)
    return _Resolver(reader, writer, new_reads_old=new_reads_old).check(
        reader, writer, ""
    )
