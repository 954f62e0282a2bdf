"""AI players. `get_agent(game_type, level)` is the server's entry point."""

from agents.base import Agent, ProgressCallback, SearchInfo, SearchLimit, SearchResult

__all__ = ["Agent", "ProgressCallback", "SearchInfo", "SearchLimit", "SearchResult"]
