"""``booking-events process``: run the stream processor in the foreground."""

from __future__ import annotations

import asyncio
import logging

import click

from booking_events import metrics
from booking_events.cli.main import EXIT_FAILURE
from booking_events.exceptions import ConfigurationError
from booking_events.settings import (
    KafkaSettings,
    MetricsSettings,
    RegistrySettings,
    TopicSettings,
)

log = logging.getLogger(__name__)


@click.command("process")
@click.option(
    "--skip-topic-check",
    is_flag=True,
    help="Start without checking that the topics exist with the right partitions.",
)
@click.pass_context
def command(ctx: click.Context, skip_topic_check: bool) -> None:
    """Validate raw events and route them to the validated or dead-letter topic.

    Runs one faust worker until SIGTERM or SIGINT, then commits what it
    processed and exits 0. Start several with the same
    BOOKING_EVENTS_PROCESSOR_APP_ID to share the partitions.
    """
    import faust

    from processors.app import create_app
    from processors.config import ProcessorSettings
    from processors.preflight import check_topics

    settings = ProcessorSettings()
    kafka, topics = KafkaSettings(), TopicSettings()
    metrics_settings = MetricsSettings()
    if metrics_settings.port and metrics_settings.port == settings.web_port:
        raise ConfigurationError(
            f"BOOKING_EVENTS_METRICS_PORT and BOOKING_EVENTS_PROCESSOR_WEB_PORT are"
            f" both {settings.web_port}: faust's web server and the metrics"
            " endpoint need distinct ports"
        )
    if not skip_topic_check:
        check_topics(kafka, topics)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    # The worker runs the loop it is given; a fresh one keeps reruns in one
    # process (tests) independent.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = create_app(settings, kafka, RegistrySettings(), topics, metrics_settings)
    metrics.serve(metrics_settings, role="processor")
    debug = bool(ctx.obj and ctx.obj.get("debug"))
    worker = faust.Worker(
        app,
        loop=loop,
        loglevel=logging.DEBUG if debug else logging.INFO,
        override_logging=False,
        redirect_stdouts=False,
        quiet=True,
    )
    # The progress spinner writes terminal escapes into the logs.
    worker.spinner = None
    log.info(
        "processor starting",
        extra={
            "app_id": settings.app_id,
            "topic": topics.raw,
            "validated_topic": topics.validated,
            "dead_letter_topic": topics.dead_letter,
            "guarantee": settings.processing_guarantee,
        },
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            log.error(
                "processor stopped on an error",
                extra={"app_id": settings.app_id, "exit_code": exc.code},
            )
            ctx.exit(EXIT_FAILURE)
    log.info("processor stopped", extra={"app_id": settings.app_id})
