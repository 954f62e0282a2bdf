"""Players' profiles and display names (PROTOCOL.md "Players and names").

The profile is the one source of a player's name: seats, chat, seeks and PGN all take
it from here. A profile is created the first time the server needs a user's name (a
guest's at `POST /api/auth/guest`, anyone's when they first create or join a game,
chat, seek or read `/api/me`), named after the token's `user_metadata` when that has a
usable name, else `Guest 4821` (guests) or `Player 4821` (signed-in users), four random
digits. Names need not be unique: the user id is the identity.

`checked_name` is the rule every name passes before it is stored: 1..32 characters
after trimming, no control characters (C0, C1, DEL), no line or paragraph separators,
no bidirectional overrides or isolates (they let a name disguise what follows it).
HTML is data: a name is stored and sent verbatim; escaping is the page's job.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from socket_server.changes import Refused
from socket_server.protocol import ErrorCode
from socket_server.store.base import Actor, GameRecord, Seat, StoreUnavailable
from socket_server.store.profiles import GameCursor, Profile, ProfileStore

NAME_MAX_CHARS = 32
# user_metadata fields that Supabase providers fill with a name, in order of preference.
METADATA_NAMES = ("name", "full_name", "user_name")
# Format characters that reorder the text after them (U+202A..U+202E, U+2066..U+2069).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


class RatingView(msgspec.Struct):
    """A user's rating in one game type (rating and deviation to two decimals)."""

    rating: float
    deviation: float
    games: int


class UserReply(msgspec.Struct):
    """`GET /api/users/{user_id}`, `GET /api/me`: the public profile."""

    user_id: str
    name: str
    # {game_type: rating}: the game types the user played rated (rest.py fills it in).
    ratings: dict[str, RatingView] = msgspec.field(default_factory=dict)


def checked_name(text: str) -> str:
    """`text` trimmed, if it is a valid display name; else `Refused` (bad_message)."""
    name = text.strip()
    if not 1 <= len(name) <= NAME_MAX_CHARS:
        raise Refused(
            ErrorCode.BAD_MESSAGE, f"a name is 1..{NAME_MAX_CHARS} characters after trimming"
        )
    for char in name:
        if unicodedata.category(char) in _REFUSED_CATEGORIES or char in _BIDI_CONTROLS:
            raise Refused(
                ErrorCode.BAD_MESSAGE,
                f"a name may not contain U+{ord(char):04X} (control or layout characters)",
            )
    return name


def first_name(claims: Mapping[str, Any] | None) -> str:
    """The name a new profile gets: the token's `user_metadata` name if one is usable
    (cut to 32 characters), else a generated one."""
    claims = claims or {}
    metadata = claims.get("user_metadata")
    if isinstance(metadata, Mapping):
        for field in METADATA_NAMES:
            value = metadata.get(field)
            if isinstance(value, str):
                try:
                    return checked_name(value.strip()[:NAME_MAX_CHARS])
                except Refused:
                    continue
    prefix = "Guest" if claims.get("is_anonymous") else "Player"
    return f"{prefix} {secrets.randbelow(10000):04d}"


# -- the `before` cursor of a player's games: "<created_at in epoch µs>.<game id>" ----------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# What `next_before` looks like (the REST route's parameter pattern too).
CURSOR_PATTERN = r"^[0-9]{1,18}\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def cursor_text(game: GameRecord) -> str:
    return f"{(game.created_at - _EPOCH) // _MICROSECOND}.{game.game_id}"


def parse_cursor(text: str) -> GameCursor:
    """A `before` cursor as `next_before` spells it; else `Refused` (bad_message)."""
    if _CURSOR.fullmatch(text) is None:
        raise Refused(ErrorCode.BAD_MESSAGE, "`before` is a `next_before` of an earlier page")
    micros, _, game_id = text.partition(".")
    return _EPOCH + int(micros) * _MICROSECOND, game_id


class Profiles:
    """Reading and writing profiles; the names seats are given."""

    def __init__(self, store: ProfileStore) -> None:
        self.store = store

    async def profile_of(self, actor: Actor) -> Profile:
        """`actor`'s profile, created on first sight; `unauthorized` when anonymous."""
        if actor.user_id is None or actor.is_server:
            raise Refused(ErrorCode.UNAUTHORIZED, "sign in to have a profile")
        profile = await self.store.get(actor.user_id)
        if profile is None:
            with _writes():
                profile = await self.store.create(actor, first_name(actor.claims))
        return profile

    async def named(self, actor: Actor) -> Actor:
        """`actor` with its display name, for the seats it takes (anonymous: as is)."""
        if actor.user_id is None or actor.is_server:
            return actor
        return replace(actor, name=(await self.profile_of(actor)).name)

    async def welcome(self, actor: Actor, name: str | None) -> Profile:
        """The profile of a new user (a guest): `name` (checked already) or a generated one."""
        chosen = name if name is not None else first_name(actor.claims)
        with _writes():
            return await self.store.create(actor, chosen)

    async def rename(self, actor: Actor, name: str) -> UserReply:
        """Store a new display name for `actor` (checked first: nothing stored if bad)."""
        checked = checked_name(name)
        if actor.user_id is None or actor.is_server:
            raise Refused(ErrorCode.UNAUTHORIZED, "sign in to change your name")
        with _writes():
            return self.reply(await self.store.set_name(actor, checked))

    async def me(self, actor: Actor) -> UserReply:
        return self.reply(await self.profile_of(actor))

    async def public_profile(self, user_id: str) -> UserReply:
        """What anyone may know of a user; `not_found` for a user never seen."""
        profile = await self.store.get(user_id)
        if profile is None:
            raise Refused(ErrorCode.NOT_FOUND, "no such user")
        return self.reply(profile)

    @staticmethod
    def reply(profile: Profile) -> UserReply:
        """The one place a profile becomes its public view (rest.py adds the ratings)."""
        return UserReply(profile.user_id, profile.name)

    async def names(self, user_ids: list[str]) -> dict[str, str]:
        """The stored names of `user_ids` (users without a profile are left out)."""
        return await self.store.display_names(user_ids)

    async def with_current_names(self, seats: Mapping[str, Seat]) -> dict[str, Seat]:
        """`seats` with each human seat named as its player is named now."""
        humans = [s["user_id"] for s in seats.values() if s is not None and s["kind"] == "human"]
        names = await self.names(humans)
        return {
            seat_name: (
                {**seat, "name": names[seat["user_id"]]}
                if seat is not None and seat["kind"] == "human" and seat["user_id"] in names
                else seat
            )
            for seat_name, seat in seats.items()
        }

    async def games_page(
        self, user_id: str, actor: Actor, limit: int, before: str | None
    ) -> tuple[list[GameRecord], str | None]:
        """A page of `user_id`'s games that `actor` may see, newest first, and the cursor
        of the next page (None: this is the last)."""
        await self.public_profile(user_id)
        cursor = None if before is None else parse_cursor(before)
        games = await self.store.games_of(user_id, actor, limit + 1, cursor)
        if len(games) <= limit:
            return games, None
        return games[:limit], cursor_text(games[limit - 1])


@contextmanager
def _writes() -> Iterator[None]:
    """A store that cannot write now (a full disk): `unavailable` (503), nothing stored."""
    try:
        yield
    except StoreUnavailable as error:
        raise Refused(ErrorCode.UNAVAILABLE, f"{error}: nothing was stored") from None
