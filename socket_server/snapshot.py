"""The protocol's snapshot of a game: one builder for `state`, `update` and REST."""

from __future__ import annotations

import time
from datetime import datetime
from functools import lru_cache

import msgspec

from games import GameState
from socket_server.protocol import ClockView, Event, Result, Snapshot
from socket_server.ratings import is_rated
from socket_server.store.base import EventRecord, GameRecord
from socket_server.timecontrol import Clock


@lru_cache(maxsize=4096)
def _created_text(moment: datetime) -> str:
    # A game's creation time, spelled once per game, not once per version (~2 us).
    return moment.isoformat()


def build_snapshot(record: GameRecord, state: GameState) -> Snapshot:
    """Exactly the snapshot fields of PROTOCOL.md; a clock as of the version's change."""
    active = record.status == "active"
    result = state.result
    return Snapshot(
        game_id=record.game_id,
        game_type=record.game_type,
        version=record.version,
        status=record.status,
        seats=record.seats,
        turn=state.turn if active else None,
        board=state.board(),
        legal_moves=state.legal_moves() if active else [],
        moves=len(state.history),
        last_move=state.last_move(),
        result=Result(result.winner, result.reason) if result is not None else None,
        public=record.public,
        created_at=_created_text(record.created_at),
        clock=None if record.clock is None else clock_view(record, _ms(record)),
        rated=is_rated(record.options),
    )


def with_clock_now(snapshot: Snapshot, record: GameRecord) -> Snapshot:
    """`snapshot` with its running clock as of now (for a `state` or a REST read)."""
    if record.clock is None or record.status != "active":
        return snapshot
    return msgspec.structs.replace(snapshot, clock=clock_view(record, int(time.time() * 1000)))


def clock_view(record: GameRecord, now_ms: int) -> ClockView | None:
    """The snapshot's `clock`, exact at `now_ms`; None for an untimed game."""
    if record.clock is None:
        return None
    return ClockView(**Clock.from_json(record.clock).view(now_ms))


def event_of(event: EventRecord) -> Event:
    """The `event` object of an `update`: kind, plus seat/move/san when they apply."""
    return Event(kind=event.kind, seat=event.seat, move=event.move, san=event.san)


def _ms(record: GameRecord) -> int:
    """When the record's version was stored, in epoch ms (its clock is exact then)."""
    return int(record.updated_at.timestamp() * 1000)
