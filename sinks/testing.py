"""Test-only pause points of the sink; all off unless BOOKING_EVENTS_SINK_TEST_*.

The fault tests (tests/faults/test_sink_faults.py) need the sink to stand
still at an exact point of a flush, so that a real SIGKILL or SIGSTOP lands
there and not somewhere near it. With ``test_pause_at`` set, the first flush
after ``test_pause_after_rows`` rows reaches that point, writes
``test_marker`` (its text is the point and the pid) and sleeps
``test_pause_s``; the test waits for the file and sends its signal. A pause
happens once per process.

``during_insert`` pauses inside the first insert request of the flush: the
request line, the headers and the first chunk of the body (for our blocks,
the whole Native-format block) are on the wire and the server is running the
INSERT (see ``insert_settings``), but the chunked body is not finished, so
ClickHouse has not committed anything. Killing the sink there is a crash
during the insert as the server sees it: the connection drops mid-request.
The pause wraps the driver's body generator
(``client._transform.build_insert``), a private attribute of
clickhouse-connect; it is touched only when this test switch is on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from sinks.config import SinkSettings

log = logging.getLogger(__name__)


class PausePoints:
    """Where and when a test asked the sink to stand still.

    Args:
        settings: The sink's settings; only the ``test_*`` fields are read.
    """

    def __init__(self, settings: SinkSettings) -> None:
        self._at = settings.test_pause_at
        self._marker = settings.test_marker
        self._pause_s = settings.test_pause_s
        self._after_rows = settings.test_pause_after_rows
        self._done = False

    def armed(self, point: str, rows_inserted: int) -> bool:
        """Whether reaching ``point`` now pauses."""
        return (
            not self._done and self._at == point and rows_inserted >= self._after_rows
        )

    def reached(self, point: str, rows_inserted: int) -> None:
        """Pause here if a test asked for ``point``."""
        if not self.armed(point, rows_inserted):
            return
        self._done = True
        log.warning(
            "TEST pause",
            extra={"point": point, "pid": os.getpid(), "seconds": self._pause_s},
        )
        if self._marker is not None:
            self._marker.write_text(f"{point} {os.getpid()}\n")
        time.sleep(self._pause_s)
        log.warning("TEST pause over", extra={"point": point, "pid": os.getpid()})

    def insert_settings(self, rows_inserted: int) -> dict[str, int]:
        """Extra settings of the insert that ``inside_insert`` will pause.

        ClickHouse reads the start of an HTTP body as part of the query text,
        up to max_query_size (256 KiB) or the end of the body, before it runs
        the INSERT. A small cap lets the server start the INSERT on the first
        chunk, so the pause is inside a running INSERT, as system.processes
        shows; without it the server would only be waiting for the body.
        """
        if not self.armed("during_insert", rows_inserted):
            return {}
        return {"max_query_size": 4096}

    @contextlib.contextmanager
    def inside_insert(self, client: Any, rows_inserted: int) -> Iterator[None]:
        """Pause after the first body chunk of the next insert request is sent."""
        if not self.armed("during_insert", rows_inserted):
            yield
            return
        transform = client._transform
        original: Callable[..., Generator[bytes, None, None]] = transform.build_insert

        def build_insert(
            context: Any, error_handler: Any = None
        ) -> Generator[bytes, None, None]:
            for number, chunk in enumerate(original(context, error_handler)):
                yield chunk
                if number == 0:
                    # The driver asks for the next chunk only after sending this one.
                    self.reached("during_insert", rows_inserted)

        transform.build_insert = build_insert
        try:
            yield
        finally:
            del transform.build_insert
