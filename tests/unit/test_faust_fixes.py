"""processors.faust_fixes replaces faust's highwater lookup (see its tests in
tests/integration/test_faust_highwater.py for the broker side)."""

from __future__ import annotations

from faust.transport.drivers import aiokafka as faust_aiokafka

from processors import faust_fixes
from processors.app import create_app


def test_creating_the_app_applies_the_fix() -> None:
    from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings
    from processors.config import ProcessorSettings

    faust_aiokafka.AIOKafkaConsumerThread._highwaters = None  # type: ignore[assignment,method-assign]
    create_app(
        ProcessorSettings(), KafkaSettings(), RegistrySettings(), TopicSettings()
    )

    patched = faust_aiokafka.AIOKafkaConsumerThread._highwaters
    assert patched is faust_fixes.fresh_highwaters
