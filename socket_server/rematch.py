"""Rematches (PROTOCOL.md "Rematch"): a finished game's players ask for a new game of the
same type, clock, options and visibility with the seats swapped.

Who asked and which game the rematch is are decided in the store's database
(`store/rematches.py`: a compare-and-set per old game), so two players asking at once,
on two processes, get one new game; the asker whose request completed the set creates
it. Every socket of the old game hears `{"type": "rematch", "game_id", "offered_by"}`
for each offer and `{"type": "rematch", "game_id", "new_game_id"}` once the game exists.

The planning functions are pure; `Rematches` calls the game service and the store,
never up into endpoint.py or rest.py.
"""

from __future__ import annotations

import copy
import logging
import uuid

from games import GameState
from socket_server import protocol
from socket_server.changes import (
    Refused,
    check_viewer,
    derive_status,
    epoch_ms,
    new_clock,
    new_invite,
    turn_of,
)
from socket_server.fanout.base import Broker
from socket_server.protocol import ErrorCode, RematchReply
from socket_server.registry import GameTypes
from socket_server.service import GameService
from socket_server.store.base import (
    Actor,
    GameRecord,
    Seat,
    StoreUnavailable,
    is_ai_seat,
    seats_held_by,
    utc_now,
)
from socket_server.store.rematches import Rematch, rematches_for
from socket_server.timecontrol import FIELDS

log = logging.getLogger("gamesocket.rematch")


def check_rematch(record: GameRecord, actor: Actor) -> list[str]:
    """The seats `actor` asks a rematch for, or `Refused`: anonymous callers
    (unauthorized), strangers and spectators (forbidden), a game not finished (game_over)."""
    if actor.user_id is None:
        raise Refused(ErrorCode.UNAUTHORIZED, "sign in to ask for a rematch")
    check_viewer(record, actor)
    mine = seats_held_by(record.seats, actor.user_id)
    if not mine:
        raise Refused(ErrorCode.FORBIDDEN, "only the game's players may ask for a rematch")
    if record.status != "finished":
        raise Refused(ErrorCode.GAME_OVER, "only a finished game can be rematched")
    return mine


def needed_seats(record: GameRecord) -> list[str]:
    """The seats that must ask before the rematch is created: those of humans."""
    seats = record.seats.items()
    return [name for name, seat in seats if seat is not None and not is_ai_seat(seat)]


def swapped_seats(seats: dict[str, Seat]) -> dict[str, Seat]:
    """Each seat's occupant moved to the next seat (for two seats: swapped); AI seats
    keep their level."""
    names = list(seats)
    occupants = [copy.deepcopy(seats[name]) for name in names]
    return dict(zip(names, occupants[1:] + occupants[:1], strict=True))


def clock_request(clock: dict[str, object] | None) -> dict[str, object] | None:
    """The create request's `clock` that gave a game this stored clock."""
    return None if clock is None else {name: clock.get(name, 0) for name in FIELDS}


def rematch_game(
    old: GameRecord, new_game_id: str, game_types: GameTypes
) -> tuple[GameRecord, GameState]:
    """The rematch of `old`, at version 0."""
    entry = game_types.get(old.game_type)
    if entry is None:
        raise Refused(ErrorCode.BAD_MESSAGE, f"unknown game type {old.game_type!r}")
    state = entry.state_class.initial(dict(old.options))
    seats = swapped_seats(old.seats)
    status = derive_status(seats, state)
    now = utc_now()
    record = GameRecord(
        game_id=new_game_id,
        game_type=old.game_type,
        status=status,
        seats=seats,
        state=state.to_json(),
        version=0,
        public=old.public,
        options=dict(old.options),
        created_by=old.created_by,
        turn=turn_of(status, state),
        clock=new_clock(clock_request(old.clock), state, status, epoch_ms(now)),
        invite=new_invite(old.public, seats),
        created_at=now,
        updated_at=now,
    )
    return record, state


class Rematches:
    """Asking for rematches, and creating each one once."""

    def __init__(self, service: GameService, broker: Broker) -> None:
        self.service = service
        self.broker = broker
        self.store = rematches_for(service.store)

    async def ask(self, actor: Actor, game_id: str) -> RematchReply:
        """Record the caller's offer; the new game once every human seat asked."""
        record, _ = await self.service.load(game_id, fresh=True)
        mine = check_rematch(record, actor)
        rematch = await self._record(record, mine)
        if rematch.new_game_id is None:
            for seat in mine:
                await self._publish(game_id, protocol.rematch_offered(game_id, seat))
            return RematchReply("offered")
        if rematch.decided_now:
            await self._create(record, rematch.new_game_id)
        return RematchReply("created", rematch.new_game_id)

    async def _create(self, record: GameRecord, new_game_id: str) -> None:
        """Create the decided game; if that fails, the decision is undone (asking again
        decides anew) and the caller gets the error."""
        new, state = rematch_game(record, new_game_id, self.service.game_types)
        try:
            new.seats = await self.service.profiles.with_current_names(new.seats)
            await self.service.store_server_game(new, state)
        except BaseException:
            log.error("rematch game not created game=%s: undone", record.game_id)
            try:
                await self.store.undo(record.game_id, new_game_id)
            except Exception:
                log.exception("undoing the rematch of game %s failed", record.game_id)
            raise
        log.info("rematch created game=%s new_game=%s", record.game_id, new_game_id)
        await self._publish(record.game_id, protocol.rematch_created(record.game_id, new_game_id))

    async def _record(self, record: GameRecord, seats: list[str]) -> Rematch:
        try:
            return await self.store.ask(
                record.game_id, seats, needed_seats(record), str(uuid.uuid4())
            )
        except StoreUnavailable as error:
            raise Refused(ErrorCode.UNAVAILABLE, f"{error}: nothing was stored") from None

    async def _publish(self, game_id: str, data: bytes) -> None:
        try:
            await self.broker.publish(game_id, data)
        except Exception as error:  # stored: asking again answers the same
            log.warning("rematch publish failed game=%s error=%r", game_id, error)
