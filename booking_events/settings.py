"""Connection settings shared by every stage, read from ``BOOKING_EVENTS_*``.

Each group reads its own prefix below ``BOOKING_EVENTS_``:

* ``BOOKING_EVENTS_KAFKA_*``: brokers and their security (TLS, SASL);
* ``BOOKING_EVENTS_REGISTRY_*``: the Confluent-compatible Schema Registry;
* ``BOOKING_EVENTS_CLICKHOUSE_*``: the ClickHouse HTTP endpoint;
* ``BOOKING_EVENTS_TOPIC_*``: topic names and layout;
* ``BOOKING_EVENTS_METRICS_*``: the Prometheus endpoint of each process;
* ``BOOKING_EVENTS_LOG_*``: the format of log lines.

Settings are frozen; secrets are ``SecretStr`` so they never reach a log line or
a ``repr``. pydantic-settings ignores variables it has no field for, so
:func:`check_environment` (called by the command line before any subcommand)
rejects every ``BOOKING_EVENTS_*`` variable that no settings class reads, and
:func:`check_values` every value that its settings class refuses.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from booking_events.exceptions import ConfigurationError

ENV_PREFIX = "BOOKING_EVENTS_"


def _config(section: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=f"{ENV_PREFIX}{section}",
        frozen=True,
        extra="forbid",
        case_sensitive=False,
    )


def _http_url(value: str, also: tuple[str, ...] = ()) -> str:
    """Accept only an absolute http(s) URL: given anything else (a bare
    ``host:port``), clickhouse-connect quietly falls back to 127.0.0.1:8123."""
    parts = urlsplit(value)
    if parts.scheme in also:
        return value
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The value is not repeated: a URL may carry credentials.
        raise ValueError("expected an http:// or https:// URL with a host name")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
"""An absolute http(s) URL, kept as the string it was given."""

RegistryUrl = Annotated[str, AfterValidator(lambda v: _http_url(v, also=("mock",)))]
"""An http(s) URL, or ``mock://name``: confluent-kafka's in-process registry,
which the unit tests use."""


class KafkaSettings(BaseSettings):
    """Where the brokers are and how to authenticate to them."""

    model_config = _config("KAFKA_")

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of brokers."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        Field("PLAINTEXT", description="How clients talk to the brokers.")
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when security_protocol uses SASL."
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = Field(
        None, description="Path of the CA bundle that signed the brokers' certificates."
    )
    ssl_certificate_location: str | None = Field(
        None, description="Client certificate (PEM) for mutual TLS."
    )
    ssl_key_location: str | None = Field(
        None, description="Private key (PEM) of the client certificate."
    )

    def librdkafka(self) -> dict[str, Any]:
        """Return the connection part of a confluent-kafka (librdkafka) config."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        if self.ssl_certificate_location:
            conf["ssl.certificate.location"] = self.ssl_certificate_location
        if self.ssl_key_location:
            conf["ssl.key.location"] = self.ssl_key_location
        return conf


class RegistrySettings(BaseSettings):
    """The Schema Registry, reached through its Confluent-compatible API."""

    model_config = _config("REGISTRY_")

    url: RegistryUrl = Field(
        "http://127.0.0.1:8081/apis/ccompat/v7",
        description="Base URL of the Confluent-compatible API.",
    )
    basic_auth_user_info: SecretStr | None = Field(
        None, description="'user:password' for HTTP basic authentication."
    )
    ssl_ca_location: str | None = None

    def client_config(self) -> dict[str, Any]:
        """Return a config dict for ``confluent_kafka.schema_registry``."""
        conf: dict[str, Any] = {"url": self.url}
        if self.basic_auth_user_info is not None:
            conf["basic.auth.user.info"] = self.basic_auth_user_info.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf


class ClickHouseSettings(BaseSettings):
    """The ClickHouse server the sink writes to and analysts query."""

    model_config = _config("CLICKHOUSE_")

    url: HttpUrl = Field("http://127.0.0.1:8123", description="HTTP(S) endpoint.")
    database: str = Field("booking_events", description="Database of the tables.")
    username: str = "default"
    password: SecretStr = SecretStr("")
    connect_timeout_s: float = Field(10.0, description="Connect timeout, seconds.")
    send_receive_timeout_s: float = Field(
        300.0, description="Timeout of one request, seconds."
    )

    def client_kwargs(self) -> dict[str, Any]:
        """Return keyword arguments for ``clickhouse_connect.get_client``."""
        return {
            "dsn": self.url,
            "username": self.username,
            "password": self.password.get_secret_value(),
            "connect_timeout": self.connect_timeout_s,
            "send_receive_timeout": self.send_receive_timeout_s,
        }


class TopicSettings(BaseSettings):
    """Topic names and the layout the `topics create` command gives them."""

    model_config = _config("TOPIC_")

    raw: str = Field("booking-events.raw", description="Events as producers emit them.")
    validated: str = Field(
        "booking-events.validated", description="Events that passed validation."
    )
    dead_letter: str = Field(
        "booking-events.dead-letter",
        description="Events that failed, with the reason in their headers.",
    )
    partitions: int = Field(6, ge=1, description="Partitions of each topic.")
    replication_factor: int = Field(1, ge=1, description="Copies of each partition.")


class MetricsSettings(BaseSettings):
    """Where a long-running process serves its Prometheus metrics."""

    model_config = _config("METRICS_")

    port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of the /metrics endpoint; 0 (the default) serves none."
        " Processes on one host need distinct ports; `pipeline` gives its"
        " processor port+1 and its sink port+2.",
    )
    bind: str = Field(
        "127.0.0.1",
        description="Address the endpoint binds; 0.0.0.0 to be scraped from"
        " other hosts or containers.",
    )
    lag_interval_s: float = Field(
        5.0, gt=0, description="How often consumer lag gauges are refreshed, seconds."
    )


class LogSettings(BaseSettings):
    """How log lines are written (to stderr, one event per line)."""

    model_config = _config("LOG_")

    format: Literal["text", "json"] = Field(
        "text",
        description="text: time, level, logger, message, then key=value pairs;"
        " json: one JSON object per line with the same fields.",
    )


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class that reads ``BOOKING_EVENTS_*`` variables."""
    # Imported here: the stage packages import this module for ENV_PREFIX.
    from booking_events.stack.config import StackSettings
    from processors.config import ProcessorSettings
    from producers.config import ProducerSettings
    from sinks.config import SinkSettings

    return [
        KafkaSettings,
        RegistrySettings,
        ClickHouseSettings,
        TopicSettings,
        MetricsSettings,
        LogSettings,
        ProducerSettings,
        ProcessorSettings,
        SinkSettings,
        StackSettings,
    ]


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Upper-case names of the variables ``cls`` reads."""
    prefix = cls.model_config.get("env_prefix", "")
    return {f"{prefix}{field}".upper() for field in cls.model_fields}


def known_env_names() -> set[str]:
    """Upper-case names of every variable some settings class reads."""
    return set().union(*(env_names(cls) for cls in settings_classes()))


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Reject ``BOOKING_EVENTS_*`` variables that no settings class reads.

    pydantic-settings ignores environment variables it has no field for, even
    with ``extra="forbid"``, so a misspelt name would silently leave the
    default in place. Only names are reported, never values (they may be
    secrets).

    Raises:
        ConfigurationError: Naming each unknown variable and the closest known one.
    """
    environ = os.environ if environ is None else environ
    known = known_env_names()
    unknown = sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
    )
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{name}{hint}")
    raise ConfigurationError(
        f"unknown variable{'s' if len(unknown) > 1 else ''} {', '.join(problems)}:"
        f" no setting reads {'them' if len(unknown) > 1 else 'it'}; rename or unset"
        f" (the {ENV_PREFIX}* names are listed in README.md, Configuration)"
    )


def check_values() -> None:
    """Validate every settings group that has a ``BOOKING_EVENTS_*`` variable set.

    Each command reads only the groups it needs, so without this a bad value in
    another group (``BOOKING_EVENTS_METRICS_PORT=abc`` while running
    ``status``) would go unnoticed until a process that reads it starts.

    Raises:
        pydantic.ValidationError: For the first group holding a bad value
            (:func:`describe_validation_error` names its variables).
    """
    present = {
        name.upper() for name in os.environ if name.upper().startswith(ENV_PREFIX)
    }
    for cls in settings_classes():
        if env_names(cls) & present:
            cls()


def describe_validation_error(exc: ValidationError) -> str:
    """One line per invalid setting, naming its variable; never the value."""
    model = exc.title
    prefix = ENV_PREFIX
    for cls in settings_classes():
        if cls.__name__ == model:
            prefix = cls.model_config.get("env_prefix", ENV_PREFIX)
            break
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        field = "_".join(str(part) for part in error["loc"][:1])
        lines.append(f"{prefix}{field}".upper() + f": {error['msg']}")
    return "invalid setting: " + "; ".join(lines)
