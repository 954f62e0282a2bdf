"""The protocol's snapshot of a game, and the game status rule. One place builds both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from games import GameState
from socket_server.store.base import EventRecord, GameRecord, GameStatus, Seat


def derive_status(seats: Mapping[str, Seat], state: GameState) -> GameStatus:
    """`waiting` while a seat is empty, then `active`, then `finished` or `aborted`."""
    if state.result is not None:
        return "aborted" if state.result.reason == "aborted" else "finished"
    if any(seat is None for seat in seats.values()):
        return "waiting"
    return "active"


def build_snapshot(record: GameRecord, state: GameState) -> dict[str, Any]:
    """Exactly the snapshot fields of PROTOCOL.md, for `state`, `update` and REST."""
    active = record.status == "active"
    return {
        "game_id": record.game_id,
        "game_type": record.game_type,
        "version": record.version,
        "status": record.status,
        "seats": record.seats,
        "turn": state.turn if active else None,
        "board": state.board(),
        "legal_moves": state.legal_moves() if active else [],
        "moves": len(state.history),
        "last_move": state.last_move(),
        "result": state.result.model_dump() if state.result is not None else None,
        "public": record.public,
        "created_at": record.created_at.isoformat(),
    }


def event_body(event: EventRecord) -> dict[str, Any]:
    """The `event` object of an `update`: kind, plus seat/move/san when they apply."""
    body: dict[str, Any] = {"kind": event.kind}
    if event.seat is not None:
        body["seat"] = event.seat
    if event.move is not None:
        body["move"] = event.move
    if event.san is not None:
        body["san"] = event.san
    return body


def update_body(record: GameRecord, state: GameState, event: EventRecord) -> dict[str, Any]:
    return {"type": "update", "event": event_body(event), **build_snapshot(record, state)}
