"""One exception type for everything the server refuses and every way a session ends.

Bot authors catch a single `GameSocketError` and branch on `code`: the protocol's error
codes (`illegal_move`, `not_your_turn`, ...) come through unchanged, whether the refusal
arrived as a REST error body, a socket `error` reply or a close code.
"""

from __future__ import annotations

# Close codes after which reconnecting cannot help, and the error code each one means.
FATAL_CLOSE_CODES: dict[int, str] = {
    4401: "unauthorized",
    4403: "forbidden",
    4404: "not_found",
}

# Close codes after which the session reconnects with `since` (a restart, a dropped
# network, an internal error, an idle or flood close, a slow-consumer cut-off).
RETRY_CLOSE_CODES: frozenset[int] = frozenset(
    {1001, 1006, 1008, 1011, 1012, 1013, 1014, 4408, 4429}
)

# Codes this client adds for failures that are not the server's answer to a request.
CONNECTION_FAILED = "connection_failed"  # could not open the socket or reach the REST API
CONNECTION_LOST = "connection_lost"  # the socket dropped and reconnecting gave up
CLOSED = "closed"  # the session was closed (by the caller or by the server for good)
PROTOCOL_ERROR = "protocol_error"  # the server sent something this client cannot read


class GameSocketError(Exception):
    """A refusal or failure, with the protocol's error `code` and a readable `message`.

    `status` is the HTTP status of a REST error, `ref` the id of the socket request it
    answers, `close_code` the WebSocket close code that ended a session.
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        *,
        ref: str | None = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.ref = ref
        self.close_code = close_code

    def __repr__(self) -> str:
        return (
            f"GameSocketError(code={self.code!r}, message={self.message!r}, "
            f"status={self.status!r}, ref={self.ref!r}, close_code={self.close_code!r})"
        )


def close_error(close_code: int | None, reason: str = "") -> GameSocketError:
    """The error for a socket that the server closed with `close_code`."""
    code = FATAL_CLOSE_CODES.get(close_code or 0, CLOSED)
    text = reason or f"the server closed the socket with code {close_code}"
    return GameSocketError(code, text, close_code=close_code)
