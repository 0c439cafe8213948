"""A Cache from the config's ``cache`` settings (``general_settings.cache`` for the gateway,
``Router(cache={...})`` for the library): one reading of them for both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatgate.cache.layer import Cache
from chatgate.cache.policy import CachePolicy
from chatgate.config import CacheSettings

__all__ = ["cache_from_settings"]


def cache_from_settings(settings: CacheSettings | Mapping[str, Any]) -> Cache:
    """``{"backend": "sqlite", "path": "cache.db", "ttl": 600, "mode": "always"}`` and the
    like; the keys of ``CacheSettings`` (an unknown one is an error naming it)."""
    if not isinstance(settings, CacheSettings):
        settings = CacheSettings.model_validate(dict(settings))
    options: dict[str, Any] = {}
    if settings.backend == "memory" and settings.max_bytes:
        options["max_bytes"] = settings.max_bytes
    if settings.backend == "sqlite" and settings.path:
        options["path"] = settings.path
    if settings.backend == "redis" and settings.url:
        options["url"] = settings.url
    policy = CachePolicy(mode=settings.mode, ttl=settings.ttl)
    return Cache(settings.backend, policy=policy, **options)
