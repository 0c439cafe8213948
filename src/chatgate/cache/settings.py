"""A Cache from the config's ``cache`` settings (``general_settings.cache`` for the gateway,
``Router(cache={...})`` for the library): one reading of them for both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic

from chatgate.cache.layer import Cache
from chatgate.cache.policy import CachePolicy
from chatgate.config import CacheSettings
from chatgate.errors import InvalidRequestError

__all__ = ["cache_from_settings", "parse_settings"]

S = TypeVar("S", bound=pydantic.BaseModel)


def parse_settings(model: type[S], value: Mapping[str, Any], name: str) -> S:
    """Config settings given in Python (``Router(cache={...})``): an error names the field
    as ``name.field``."""
    try:
        return model.model_validate(dict(value))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([name, *(str(p) for p in first["loc"])])
        raise InvalidRequestError(f"invalid {where}: {first['msg']}", param=where) from None


def cache_from_settings(settings: CacheSettings | Mapping[str, Any]) -> Cache:
    """``{"backend": "sqlite", "path": "cache.db", "ttl": 600, "mode": "always"}`` and the
    like; the keys of ``CacheSettings`` (an unknown one is an error naming it)."""
    if not isinstance(settings, CacheSettings):
        settings = parse_settings(CacheSettings, settings, "cache")
    options: dict[str, Any] = {}
    if settings.backend == "memory" and settings.max_bytes:
        options["max_bytes"] = settings.max_bytes
    if settings.backend == "sqlite" and settings.path:
        options["path"] = settings.path
    if settings.backend == "redis" and settings.url:
        options["url"] = settings.url
    policy = CachePolicy(mode=settings.mode, ttl=settings.ttl)
    return Cache(settings.backend, policy=policy, **options)
