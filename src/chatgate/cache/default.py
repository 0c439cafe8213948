"""The library's process-wide cache: none until the user configures one (no surprises)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from chatgate.cache.layer import Cache
from chatgate.cache.policy import CacheControl, parse_control
from chatgate.errors import InvalidRequestError

__all__ = ["CacheArg", "configure_cache", "default_cache", "resolve_cache"]

CacheArg = Cache | CacheControl | Mapping[str, Any] | bool | None

_default: Cache | None = None


def configure_cache(cache: Cache | bool | None = None, /, **options: Any) -> Cache | None:
    """Set the cache every completion()/acompletion() call uses.

    ``configure_cache()`` — an in-memory cache with the default policy;
    ``configure_cache(backend="sqlite", path="cache.db", policy=CachePolicy(ttl=600))`` —
    a Cache built from these arguments; ``configure_cache(my_cache)`` — that Cache;
    ``configure_cache(False)`` — no cache again. Returns the cache now in use."""
    global _default
    if cache is False:
        if options:
            raise InvalidRequestError("configure_cache(False) takes no options", param="cache")
        _default = None
    elif isinstance(cache, Cache):
        if options:
            raise InvalidRequestError(
                "configure_cache(cache) takes no options: build the Cache with them",
                param="cache",
            )
        _default = cache
    elif cache is None or cache is True:
        _default = Cache(**options)
    else:
        raise InvalidRequestError(
            f"configure_cache takes a Cache, True or False, not {type(cache).__name__}",
            param="cache",
        )
    return _default


def default_cache() -> Cache | None:
    return _default


def resolve_cache(
    arg: CacheArg, layer: Cache | Literal["default"] | None = "default"
) -> tuple[Cache, CacheControl | None] | None:
    """Which cache a call uses and with what control; None when it uses none. ``layer``: the
    cache the caller's owner set (a Router's), else the process default (``configure_cache``)."""
    if isinstance(arg, Cache):
        return arg, None
    control = parse_control(arg)
    if control is not None and control.enabled is False:
        return None
    cache = _default if layer == "default" else layer
    if cache is None:
        if control is not None and control.asks_for_caching:
            where = "configured" if layer == "default" else "given to this Router"
            raise InvalidRequestError(
                f"this call asks for caching but no cache is {where}: call "
                "chatgate.configure_cache() once, pass cache=chatgate.Cache(...), or build "
                "the Router with cache=True",
                param="cache",
            )
        return None
    return cache, control
