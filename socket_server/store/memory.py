"""An in-memory `GameStore`: for tests and `memory://`. Nothing survives the process.

Every method body runs without an `await`, so on one event loop each call is atomic:
the version check and the write in `commit_change` cannot interleave with another call.
Records are deep-copied on the way in and out, so no caller can change stored data.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import timedelta

from socket_server.store.base import (
    Actor,
    ChatLimit,
    ChatRateLimited,
    ChatRecord,
    ChatRoom,
    DuplicateRequest,
    EventRecord,
    GameRecord,
    GameStatus,
    StaleVersion,
    check_event_matches,
    is_ai_seat,
    may_see,
)
from socket_server.store.settle import PlayerRating, settle_memory


class MemoryStore:
    def __init__(self) -> None:
        self._games: dict[str, GameRecord] = {}
        self._events: dict[str, list[EventRecord]] = {}
        # (game_id, user_id, request_id) -> version of the event that request produced
        self._requests: dict[tuple[str, str, str], int] = {}
        self._chat: dict[str, list[ChatRecord]] = {}  # game id -> messages in seq order
        # (user_id, game_type) -> rating, changed with a rated game's final event
        self.ratings: dict[tuple[str, str], PlayerRating] = {}

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release; the data stays until the object is dropped."""

    async def health(self) -> bool:
        return True

    async def create_game(self, game: GameRecord, actor: Actor) -> None:
        if game.game_id in self._games:
            raise ValueError(f"game {game.game_id} already exists")
        self._games[game.game_id] = copy.deepcopy(game)
        self._events[game.game_id] = []

    async def get_game(self, game_id: str, actor: Actor) -> GameRecord | None:
        game = self._games.get(game_id)
        if game is None or not may_see(game, actor):
            return None
        return copy.deepcopy(game)

    async def list_games(
        self,
        actor: Actor,
        *,
        game_type: str | None = None,
        status: GameStatus | None = None,
        limit: int = 50,
    ) -> list[GameRecord]:
        games = [
            game
            for game in self._games.values()
            if may_see(game, actor)
            and (game_type is None or game.game_type == game_type)
            and (status is None or game.status == status)
        ]
        games.sort(key=lambda g: (g.created_at, g.game_id), reverse=True)
        return copy.deepcopy(games[: max(limit, 0)])

    async def commit_change(self, game: GameRecord, event: EventRecord, actor: Actor) -> None:
        check_event_matches(game, event)
        # A retried request reports where it landed, even when its version is stale now.
        if event.user_id is not None and event.request_id is not None:
            key = (game.game_id, event.user_id, event.request_id)
            if key in self._requests:
                raise DuplicateRequest(self._requests[key])
        stored = self._games.get(game.game_id)
        if stored is None or stored.version != game.version - 1:
            raise StaleVersion(f"game {game.game_id} is not at version {game.version - 1}")
        self._games[game.game_id] = copy.deepcopy(game)
        self._events[game.game_id].append(copy.deepcopy(event))
        if event.user_id is not None and event.request_id is not None:
            self._requests[(game.game_id, event.user_id, event.request_id)] = event.version
        settle_memory(self.ratings, game)

    async def events_after(self, game_id: str, version: int, actor: Actor) -> list[EventRecord]:
        game = self._games.get(game_id)
        if game is None or not may_see(game, actor):
            return []
        return copy.deepcopy([e for e in self._events[game_id] if e.version > version])

    async def find_request(
        self, game_id: str, user_id: str, request_id: str, actor: Actor
    ) -> int | None:
        game = self._games.get(game_id)
        if game is None or not may_see(game, actor):
            return None
        return self._requests.get((game_id, user_id, request_id))

    async def count_games(self) -> dict[GameStatus, int]:
        return dict(Counter(game.status for game in self._games.values()))

    async def public_game_ids(self, game_ids: list[str]) -> set[str]:
        return {g for g in game_ids if (game := self._games.get(g)) is not None and game.public}

    async def active_timed_games(self) -> list[GameRecord]:
        games = [g for g in self._games.values() if g.status == "active" and g.clock]
        games.sort(key=lambda g: (g.created_at, g.game_id))
        return copy.deepcopy(games)

    async def active_ai_games(self) -> list[GameRecord]:
        games = [
            g
            for g in self._games.values()
            if g.status == "active" and any(is_ai_seat(seat) for seat in g.seats.values())
        ]
        games.sort(key=lambda g: (g.created_at, g.game_id))
        return copy.deepcopy(games)

    async def append_chat(self, message: ChatRecord, limit: ChatLimit, actor: Actor) -> int:
        messages = self._chat.setdefault(message.game_id, [])
        mine = [m for m in messages if m.user_id == message.user_id]
        if message.request_id is not None:
            for stored in mine:
                if stored.request_id == message.request_id:
                    raise DuplicateRequest(stored.seq)
        since = message.at - timedelta(seconds=limit.window_seconds)
        if sum(1 for m in mine if m.at > since) >= limit.count:
            raise ChatRateLimited(f"at most {limit.count} messages per {limit.window_seconds:g} s")
        stored = copy.deepcopy(message)
        stored.seq = len(messages) + 1
        messages.append(stored)
        return stored.seq

    async def chat_after(
        self, game_id: str, room: ChatRoom, after: int, limit: int, actor: Actor
    ) -> list[ChatRecord]:
        game = self._games.get(game_id)
        if game is None or not may_see(game, actor):
            return []
        found = [m for m in self._chat.get(game_id, []) if m.room == room and m.seq > after]
        return copy.deepcopy(found[: max(limit, 0)])
