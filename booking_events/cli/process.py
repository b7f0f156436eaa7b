"""``booking-events process``: run the stream processor in the foreground."""

from __future__ import annotations

import asyncio
import logging

import click

from booking_events.cli.main import EXIT_FAILURE
from booking_events.settings import KafkaSettings, RegistrySettings, TopicSettings

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
    if not skip_topic_check:
        check_topics(kafka, topics)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    # The worker runs the loop it is given; a fresh one keeps reruns in one
    # process (tests) independent.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = create_app(settings, kafka, RegistrySettings(), topics)
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
        "processor %s starting: %s -> %s | %s, guarantee %s",
        settings.app_id,
        topics.raw,
        topics.validated,
        topics.dead_letter,
        settings.processing_guarantee,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            log.error(
                "processor %s stopped on an error (exit %s)", settings.app_id, exc.code
            )
            ctx.exit(EXIT_FAILURE)
    log.info("processor %s stopped", settings.app_id)
