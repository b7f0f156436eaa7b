"""Settings of the ClickHouse sink, read from ``BOOKING_EVENTS_SINK_*``.

Brokers, registry, ClickHouse endpoint and topic names come from
``booking_events.settings``; this class holds only what is particular to the
sink: its consumer group, how it batches and how long it retries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from booking_events.settings import ENV_PREFIX


class SinkSettings(BaseSettings):
    """How the sink consumes, batches and writes.

    A flush happens when ``batch_max_rows`` rows are pending or the oldest
    pending record is ``batch_max_ms`` old, whichever comes first.
    """

    model_config = SettingsConfigDict(
        env_prefix=f"{ENV_PREFIX}SINK_",
        frozen=True,
        extra="forbid",
        case_sensitive=False,
    )

    group_id: str = Field(
        "booking-events-sink",
        min_length=1,
        description="Kafka consumer group; its committed offsets say what is stored.",
    )
    table: str = Field(
        "booking_events",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Table of the events, in BOOKING_EVENTS_CLICKHOUSE_DATABASE.",
    )
    create_views: bool = Field(
        True, description="Create or replace the analysts' views at start."
    )
    batch_max_rows: int = Field(
        10_000,
        ge=1,
        le=500_000,
        description="Rows pending across partitions that trigger a flush. Kept"
        " well below ClickHouse's min_insert_block_size_rows so that every"
        " insert stays one block.",
    )
    batch_max_ms: int = Field(
        500, ge=1, description="Age of the oldest pending record that triggers a flush."
    )
    poll_timeout_ms: int = Field(
        100, ge=1, description="Longest wait for records in one consume call."
    )
    insert_retry_max_s: float = Field(
        300.0,
        gt=0,
        description="How long one insert (or any ClickHouse call) is retried while"
        " ClickHouse is unreachable before the sink stops, seconds.",
    )
    insert_backoff_initial_ms: int = Field(
        200, ge=1, description="First pause between retries; doubles each time."
    )
    insert_backoff_max_ms: int = Field(
        10_000, ge=1, description="Longest pause between two retries."
    )
    decode_failure: Literal["dead_letter", "stop"] = Field(
        "dead_letter",
        description="What to do with a record of the validated topic that does not"
        " decode: send it to the dead-letter topic (reason sink_decode_failed)"
        " or stop the sink.",
    )
    delivery_timeout_ms: int = Field(
        30_000, ge=1, description="How long a dead-letter delivery may take."
    )
    commit_timeout_s: float = Field(
        30.0, gt=0, description="How long a synchronous offset commit may take."
    )
    session_timeout_ms: int = Field(
        45_000, ge=1, description="Kafka consumer session timeout."
    )
    deduplication: bool = Field(
        True,
        description="Diagnostic switch for the negative-control fault test ONLY:"
        " false turns off the stored-offset check and the insert deduplication"
        " token, so a crash between insert and commit stores rows twice. Never"
        " set it in production.",
    )
    test_pause_at: Literal["before_insert", "during_insert", "after_insert"] | None = (
        Field(
            None,
            description="Test only, off by default: at this point of a flush the"
            " sink writes test_marker and sleeps test_pause_s, so a fault test can"
            " signal it exactly there. before_insert: after the stored-offset"
            " check, before the first insert request. during_insert: the first"
            " insert's body is on the wire and the request is not finished."
            " after_insert: every row is stored, no offset committed.",
        )
    )
    test_marker: Path | None = Field(
        None, description="Test only: file written when test_pause_at is reached."
    )
    test_pause_s: float = Field(
        60.0, ge=0, description="Test only: how long the pause lasts, seconds."
    )
    test_pause_after_rows: int = Field(
        0,
        ge=0,
        description="Test only: pause at the first flush after this process"
        " inserted at least this many rows (0: the first flush).",
    )

    @model_validator(mode="after")
    def _backoff_bounds(self) -> SinkSettings:
        if self.insert_backoff_initial_ms > self.insert_backoff_max_ms:
            raise ValueError(
                "insert_backoff_initial_ms must not exceed insert_backoff_max_ms"
            )
        return self

    def max_poll_interval_ms(self) -> int:
        """Kafka's max.poll.interval.ms: longer than the longest retry.

        A flush runs inside the poll loop (and inside the revoke callback), so
        the group must not evict the sink while it waits for ClickHouse.
        """
        return max(300_000, int((self.insert_retry_max_s + 60) * 1000))
