"""An async Python client for the gamesocket wire protocol, for bots and scripts.

    from gamesocket_client import GameClient, play

REST through `GameClient`, one game's socket through `GameSession` (resumes with
`since` and resends unanswered requests after a drop), a whole bot game through `play`.
It speaks only the wire protocol (docs/protocol.md): it never imports the server.
"""

from gamesocket_client.errors import GameSocketError
from gamesocket_client.messages import (
    SEATS,
    Ack,
    Change,
    Chat,
    Clock,
    ErrorReply,
    Event,
    Hello,
    LastMove,
    Notice,
    Pong,
    Presence,
    Result,
    Seat,
    ServerEvent,
    Snapshot,
    SnapshotEvent,
    Thinking,
    Update,
    You,
    parse_message,
)
from gamesocket_client.play import against_ai, play, play_session
from gamesocket_client.rest import DEFAULT_BASE_URL, GameClient, Guest, MoveRecord
from gamesocket_client.session import GameSession, Reconnect

__all__ = [
    "DEFAULT_BASE_URL",
    "SEATS",
    "Ack",
    "Change",
    "Chat",
    "Clock",
    "ErrorReply",
    "Event",
    "GameClient",
    "GameSession",
    "GameSocketError",
    "Guest",
    "Hello",
    "LastMove",
    "MoveRecord",
    "Notice",
    "Pong",
    "Presence",
    "Reconnect",
    "Result",
    "Seat",
    "ServerEvent",
    "Snapshot",
    "SnapshotEvent",
    "Thinking",
    "Update",
    "You",
    "against_ai",
    "parse_message",
    "play",
    "play_session",
]
