"""The pure rules of socket_server/profiles.py: valid names, first names, the cursor."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from socket_server.changes import Refused
from socket_server.profiles import (
    NAME_MAX_CHARS,
    checked_name,
    cursor_text,
    first_name,
    parse_cursor,
)
from socket_server.protocol import ErrorCode
from tests.integration.test_store_contract import make_game


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Alice", "Alice"),
        ("  Alice  ", "Alice"),
        ("\u3000Ada\u3000", "Ada"),  # ideographic spaces trim too
        ("x" * NAME_MAX_CHARS, "x" * NAME_MAX_CHARS),
        (" " + "é" * 32 + " ", "é" * 32),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),  # HTML is data
        ("👨‍👩‍👧 family", "👨‍👩‍👧 family"),  # joiners inside an emoji are fine
        ("Zoë O'Brien-Smith", "Zoë O'Brien-Smith"),
    ],
)
def test_valid_names_are_trimmed(given: str, stored: str) -> None:
    assert checked_name(given) == stored


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " ",
        "\t\n ",
        "x" * 33,
        " " + "x" * 33 + " ",
        "a\x00b",
        "a\x1bb",  # escape
        "a\x7fb",  # delete
        "a\x9bb",  # C1
        "a\u2029b",  # paragraph separator
        "abc\u202e",  # right-to-left override
        "\u2066abc",  # left-to-right isolate
        "a\ud800b",  # a lone surrogate
    ],
)
def test_bad_names_are_bad_messages(bad: str) -> None:
    with pytest.raises(Refused) as refused:
        checked_name(bad)
    assert refused.value.code == ErrorCode.BAD_MESSAGE


def test_the_first_name_comes_from_the_tokens_metadata_in_order() -> None:
    both = {"user_metadata": {"user_name": "third", "full_name": "second", "name": "first"}}
    assert first_name(both) == "first"
    assert (
        first_name({"user_metadata": {"user_name": "third", "full_name": " second "}}) == "second"
    )
    assert first_name({"user_metadata": {"name": 7, "user_name": "third"}}) == "third"
    assert first_name({"user_metadata": {"name": "z" * 50}}) == "z" * 32
    assert first_name({"user_metadata": {"name": "  "}, "is_anonymous": True}).startswith("Guest ")


@pytest.mark.parametrize(
    ("claims", "prefix"),
    [
        ({"is_anonymous": True}, "Guest"),
        ({"is_anonymous": False}, "Player"),
        (None, "Player"),
        ({"user_metadata": "not an object"}, "Player"),
    ],
)
def test_without_a_usable_name_one_is_generated(claims: dict[str, object], prefix: str) -> None:
    names = {first_name(claims) for _ in range(40)}
    assert all(re.fullmatch(rf"{prefix} \d{{4}}", name) for name in names), names
    assert len(names) > 1  # four random digits, not one name for everybody


def test_a_cursor_reads_back_as_the_games_place() -> None:
    created = datetime(2026, 12, 2, 6, 0, 0, 123456, tzinfo=UTC)
    game = make_game(created_at=created)
    assert parse_cursor(cursor_text(game)) == (created, game.game_id)
    early = make_game(created_at=datetime(1970, 1, 1, tzinfo=UTC))
    assert parse_cursor(cursor_text(early)) == (early.created_at, early.game_id)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "123",
        f"12.{uuid.uuid4()}x",
        f"-1.{uuid.uuid4()}",
        f"1e3.{uuid.uuid4()}",
        f"٣.{uuid.uuid4()}",  # not an ASCII digit
        f"{'9' * 19}.{uuid.uuid4()}",
        f"12.{str(uuid.uuid4()).upper()}",
        "12.not-a-game",
    ],
)
def test_a_malformed_cursor_is_a_bad_message(bad: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_cursor(bad)
    assert refused.value.code == ErrorCode.BAD_MESSAGE
