"""The contract between the server and every AI player.

The server only ever calls `Agent.search` (async). Implementations keep CPU-bound
work off the event loop (a process pool, or an engine subprocess) and stream
progress through `on_progress`, at most a few times a second.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from games import GameState, Move


@dataclass(frozen=True)
class SearchLimit:
    """How long an agent may think; None means no limit of that kind."""

    time: float | None = None  # seconds
    depth: int | None = None
    nodes: int | None = None


@dataclass(frozen=True)
class SearchInfo:
    """Progress of a search, as the protocol's `thinking` message reports it."""

    depth: int
    score: int  # centipawns (chess) or game score, from the side to move's view
    pv: list[Move] = field(default_factory=list)
    nodes: int = 0


@dataclass(frozen=True)
class SearchResult:
    move: Move
    info: SearchInfo


ProgressCallback = Callable[[SearchInfo], None]


class Agent(ABC):
    """An AI player for one game type at one strength level (1 weak .. 10 strongest)."""

    game_type: ClassVar[str]

    def __init__(self, level: int = 5) -> None:
        if not 1 <= level <= 10:
            raise ValueError(f"level must be 1..10, got {level}")
        self.level = level

    def default_limit(self) -> SearchLimit:
        """The limit this agent's level implies when the caller gives none."""
        return SearchLimit()

    def limit_within(self, seconds: float) -> SearchLimit:
        """The level's limit, its time cut to `seconds` (a clock's budget for a move)."""
        default = self.default_limit()
        time = seconds if default.time is None else min(default.time, seconds)
        return SearchLimit(time=time, depth=default.depth, nodes=default.nodes)

    @abstractmethod
    async def search(
        self,
        state: GameState,
        *,
        limit: SearchLimit | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SearchResult:
        """Choose a legal move for the side to move.

        Cancelling the awaiting task stops the search within 100 ms. `on_progress`
        is called on the event loop thread. Without `limit`, the level decides.
        """
