"""Routing across deployments: strategies, retries, cooldowns, limits and fallbacks."""

from chatgate.router.redis_state import RedisState
from chatgate.router.router import Router
from chatgate.router.state import Health, Limits, MemoryState, RouterState, Stats

__all__ = ["Health", "Limits", "MemoryState", "RedisState", "Router", "RouterState", "Stats"]
