"""The one registry of game types this server plays: rules, and how to build their AI.

The factory fills it (`GameSocketFactory.create_socket`); the service, the stores'
callers, the hub and the AI turns read it. Nothing else keeps a list of game types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agents.base import Agent
from games import GameState

# Builds the agent for one level, 1..10 (an `Agent` subclass is such a callable).
AgentBuilder = Callable[[int], Agent]


@dataclass(frozen=True)
class GameType:
    state_class: type[GameState]
    agent_builder: AgentBuilder | None = None  # None: the game has no AI

    @property
    def name(self) -> str:
        return self.state_class.game_type


class GameTypes:
    """Game type name -> `GameType`, in the order they were mounted."""

    def __init__(self) -> None:
        self._types: dict[str, GameType] = {}

    def register(self, state_class: type[GameState], agent_builder: AgentBuilder | None) -> None:
        self._types[state_class.game_type] = GameType(state_class, agent_builder)

    def get(self, name: str) -> GameType | None:
        return self._types.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[GameType]:
        return iter(self._types.values())

    def state_class(self, name: str) -> type[GameState]:
        """The rules of a registered game type (KeyError for an unknown one)."""
        return self._types[name].state_class

    def load_state(self, name: str, data: dict[str, object]) -> GameState:
        """A stored state (`GameRecord.state`) of a registered game type."""
        return self._types[name].state_class.from_json(data)
