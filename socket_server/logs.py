"""The server's log lines: written by a thread, as text or JSON, never with a token.

`configure_logging(level, fmt)` is what `gamesocket serve` does before it starts, and
what a program that runs the server itself calls first:

- one line per record on stderr, written by a thread: the event loop only formats the
  message and queues it, so a slow stderr (a full pipe) never stalls it;
- `fmt="text"`: `<time> <LEVEL> <logger> <message>`; `fmt="json"`: one JSON object per
  line with `ts` (ISO 8601, UTC), `level`, `logger`, `message` and, when there is one,
  `exception` (the traceback text). The default is GAMESOCKET_LOG_FORMAT, else text;
- a socket costs no INFO line of its own: gamesocket's `socket open`/`socket closed`
  and websockets' `connection open`/`connection closed` are DEBUG (uvicorn's
  `"WebSocket <path>" [accepted]` access line stays); so is each stored move (the
  other changes, a game's end included, stay INFO);
- access tokens never reach a line: the values of `token=` (and `access_token=`, ...)
  and whatever follows `Bearer ` are replaced by `[redacted]` in every record's
  message and exception text (uvicorn's access lines carry `/ws/...?token=<JWT>`).
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import os
import queue
import re
import signal
import threading
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from types import FrameType

LOG_FORMAT_ENV = "GAMESOCKET_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
REDACTED = "[redacted]"

# `token=<value>` in a query string (also access_token=, refresh_token=, ...).
_TOKEN_PARAMETER = re.compile(r"(?i)\b([\w-]*token=)[^&\s\"'#;,]+")
# `Bearer <value>` as in an Authorization header.
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"'&;,]+")

_exception_formatter = logging.Formatter()
_listener: QueueListener | None = None


def redact(text: str) -> str:
    """`text` with the values of token parameters and bearer credentials replaced."""
    lowered = text.lower()
    if "token=" not in lowered and "bearer" not in lowered:
        return text  # the common case, without running the expressions
    text = _TOKEN_PARAMETER.sub(rf"\g<1>{REDACTED}", text)
    return _BEARER.sub(rf"\g<1>{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Redacts tokens in a record's message (its arguments included) and exception text.

    Installed on the handler of the root logger, so it sees every record that is
    written, whichever logger it came from.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed call: the handler reports it as logging does
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# websockets' own lines for every socket, through uvicorn's logger: they say nothing
# that the `[accepted]` line and gamesocket's DEBUG lines do not.
_SOCKET_CHATTER = frozenset({"connection open", "connection closed"})


class QuietSocketChatter(logging.Filter):
    """Drops websockets' per-socket `connection open`/`connection closed` INFO lines
    unless the root logger writes DEBUG (then they are written as DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.msg not in _SOCKET_CHATTER:
            return True
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message[, exception][, stack]."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, str] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line)


class _LineQueue(QueueHandler):
    """Queues a record with its message formatted and its traceback as text.

    Unlike QueueHandler's own `prepare`, which folds the traceback into the message,
    the two stay apart: the JSON line has them as two fields.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = _exception_formatter.formatException(record.exc_info)
        queued = copy.copy(record)  # other handlers still see the original
        queued.msg = queued.message = message
        queued.args = None
        queued.exc_info = None
        return queued


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def log_format_from_env() -> str:
    """GAMESOCKET_LOG_FORMAT, or `text` when it is unset or empty."""
    return os.environ.get(LOG_FORMAT_ENV) or "text"


def configure_logging(level: int | str = "info", fmt: str | None = None) -> None:
    """Send every log record (from `level` up) to stderr through a writer thread.

    `level` is a number or a name (`debug`, `info`, `warning`, `error`); `fmt` is
    `text` or `json` (None: GAMESOCKET_LOG_FORMAT, else text). Replaces the root
    logger's handlers; calling it again replaces the previous configuration.
    """
    chosen = fmt or log_format_from_env()
    if chosen not in LOG_FORMATS:
        source = "" if fmt else f"{LOG_FORMAT_ENV}: "
        raise ValueError(f"{source}the log format is text or json, not {chosen!r}")
    if isinstance(level, str):
        names = logging.getLevelNamesMapping()
        if level.upper() not in names:
            raise ValueError(f"unknown log level {level!r}")
        level = names[level.upper()]

    global _listener
    if _listener is not None:
        _stop_writer()
    writer = logging.StreamHandler()
    writer.setFormatter(_formatter(chosen))
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _LineQueue(lines)
    handler.addFilter(QuietSocketChatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    _listener = QueueListener(lines, writer)
    _listener.start()
    atexit.register(_stop_writer)  # writes what is still queued
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _write_queued_lines_then_terminate)


def _stop_writer() -> None:
    global _listener
    atexit.unregister(_stop_writer)
    if _listener is not None:
        _listener.stop()
        _listener = None


def _write_queued_lines_then_terminate(signum: int, frame: FrameType | None) -> None:
    # After a graceful shutdown uvicorn re-raises SIGTERM under the handler that was in
    # place before it started; the default one would end the process before `atexit`
    # writes the queued lines. Write them first, then terminate as the signal asks.
    _stop_writer()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
