"""The protocol's snapshot of a game: one builder for `state`, `update` and REST."""

from __future__ import annotations

from games import GameState
from socket_server.protocol import Event, Result, Snapshot
from socket_server.store.base import EventRecord, GameRecord


def build_snapshot(record: GameRecord, state: GameState) -> Snapshot:
    """Exactly the snapshot fields of PROTOCOL.md."""
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
        created_at=record.created_at.isoformat(),
    )


def event_of(event: EventRecord) -> Event:
    """The `event` object of an `update`: kind, plus seat/move/san when they apply."""
    return Event(kind=event.kind, seat=event.seat, move=event.move, san=event.san)
