"""A ClickHouse server from the chdb-core wheel, for the local stack.

Run as ``python -m booking_events.stack.clickhouse_server --path DATA_DIR
--http-port P --tcp-port Q``. It writes ``config.xml`` into the current
directory (the engine reads it from there), opens the HTTP and native TCP
listeners on 127.0.0.1 and then runs a query that never ends, which keeps the
engine, and so the listeners, alive until the process is signalled.

Opening listeners this way is not a documented chdb API, which is why the
``local`` extra pins chdb-core to one version. One process per data directory:
a second one fails with "Cannot lock file".
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import metadata
from pathlib import Path
from xml.sax.saxutils import escape

from booking_events.stack.exceptions import CHDB_INSTALL_HINT

log = logging.getLogger(__name__)

CHDB_VERSION = "26.9.0"

CONFIG = """<clickhouse>
    <listen_host>{host}</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
</clickhouse>
"""

# Each row sleeps one second, one row per block, over more rows than seconds
# in the life of any machine.
SERVE_FOREVER = (
    "SYSTEM START LISTEN HTTP; "
    "SYSTEM START LISTEN TCP; "
    "SELECT sleepEachRow(1) FROM numbers(1000000000000000) "
    "SETTINGS max_block_size = 1, max_execution_time = 0 FORMAT Null"
)


def write_config(directory: Path, host: str, http_port: int, tcp_port: int) -> Path:
    """Write the listener part of ``config.xml`` into ``directory``."""
    path = directory / "config.xml"
    path.write_text(
        CONFIG.format(host=escape(host), http_port=http_port, tcp_port=tcp_port)
    )
    return path


def serve(data_dir: Path, http_port: int, tcp_port: int, host: str) -> int:
    """Open the listeners and block; return an exit code when the engine stops."""
    try:
        version = metadata.version("chdb-core")
        from chdb import _chdb
    except (metadata.PackageNotFoundError, ImportError):
        log.error("chdb-core is not installed: %s", CHDB_INSTALL_HINT)
        return 2
    if version != CHDB_VERSION:
        log.warning(
            "chdb-core %s is installed but %s is tested; the listeners may not open",
            version,
            CHDB_VERSION,
        )

    data_dir.mkdir(parents=True, exist_ok=True)
    config = write_config(Path.cwd(), host, http_port, tcp_port)
    log.info(
        "ClickHouse serving",
        extra={
            "data_dir": str(data_dir),
            "http": f"{host}:{http_port}",
            "tcp": f"{host}:{tcp_port}",
            "config": str(config),
        },
    )
    try:
        _chdb.query(SERVE_FOREVER, "TabSeparated", path=str(data_dir))  # type: ignore[attr-defined]
    except Exception:
        log.exception("ClickHouse engine stopped with an error")
        return 1
    log.error("ClickHouse keep-alive query ended; the server stops")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, required=True, help="data directory")
    parser.add_argument("--http-port", type=int, default=8123)
    parser.add_argument("--tcp-port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    return serve(args.path.resolve(), args.http_port, args.tcp_port, args.host)


if __name__ == "__main__":
    sys.exit(main())
