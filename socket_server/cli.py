"""The `gamesocket` command: `serve` the server, or `migrate` a Postgres database."""

from __future__ import annotations

import argparse
import atexit
import logging
import queue
import signal
import sys
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from types import FrameType

from socket_server.settings import Settings


def _serve(args: argparse.Namespace) -> int:
    from socket_server.runner import make_server

    settings = Settings.from_env(host=args.host, port=args.port, data_dir=args.data_dir)
    make_server(settings, log_level=args.log_level).run()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from socket_server.migrate import apply_migrations  # Postgres only: imported on use

    url = args.database_url or Settings.from_env().database_url
    if not url:
        print("gamesocket migrate: give --database-url or set DATABASE_URL", file=sys.stderr)
        return 2
    applied = apply_migrations(url, bootstrap_local=args.bootstrap_local)
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print("nothing to apply: the database is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gamesocket", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--data-dir", type=Path, help="embedded mode's SQLite file and secret")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", help="apply the SQL migrations to Postgres")
    migrate.add_argument("--database-url", help="postgresql://... (default: DATABASE_URL)")
    migrate.add_argument(
        "--bootstrap-local",
        action="store_true",
        help="also create the Supabase roles and auth schema on a plain local Postgres",
    )
    migrate.set_defaults(run=_migrate)
    return parser


def log_from_a_thread(level: int = logging.INFO) -> None:
    """One line per record on stderr, written by a thread: the event loop only formats
    and queues a line, so a slow stderr (a full pipe) never stalls it."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = QueueListener(lines, handler)
    # The queued record carries its message only; the writer adds time, level and name.
    logging.basicConfig(
        level=level, handlers=[QueueHandler(lines)], format="%(message)s", force=True
    )
    listener.start()
    atexit.register(listener.stop)  # writes what is still queued

    # After a graceful shutdown uvicorn re-raises SIGTERM under the handler that was in
    # place before it started; the default one would end the process before `atexit`
    # writes the queued lines. Write them first, then terminate as the signal asks.
    def write_queued_lines_then_terminate(signum: int, frame: FrameType | None) -> None:
        atexit.unregister(listener.stop)
        listener.stop()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, write_queued_lines_then_terminate)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_from_a_thread()
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
