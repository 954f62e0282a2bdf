"""Chat per game and the administrators' announcements (PROTOCOL.md "Chat", "Announcements").

Two rooms per game: `players`, which everyone who may watch the game reads and its
seated players write, and `spectators`, which signed-in spectators write and only
spectators read (players never see it). The store assigns each message its `seq` and
counts the author's recent messages (the rate limit holds across processes); the
broker carries the stored message to every process, whose hub delivers it to the
sockets that read its room. Chat changes no game version.

The planning functions (`plan_chat`, `check_room_reader`, `chat_text`) are pure; the
`ChatRooms` class is the service side. It calls the game service and the store, never
up into endpoint.py or rest.py.
"""

from __future__ import annotations

import logging
from typing import Any

from socket_server import protocol
from socket_server.changes import Refused, check_viewer
from socket_server.fanout.base import Broker
from socket_server.protocol import CHAT_MAX_CHARS, ChatMessage, ErrorCode
from socket_server.service import GameService
from socket_server.store.base import (
    Actor,
    ChatLimit,
    ChatRateLimited,
    ChatRecord,
    ChatRoom,
    DuplicateRequest,
    GameRecord,
    NotPermitted,
    StoreUnavailable,
    seats_held_by,
    utc_now,
)

log = logging.getLogger("gamesocket.chat")

CHAT_LIMIT = ChatLimit(count=5, window_seconds=10.0)
MAX_HISTORY = 200  # messages per GET /api/games/{id}/chat page
ANNOUNCEMENT_MAX_CHARS = 500


def own_room(record: GameRecord, actor: Actor) -> ChatRoom:
    """The room `actor` writes to: `players` when seated, else `spectators`."""
    return "players" if seats_held_by(record.seats, actor.user_id) else "spectators"


def chat_text(text: str, max_chars: int = CHAT_MAX_CHARS) -> str:
    """`text` trimmed; `bad_message` unless 1..max_chars characters remain."""
    trimmed = text.strip()
    if not 1 <= len(trimmed) <= max_chars:
        raise Refused(
            ErrorCode.BAD_MESSAGE, f"text must be 1..{max_chars} characters after trimming"
        )
    return trimmed


def plan_chat(
    record: GameRecord, actor: Actor, text: str, room: ChatRoom | None
) -> tuple[ChatRoom, str]:
    """The room and the trimmed text of a chat message `actor` may write, or `Refused`."""
    if actor.user_id is None:
        raise Refused(ErrorCode.UNAUTHORIZED, "sign in to chat")
    check_viewer(record, actor)
    mine = own_room(record, actor)
    if room is not None and room != mine:
        raise Refused(ErrorCode.FORBIDDEN, f"you write to the {mine} room, not {room}")
    return mine, chat_text(text)


def check_room_reader(record: GameRecord, actor: Actor, room: ChatRoom) -> None:
    """`actor` may read `room`: a watcher of the game, and not a player for `spectators`."""
    check_viewer(record, actor)
    if room == "spectators" and seats_held_by(record.seats, actor.user_id):
        raise Refused(ErrorCode.FORBIDDEN, "players do not read the spectators' room")


def chat_message(message: ChatRecord, name: str) -> ChatMessage:
    """The message as sent, with its author's display name (`name`: as named now)."""
    return ChatMessage(
        game_id=message.game_id,
        room=message.room,
        seq=message.seq,
        user_id=message.user_id,
        name=name,
        text=message.text,
        at=message.at.isoformat(),
    )


class ChatRooms:
    """Writing and reading chat, and announcing to every socket."""

    def __init__(self, service: GameService, broker: Broker) -> None:
        self.service = service
        self.store = service.store
        self.broker = broker

    async def post(
        self,
        actor: Actor,
        game_id: str,
        text: str,
        room: ChatRoom | None = None,
        request_id: str | None = None,
    ) -> int:
        """Store and publish one message; the game's current version (for the `ack`).

        A message whose `id` this author stored before in this game is not stored
        again: the answer is the same ack.
        """
        record, _ = await self.service.load(game_id, fresh=True)
        target, trimmed = plan_chat(record, actor, text, room)
        assert actor.user_id is not None  # plan_chat refuses anonymous callers
        author = await self.service.profiles.profile_of(actor)
        message = ChatRecord(game_id, target, actor.user_id, trimmed, request_id, at=utc_now())
        try:
            message.seq = await self.store.append_chat(message, CHAT_LIMIT, actor)
        except DuplicateRequest:
            return record.version
        except ChatRateLimited as error:
            raise Refused(ErrorCode.RATE_LIMITED, f"chat: {error}") from None
        except NotPermitted:
            raise Refused(ErrorCode.FORBIDDEN, "the store refused this message") from None
        except StoreUnavailable as error:
            raise Refused(ErrorCode.UNAVAILABLE, f"{error}: nothing was stored") from None
        await self._publish(game_id, protocol.chat(chat_message(message, author.name)))
        return record.version

    async def _publish(self, game_id: str, data: bytes) -> None:
        try:
            await self.broker.publish(game_id, data)
        except Exception as error:  # stored: the history still has it
            log.warning("chat publish failed game=%s error=%r", game_id, error)

    async def history(
        self, actor: Actor, game_id: str, room: ChatRoom, after: int = 0, limit: int = 50
    ) -> list[ChatMessage]:
        """The stored messages of `room` after `after`, in seq order (same visibility)."""
        record, _ = await self.service.load(game_id, fresh=True)
        check_room_reader(record, actor, room)
        # Read as the caller: under Postgres, row-level security decides as well.
        stored = await self.store.chat_after(game_id, room, after, min(limit, MAX_HISTORY), actor)
        names = await self.service.profiles.names([message.user_id for message in stored])
        # An author always has a profile (created when they wrote); the id stands in else.
        return [chat_message(m, names.get(m.user_id, m.user_id)) for m in stored]

    async def announce(self, text: str) -> dict[str, Any]:
        """Send `{"type": "announcement", "text", "at"}` to every socket of every process."""
        trimmed = chat_text(text, ANNOUNCEMENT_MAX_CHARS)
        at = utc_now().isoformat()
        await self.broker.publish_all(protocol.announcement(trimmed, at))
        log.info("announcement sent chars=%d", len(trimmed))
        return {"text": trimmed, "at": at}
