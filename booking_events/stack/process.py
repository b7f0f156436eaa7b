"""Detached service processes: pid files, logs, ports, health waits and stops.

Every service of the stack is a :class:`Service`. A subclass says how to prepare
its files, which command to run and how to tell that it answers; this module does
the rest the same way for all of them.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from booking_events.stack.config import LOOPBACK, StackPorts
from booking_events.stack.exceptions import (
    PortInUseError,
    ServiceStartError,
    StackError,
)

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Whether binding ``host:port`` fails, as it would for the service."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def port_answers(port: int, host: str = LOOPBACK, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie waiting to be reaped.

    A process whose main thread has exited shows as a zombie while its other
    threads still shut down and hold its ports and files: that one still counts
    as alive, so it is only dead when no thread is left.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return len(os.listdir(f"/proc/{pid}/task")) > 1
    return True


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file, empty when it does not exist."""
    try:
        with path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(0, stream.tell() - 64 * 1024))
            text = stream.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Service(abc.ABC):
    """One server process of the stack, detached from whoever starts it.

    Its pid is kept in ``<state>/run/<name>.pid`` and its output in
    ``<state>/logs/<name>.log``, so another process (a later ``stack down``)
    can find and stop it.
    """

    name: str

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.pid_file = state_dir / "run" / f"{self.name}.pid"
        self.log_file = state_dir / "logs" / f"{self.name}.log"
        self.ports_file = state_dir / "run" / f"{self.name}.ports.json"
        self._child: subprocess.Popen[bytes] | None = None

    # What a subclass provides.

    @property
    @abc.abstractmethod
    def ports(self) -> Mapping[str, int]:
        """The ports the service binds, keyed by their :class:`StackPorts` name."""

    @property
    @abc.abstractmethod
    def endpoint(self) -> str:
        """Where clients reach the service."""

    @property
    @abc.abstractmethod
    def data_dirs(self) -> Sequence[Path]:
        """Directories that ``fresh`` wipes."""

    @abc.abstractmethod
    def check_tools(self) -> None:
        """Raise :class:`MissingToolError` if a program the service needs is absent."""

    @abc.abstractmethod
    def install(self) -> None:
        """Fetch what is missing to run the service; fast when all is there."""

    @abc.abstractmethod
    def healthy(self) -> bool:
        """Whether the service answers requests right now."""

    @abc.abstractmethod
    def _prepare(self) -> tuple[list[str], Path, dict[str, str]]:
        """Write the service's files; return its command, cwd and environment."""

    # Lifecycle, the same for every service.

    def pid(self) -> int | None:
        """The pid of the running service started from this state dir, if any."""
        self._reap()
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not pid_alive(pid) or not self._is_ours(pid):
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def running(self) -> bool:
        """Whether the process runs (it may not answer yet)."""
        return self.pid() is not None

    def check_ports(self) -> None:
        """Raise :class:`PortInUseError` if the service is down but a port is taken.

        A running service must use the ports asked for: waiting on other ports
        would only time out.
        """
        if self.running():
            self._check_same_ports()
            return
        for field, port in self.ports.items():
            if port_in_use(port):
                raise PortInUseError(port, _env_var(field))

    def launch(self, fresh: bool = False) -> bool:
        """Start the process unless it runs already; return whether it was started.

        Does not wait for it to answer: call :meth:`wait_healthy` for that.
        """
        if fresh and self.running():
            log.info("stopping %s to start it fresh", self.name)
            self.stop()
        if self.running():
            self._check_same_ports()
            log.debug("%s already runs with pid %s", self.name, self.pid())
            return False

        self.check_tools()
        self.check_ports()
        if fresh:
            for path in self.data_dirs:
                log.info("wiping %s data in %s", self.name, path)
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)

        command, cwd, env = self._prepare()
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            out.write(f"\n=== {time.ctime()} starting: {command}\n".encode())
            out.flush()
            self._child = subprocess.Popen(
                command,
                cwd=cwd,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._child.pid}\n")
        self.ports_file.write_text(json.dumps(dict(self.ports)) + "\n")
        log.info(
            "started %s",
            self.name,
            extra={"pid": self._child.pid, "log": str(self.log_file)},
        )
        return True

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        """Block until the service answers; raise :class:`ServiceStartError` if not."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.healthy():
                log.info("%s is healthy at %s", self.name, self.endpoint)
                return
            if not self.running():
                raise ServiceStartError(
                    self.name, "its process exited", tail(self.log_file)
                )
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    self.name,
                    f"no answer at {self.endpoint} within {timeout_s:.0f}s",
                    tail(self.log_file),
                )
            time.sleep(POLL_INTERVAL_S)

    def start(self, fresh: bool = False, timeout_s: float = 120.0) -> None:
        """Start the service (or find it running) and wait until it answers."""
        self.launch(fresh=fresh)
        self.wait_healthy(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the service's process group, SIGKILL it after ``timeout_s``."""
        pid = self.pid()
        if pid is None:
            self._reap()
            log.debug("%s is not running", self.name)
            return

        log.info("stopping %s", self.name, extra={"pid": pid})
        _signal_group(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout_s):
            log.warning(
                "%s ignored SIGTERM for %.0f s; killing it (unflushed data lost)",
                self.name,
                timeout_s,
                extra={"pid": pid},
            )
            _signal_group(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10.0):
                raise StackError(f"{self.name} pid={pid} survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        self.ports_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the service at once, as a crash would (for fault tests)."""
        pid = self.pid()
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
            self.pid_file.unlink(missing_ok=True)

    # Helpers.

    def _is_ours(self, pid: int) -> bool:
        """Whether ``pid`` runs a command naming this state dir (not a reused pid)."""
        if self._child is not None and self._child.pid == pid:
            return True
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True  # no /proc: trust the pid file
        # Right after exec the kernel shows an empty command line for a moment.
        return not cmdline or str(self.state_dir).encode() in cmdline

    def _check_same_ports(self) -> None:
        try:
            running = json.loads(self.ports_file.read_text())
        except (OSError, ValueError):
            return
        if running != dict(self.ports):
            raise StackError(
                f"{self.name} already runs from {self.state_dir} with ports {running}, "
                f"not {dict(self.ports)}: stop it first (booking-events stack down) "
                "or use the same ports"
            )

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._reap()
            if not pid_alive(pid):
                return True
            time.sleep(POLL_INTERVAL_S / 2)
        return False

    def _reap(self) -> None:
        if self._child is not None and self._child.poll() is not None:
            self._child = None


def stop_all(services: Sequence[Service], timeout_s: float) -> None:
    """Stop services at the same time.

    One by one, the last Kafka node of a cluster would wait for a controller
    quorum that is gone until its grace period ran out.
    """
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        for future in [pool.submit(s.stop, timeout_s) for s in services]:
            future.result()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _env_var(field: str) -> str | None:
    return StackPorts.env_var(field) if field in StackPorts.names() else None
