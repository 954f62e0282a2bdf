"""The pure parts of the log setup and the CLI: redaction, JSON lines, the env list, --app."""

from __future__ import annotations

import gc
import inspect
import json
import logging
import re
import sys
from pathlib import Path

import pytest
from litestar import Litestar

from socket_server import cli
from socket_server.logs import (
    LOG_FORMAT_ENV,
    REDACTED,
    JsonFormatter,
    QuietSocketChatter,
    RedactSecrets,
    redact,
)
from socket_server.runner import AppSpecError, load_app_hook
from socket_server.settings import ENVIRONMENT, Settings

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJndWVzdCJ9.c2lnbmF0dXJl-_x"


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, exc_info)


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


# -- redaction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"/ws/chess/g1?token={JWT}", f"/ws/chess/g1?token={REDACTED}"),
        (f"/ws/chess/g1?since=4&token={JWT}&x=1", f"/ws/chess/g1?since=4&token={REDACTED}&x=1"),
        (f"/cb?access_token={JWT}#frag", f"/cb?access_token={REDACTED}#frag"),
        (f"GET /x?TOKEN={JWT} HTTP/1.1", f"GET /x?TOKEN={REDACTED} HTTP/1.1"),
        (f"Authorization: Bearer {JWT}", f"Authorization: Bearer {REDACTED}"),
        (f"'authorization': 'bearer {JWT}'", f"'authorization': 'bearer {REDACTED}'"),
        (
            "socket open game=g1 user=u1 role=spectator",
            "socket open game=g1 user=u1 role=spectator",
        ),
    ],
)
def test_redact_replaces_token_values_and_keeps_the_rest(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent: a redacted line stays as it is


def test_the_filter_redacts_a_token_passed_as_an_argument() -> None:
    # uvicorn's handshake line: the path with its query is an argument of the record.
    line = record('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws/t/g?token={JWT}")
    assert RedactSecrets().filter(line) is True  # redacts, never drops
    assert line.getMessage() == f'127.0.0.1:5000 - "WebSocket /ws/t/g?token={REDACTED}" [accepted]'


def test_the_filter_redacts_exception_text_and_leaves_clean_records_alone() -> None:
    failed = record("refused", exc=raised(ValueError(f"bad header Bearer {JWT}")))
    RedactSecrets().filter(failed)
    assert (
        failed.exc_text is not None
        and "ValueError: bad header Bearer [redacted]" in failed.exc_text
    )
    assert JWT not in failed.exc_text
    clean = record("change game=%s version=%d", "g1", 3)
    RedactSecrets().filter(clean)
    assert (clean.msg, clean.args) == ("change game=%s version=%d", ("g1", 3))


@pytest.mark.parametrize("root_level", [logging.INFO, logging.DEBUG])
def test_websockets_per_socket_lines_are_written_only_at_debug(root_level: int) -> None:
    root = logging.getLogger()
    before = root.level
    root.setLevel(root_level)
    try:
        chatter = [record("connection open"), record("connection closed")]
        kept = [QuietSocketChatter().filter(line) for line in chatter]
        others = [record('%s - "WebSocket %s" [accepted]', "a", "/ws"), record("connection")]
        assert [QuietSocketChatter().filter(line) for line in others] == [True, True]
    finally:
        root.setLevel(before)
    if root_level == logging.INFO:
        assert kept == [False, False]
    else:
        assert kept == [True, True]
        assert {(line.levelno, line.levelname) for line in chatter} == {(logging.DEBUG, "DEBUG")}
    assert {line.levelname for line in others} == {"INFO"}


# -- JSON lines -------------------------------------------------------------------------


def test_a_json_line_has_ts_level_logger_message() -> None:
    line = json.loads(JsonFormatter().format(record("socket open game=%s\nnext", "g1")))
    assert set(line) == {"ts", "level", "logger", "message"}
    assert line["level"] == "INFO" and line["logger"] == "uvicorn.error"
    assert line["message"] == "socket open game=g1\nnext"  # newlines stay inside the object
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])


def test_a_json_line_carries_the_exception_apart_from_the_message() -> None:
    text = JsonFormatter().format(record("turn failed", exc=raised(RuntimeError("boom"))))
    assert "\n" not in text  # one line
    line = json.loads(text)
    assert line["message"] == "turn failed"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("RuntimeError: boom")


# -- the environment variables ----------------------------------------------------------


def test_environment_lists_exactly_what_from_env_reads() -> None:
    read = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', inspect.getsource(Settings.from_env)))
    listed = [name for name, _ in ENVIRONMENT]
    assert len(listed) == len(set(listed))
    assert set(listed) == read | {LOG_FORMAT_ENV}
    assert all(meaning for _, meaning in ENVIRONMENT)


def test_serve_tunes_the_garbage_collector_for_a_server() -> None:
    thresholds = gc.get_threshold()
    try:
        cli.tune_gc()
        assert gc.get_threshold() == cli.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what was alive is out of the collector's sight
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_serve_help_lists_every_environment_variable() -> None:
    text = cli.environment_help()
    for name, meaning in ENVIRONMENT:
        assert re.search(rf"^  {name} +\S", text, re.MULTILINE), name
        assert meaning.split()[0] in text


# -- --app module:attr ------------------------------------------------------------------


def mount(app: Litestar) -> None:
    """A hook these tests point --app at."""


not_callable = 42
an_app = Litestar()


def test_load_app_hook_finds_a_function_by_module_and_name() -> None:
    assert load_app_hook(f"{__name__}:mount") is mount
    assert load_app_hook(f"{__name__}:Litestar.register") is Litestar.register  # dotted


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("tests.unit.test_logs", "MODULE:ATTR"),
        (":mount", "MODULE:ATTR"),
        ("tests.unit.test_logs:", "MODULE:ATTR"),
        ("gamesocket_no_such_module:mount", "no module 'gamesocket_no_such_module'"),
        ("tests.no_such_module:mount", "no module 'tests.no_such_module'"),
        ("tests.unit.test_logs:no_such_hook", "has no attribute 'no_such_hook'"),
        ("tests.unit.test_logs:not_callable", "must be a function"),
        ("tests.unit.test_logs:an_app", "not Litestar"),
    ],
)
def test_load_app_hook_refuses_what_names_no_function(spec: str, says: str) -> None:
    with pytest.raises(AppSpecError, match=re.escape(says)):
        load_app_hook(spec)


def test_a_module_that_fails_to_import_keeps_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_games.py").write_text("import gamesocket_missing_dependency\n")
    monkeypatch.chdir(tmp_path)  # --app looks in the current directory first
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ModuleNotFoundError, match="gamesocket_missing_dependency"):
        load_app_hook("broken_games:mount")
    assert str(tmp_path) in sys.path
