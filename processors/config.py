"""Settings of the stream processor, read from ``BOOKING_EVENTS_PROCESSOR_*``.

Brokers, registry and topic names come from ``booking_events.settings``; this
class holds only what is particular to the processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from booking_events.settings import ENV_PREFIX


class ProcessorSettings(BaseSettings):
    """How the faust worker runs.

    The processor has no agent concurrency setting on purpose: two concurrent
    agents on one partition would reorder a booking's events and race on its
    state. Scale out by running more processes in the same group instead; up
    to one per partition of the raw topic does work.
    """

    model_config = SettingsConfigDict(
        env_prefix=f"{ENV_PREFIX}PROCESSOR_",
        frozen=True,
        extra="forbid",
        case_sensitive=False,
    )

    app_id: str = Field(
        "booking-events-processor",
        min_length=1,
        description="Faust app id: the consumer group and the prefix of the"
        " changelog topic of the state table.",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "exactly_once",
        description="exactly_once writes outputs, state and source offsets in"
        " one Kafka transaction per source partition: consumers reading with"
        " isolation.level=read_committed see every event once, also after a"
        " crash. at_least_once may emit duplicates after a crash.",
    )
    web_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of faust's web server (table views, stats);"
        " unset disables it, so several workers can share a host.",
    )
    web_bind: str = Field("127.0.0.1", description="Address the web server binds.")
    data_dir: Path = Field(
        Path(".state/processor"),
        description="Faust's data directory (table state when not in memory).",
    )
    commit_interval_s: float = Field(
        2.8,
        gt=0,
        description="How often processed offsets are committed, seconds; under"
        " exactly_once also how often outputs become visible to read_committed"
        " consumers (one transaction per source partition per commit). Keep it"
        " well below the producers' transaction timeout (60 s), past which the"
        " broker aborts the open transaction and the worker stops.",
    )
    session_timeout_s: float = Field(
        60.0,
        gt=0,
        description="How long the group waits for a silent worker before giving"
        " its partitions to another, seconds: after a crash, the restarted"
        " worker gets its partitions back only then.",
    )
    max_poll_records: int | None = Field(
        None, ge=1, description="Records fetched per poll; unset: aiokafka default."
    )
    producer_linger_ms: int = Field(
        100,
        ge=0,
        description="How long outputs wait to fill a batch, milliseconds. Under"
        " exactly_once outputs are visible only at the next commit anyway, so a"
        " long linger costs no latency; it halved the processor's CPU per event"
        " against 5 ms.",
    )
    registry_timeout_s: float = Field(
        10.0, gt=0, description="Timeout of one Schema Registry request, seconds."
    )
    registry_retry_initial_ms: int = Field(
        200, ge=1, description="First wait before retrying an unavailable registry."
    )
    registry_retry_max_ms: int = Field(
        10_000, ge=1, description="Longest wait between registry retries."
    )
    delivery_timeout_s: float = Field(
        120.0,
        gt=0,
        description="How long an output record may stay unacknowledged before"
        " the processor stops so that the event is re-read after a restart.",
    )
