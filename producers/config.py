"""Producer settings, read from ``BOOKING_EVENTS_PRODUCER_*``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProducerSettings(BaseSettings):
    """How events are sent. Delivery guarantees are not configurable: the
    producer is always idempotent with ``acks=all``."""

    model_config = SettingsConfigDict(
        env_prefix="BOOKING_EVENTS_PRODUCER_", frozen=True, extra="forbid"
    )

    source: str = Field(
        "booking-events", description="Written into events whose source is empty."
    )
    auto_register_schema: bool = Field(
        True,
        description="Register the event schema when the registry lacks it. "
        "Production deployments set false and register schemas ahead of time.",
    )
    linger_ms: int = Field(5, ge=0, description="Wait this long to fill a batch.")
    buffer_max_messages: int = Field(
        100_000, ge=1, description="Events held in memory before emit() blocks."
    )
    buffer_full_timeout_ms: int = Field(
        30_000, ge=0, description="How long emit() blocks on a full buffer."
    )
    delivery_timeout_ms: int = Field(
        120_000, ge=1, description="Give up on an undelivered event after this."
    )
    close_timeout_ms: int = Field(
        30_000, ge=0, description="How long close() waits for pending deliveries."
    )
    compression: str = Field(
        "lz4", description="Batch compression codec (every consumer must read it)."
    )
