"""The pure part of chat (socket_server/chat.py): rooms, who may write and read, text."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from games import TicTacToeState
from socket_server.changes import Refused
from socket_server.chat import chat_text, check_room_reader, plan_chat
from socket_server.protocol import ErrorCode
from socket_server.store.base import Actor, GameRecord, Seat

ALICE = Actor(user_id=str(uuid.uuid4()))
BOB = Actor(user_id=str(uuid.uuid4()))
CAROL = Actor(user_id=str(uuid.uuid4()))


def game(*, public: bool = True) -> GameRecord:
    seats: dict[str, Seat] = {
        "x": {"kind": "human", "user_id": ALICE.user_id},
        "o": {"kind": "human", "user_id": BOB.user_id},
    }
    return GameRecord(
        game_id=str(uuid.uuid4()),
        game_type="tictactoe",
        status="active",
        seats=seats,
        state=TicTacToeState.initial().to_json(),
        version=1,
        public=public,
    )


def refused(code: ErrorCode, call: Callable[..., object], *args: object) -> None:
    with pytest.raises(Refused) as refusal:
        call(*args)
    assert refusal.value.code == code


def test_each_caller_writes_to_its_own_room() -> None:
    record = game()
    assert plan_chat(record, ALICE, "  hi  ", None) == ("players", "hi")
    assert plan_chat(record, BOB, "hi", "players") == ("players", "hi")
    assert plan_chat(record, CAROL, "go", None) == ("spectators", "go")
    refused(ErrorCode.FORBIDDEN, plan_chat, record, ALICE, "hi", "spectators")
    refused(ErrorCode.FORBIDDEN, plan_chat, record, CAROL, "hi", "players")
    refused(ErrorCode.UNAUTHORIZED, plan_chat, record, Actor.ANONYMOUS, "hi", None)


def test_a_private_games_chat_is_for_its_players() -> None:
    record = game(public=False)
    assert plan_chat(record, ALICE, "hi", None) == ("players", "hi")
    refused(ErrorCode.FORBIDDEN, plan_chat, record, CAROL, "hi", None)
    refused(ErrorCode.FORBIDDEN, check_room_reader, record, CAROL, "players")
    refused(ErrorCode.UNAUTHORIZED, check_room_reader, record, Actor.ANONYMOUS, "players")
    check_room_reader(record, BOB, "players")


def test_players_never_read_the_spectators_room() -> None:
    record = game()
    refused(ErrorCode.FORBIDDEN, check_room_reader, record, ALICE, "spectators")
    for reader in (CAROL, Actor.ANONYMOUS):
        check_room_reader(record, reader, "spectators")
        check_room_reader(record, reader, "players")


def test_text_is_trimmed_to_1_to_500_characters() -> None:
    assert chat_text("\n a b \t") == "a b"
    assert chat_text(" " + "x" * 500 + " ") == "x" * 500
    for bad in ("", "   ", "x" * 501):
        refused(ErrorCode.BAD_MESSAGE, chat_text, bad)
