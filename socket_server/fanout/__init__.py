"""Fan-out between processes: `create_broker(settings)` picks the broker."""

from __future__ import annotations

from socket_server.fanout.base import Broker, MessageHandler, Presence
from socket_server.fanout.memory import MemoryBroker
from socket_server.settings import Settings


def create_broker(settings: Settings) -> Broker:
    """Redis when `settings.redis_url` is set (several processes), else in-memory."""
    if settings.redis_url:
        from socket_server.fanout.redis import RedisBroker  # only needed with Redis

        # `extra["redis_prefix"]` keeps separate deployments (or test runs) apart on one Redis.
        return RedisBroker(
            settings.redis_url, prefix=settings.extra.get("redis_prefix", "gamesocket")
        )
    return MemoryBroker()


__all__ = ["Broker", "MemoryBroker", "MessageHandler", "Presence", "create_broker"]
