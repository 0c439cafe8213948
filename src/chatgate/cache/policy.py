"""When to look an answer up and when to store it: per-model policy plus per-request control.

A cache is on by default only where answers are repeatable: ``temperature`` 0 or a ``seed``.
Anything else would turn sampling into a fixed answer, so it needs an explicit opt-in: a
model's policy ``mode="always"`` or a request's ``cache=True``.

Per request (library ``cache={...}``, gateway headers, see ``control_from_headers``):

``no-cache``   do not answer from the cache (the fresh answer may still be stored)
``no-store``   do not store this answer (a stored one may still be served)
``ttl``        seconds the stored answer lives (overrides the model's policy)
``namespace``  a separate key space (e.g. per team); answers never cross namespaces
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chatgate.errors import APIStatusError, InvalidRequestError
from chatgate.types import ChatRequest, ChatResponse

__all__ = [
    "MAX_TTL_S",
    "CacheControl",
    "CachePolicy",
    "Decision",
    "control_from_headers",
    "decide",
    "is_repeatable",
    "parse_control",
    "policy_for",
    "storable_answer",
    "storable_error",
]

MAX_TTL_S = 365 * 24 * 3600
_MAX_NAMESPACE = 128


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How one model (or all models) is cached.

    mode: "auto" caches repeatable requests only; "always" every request; "never" none.
    ttl: seconds an answer lives (None: until evicted). store_truncated / store_errors: keep
    answers cut at max_tokens, and deterministic request errors (400/404/422), which are
    otherwise never stored; errors live ``error_ttl`` seconds at most. semantic: allow
    similar-question hits when the cache has a semantic index.
    """

    mode: Literal["auto", "always", "never"] = "auto"
    ttl: float | None = 3600.0
    store_truncated: bool = False
    store_errors: bool = False
    error_ttl: float = 60.0
    semantic: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "always", "never"):
            raise InvalidRequestError(
                f"CachePolicy.mode must be 'auto', 'always' or 'never', not {self.mode!r}",
                param="mode",
            )
        if self.ttl is not None:
            _check_ttl(self.ttl, "CachePolicy.ttl")
        _check_ttl(self.error_ttl, "CachePolicy.error_ttl")


@dataclass(frozen=True, slots=True)
class CacheControl:
    """One request's cache instructions. ``enabled``: None lets the policy decide, True caches
    even a non-repeatable request, False bypasses the cache entirely."""

    no_cache: bool = False
    no_store: bool = False
    ttl: float | None = None
    namespace: str | None = None
    enabled: bool | None = None

    def __post_init__(self) -> None:
        if self.ttl is not None:
            _check_ttl(self.ttl, "cache.ttl")
        if self.namespace is not None:
            _check_namespace(self.namespace, "cache.namespace")

    @property
    def asks_for_caching(self) -> bool:
        """True when the caller expects answers to be cached (so a missing cache is an error)."""
        return bool(self.enabled) or self.ttl is not None or self.namespace is not None


def _check_ttl(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TTL_S:
        raise InvalidRequestError(
            f"{where} must be a number of seconds between 1 and {MAX_TTL_S}, not {value!r}",
            param=where,
        )


def _check_namespace(value: Any, where: str) -> None:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_NAMESPACE
        or not value.isprintable()
        or value != value.strip()
    ):
        raise InvalidRequestError(
            f"{where} must be 1 to {_MAX_NAMESPACE} printable characters without surrounding "
            f"spaces, not {value!r}",
            param=where,
        )


_CONTROL_KEYS = {
    "no-cache": "no_cache",
    "no_cache": "no_cache",
    "no-store": "no_store",
    "no_store": "no_store",
    "ttl": "ttl",
    "namespace": "namespace",
    "enabled": "enabled",
}


def parse_control(value: CacheControl | Mapping[str, Any] | bool | None) -> CacheControl | None:
    """``cache=`` as the library takes it: a CacheControl, a dict with the keys above, or a
    bool (True: cache even a non-repeatable request; False: bypass)."""
    if value is None or isinstance(value, CacheControl):
        return value
    if isinstance(value, bool):
        return CacheControl(enabled=value)
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            "cache must be True, False, a dict like {'no-cache': True, 'ttl': 600} or a "
            f"CacheControl, not {type(value).__name__}",
            param="cache",
        )
    options: dict[str, Any] = {}
    for key, item in value.items():
        name = _CONTROL_KEYS.get(key)
        if name is None:
            known = "', '".join(k for k in _CONTROL_KEYS if "_" not in k)
            raise InvalidRequestError(
                f"unknown cache option {key!r}; known: '{known}'", param=f"cache.{key}"
            )
        if name in ("no_cache", "no_store", "enabled") and not isinstance(item, bool):
            raise InvalidRequestError(
                f"cache.{key} must be true or false, not {item!r}", param=f"cache.{key}"
            )
        options[name] = item
    return CacheControl(**options)


def _header_items(headers: Mapping[str, str] | Iterable[tuple[Any, Any]]) -> list[tuple[str, str]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for key, value in pairs:
        k = key.decode("latin-1") if isinstance(key, bytes) else str(key)
        v = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        out.append((k.lower(), v.strip()))
    return out


def control_from_headers(
    headers: Mapping[str, str] | Iterable[tuple[bytes | str, bytes | str]],
) -> CacheControl | None:
    """The gateway's per-request control, from ``Cache-Control: no-cache / no-store`` (and
    ``max-age=0``, which clients send to mean no-cache),
    ``x-chatgate-cache-ttl: <seconds>`` and ``x-chatgate-cache-namespace: <name>`` (ASGI raw
    header pairs or a mapping). None when no header says anything about caching. A bad value
    raises InvalidRequestError naming the header (an HTTP 400)."""
    options: dict[str, Any] = {}
    for name, value in _header_items(headers):
        if name == "cache-control":
            directives = {d.strip().lower().replace(" ", "") for d in value.split(",")}
            refresh = "no-cache" in directives or "max-age=0" in directives
            options["no_cache"] = options.get("no_cache", False) or refresh
            options["no_store"] = options.get("no_store", False) or "no-store" in directives
        elif name == "x-chatgate-cache-ttl":
            try:
                options["ttl"] = int(value)
            except ValueError:
                raise InvalidRequestError(
                    f"header x-chatgate-cache-ttl must be a whole number of seconds, not {value!r}",
                    param="x-chatgate-cache-ttl",
                ) from None
            _check_ttl(options["ttl"], "header x-chatgate-cache-ttl")
        elif name == "x-chatgate-cache-namespace":
            _check_namespace(value, "header x-chatgate-cache-namespace")
            options["namespace"] = value
    if not any(options.values()):
        return None
    return CacheControl(**options)


def is_repeatable(request: ChatRequest) -> bool:
    """Temperature 0 or a seed: the same request should give the same answer."""
    return request.temperature == 0 or request.seed is not None


@dataclass(frozen=True, slots=True)
class Decision:
    lookup: bool
    store: bool
    ttl: float | None
    namespace: str
    policy: CachePolicy = field(default_factory=CachePolicy)

    @property
    def active(self) -> bool:
        return self.lookup or self.store


def policy_for(
    model_name: str, default: CachePolicy, models: Mapping[str, CachePolicy]
) -> CachePolicy:
    """The exact model name first, then glob patterns ("openai/*") in the order given."""
    exact = models.get(model_name)
    if exact is not None:
        return exact
    for pattern, policy in models.items():
        if fnmatch.fnmatchcase(model_name, pattern):
            return policy
    return default


def decide(
    request: ChatRequest,
    policy: CachePolicy,
    control: CacheControl | None,
    default_namespace: str = "",
) -> Decision:
    control = control or CacheControl()
    namespace = control.namespace if control.namespace is not None else default_namespace
    ttl = control.ttl if control.ttl is not None else policy.ttl
    if control.enabled is False or (policy.mode == "never" and control.enabled is not True):
        return Decision(False, False, ttl, namespace, policy)
    on = control.enabled is True or policy.mode == "always" or is_repeatable(request)
    return Decision(
        on and not control.no_cache, on and not control.no_store, ttl, namespace, policy
    )


def storable_answer(response: ChatResponse, policy: CachePolicy) -> bool:
    """Never an answer cut at max_tokens (any choice), unless the policy asks for it."""
    truncated = any(c.finish_reason == "length" for c in response.choices)
    return bool(response.choices) and (policy.store_truncated or not truncated)


def storable_error(exc: BaseException, policy: CachePolicy) -> bool:
    """Only errors the same request would meet again: 400, 404 and 422 (never auth, limits,
    timeouts or server errors), and only when the policy asks for it."""
    return (
        policy.store_errors
        and isinstance(exc, APIStatusError)
        and not exc.retryable
        and exc.status_code in (400, 404, 422)
    )
