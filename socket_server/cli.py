"""gamesocket, the multiplayer game-state server.

Commands: "serve" runs the server (games over WebSockets and REST, the web page at /);
"migrate" applies the SQL migrations to a Postgres database. "gamesocket serve --help"
lists its flags and the environment variables it reads.
"""

from __future__ import annotations

import argparse
import gc
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from socket_server.logs import LOG_FORMATS, configure_logging
from socket_server.settings import ENVIRONMENT, Settings

# The cyclic garbage collector, for a server: every move allocates a few hundred
# short-lived objects (nearly all freed by reference counting), and a full collection
# walks every socket's objects. Collections this much rarer took 10-13% off the server
# CPU per move in the throughput bench (docs/benchmarks.md, "What a move costs").
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Move what is alive now (modules, the app) out of the collector's sight for good,
    and collect the young generations less often (`GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _serve(args: argparse.Namespace) -> int:
    from socket_server.runner import AppSpecError, build_app, make_server

    settings = Settings.from_env(host=args.host, port=args.port, data_dir=args.data_dir)
    try:
        app = build_app(settings, args.app)
    except AppSpecError as error:
        print(f"gamesocket serve: {error}", file=sys.stderr)
        return 2
    server = make_server(settings, app, log_level=args.log_level)
    tune_gc()
    server.run()
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


def _version() -> str:
    try:
        return version("gamesocket")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def environment_help(width: int = 100) -> str:
    """The environment variables of `ENVIRONMENT`, one per entry, for `serve --help`."""
    column = max(len(name) for name, _ in ENVIRONMENT) + 4
    lines = ["environment variables (the flags above override them):"]
    for name, meaning in ENVIRONMENT:
        wrapped = textwrap.wrap(meaning, width - column) or [""]
        lines.append(f"  {name:<{column - 2}}{wrapped[0]}")
        lines.extend(" " * column + more for more in wrapped[1:])
    return "\n".join(lines)


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the server under uvicorn until SIGINT or SIGTERM.",
        epilog=environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--data-dir", type=Path, help="embedded mode's SQLite file and secret")
    serve.add_argument(
        "--app",
        action="append",
        metavar="MODULE:ATTR",
        help=(
            "mount your own games: imports MODULE (the current directory comes first on"
            " the module path) and calls ATTR with the app before serving it; ATTR calls"
            " GameSocketFactory().create_socket(app, ...). May be given more than once"
        ),
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning"],
        help=(
            "uvicorn's own lines: info adds one per request and socket handshake, debug"
            " more (default info); the server's lines are always logged from info up"
        ),
    )
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text, or json for one JSON object per line (default: GAMESOCKET_LOG_FORMAT, text)",
    )
    serve.set_defaults(run=_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gamesocket",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gamesocket {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    migrate = commands.add_parser("migrate", help="apply the SQL migrations to Postgres")
    migrate.add_argument("--database-url", help="postgresql://... (default: DATABASE_URL)")
    migrate.add_argument(
        "--bootstrap-local",
        action="store_true",
        help="also create the Supabase roles and auth schema on a plain local Postgres",
    )
    migrate.set_defaults(run=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging("info", getattr(args, "log_format", None))
    except ValueError as error:
        print(f"gamesocket: {error}", file=sys.stderr)
        return 2
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
