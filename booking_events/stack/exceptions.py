"""Errors of the local stack; each message says what to do about it."""

from __future__ import annotations

from booking_events.exceptions import BookingEventsError

CHDB_INSTALL_HINT = "pip install 'booking-events[local]'"


class StackError(BookingEventsError):
    """The local stack could not be installed, started or stopped."""


class MissingToolError(StackError):
    """A program the stack needs (Java, Maven, chdb-core) is not available."""


class PortInUseError(StackError):
    """A port a service must bind is already taken by another process."""

    def __init__(self, port: int, env_var: str | None) -> None:
        hint = f" or set {env_var}" if env_var else ""
        super().__init__(f"port {port} is in use: stop what holds it{hint}")
        self.port = port
        self.env_var = env_var


class ServiceStartError(StackError):
    """A service did not become healthy; the message ends with its last log lines."""

    retriable = True

    def __init__(self, service: str, reason: str, log_tail: str) -> None:
        message = f"{service} did not start: {reason}"
        if log_tail:
            message += f"\n--- last lines of its log ---\n{log_tail}"
        super().__init__(message)
        self.service = service
