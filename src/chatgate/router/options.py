"""What a routed call may say besides the request itself: the typed keywords of
``Router.acompletion`` / ``aroute``, in one place (their names split the caller's keywords
from the request's fields)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, cast

from chatgate import config as config_module
from chatgate.cache.default import CacheArg
from chatgate.chat_request import CHAT_FIELDS, STRUCTURED_ARGS, ChatParams
from chatgate.config import RouterSettings
from chatgate.errors import InvalidRequestError

__all__ = [
    "GUARD_ARGS",
    "ROUTE_ARGS",
    "GuardArgs",
    "RouteArgs",
    "RoutedCompletionArgs",
    "router_settings",
    "split_routed_args",
]

# Where a deployment is reached is set per deployment in the model_list, never per call.
_DEPLOYMENT_ARGS = ("api_key", "api_base", "api_version", "extra_headers", "provider_options")


class RouteArgs(TypedDict, total=False):
    """``tags``: only deployments carrying all of them; ``priority``: lower is admitted first
    when queued; ``timeout``: the call's one deadline over every attempt, wait and fallback
    (default: the router's); ``num_retries`` (default: the router's); ``disable_fallbacks``;
    ``raise_on_truncation``; ``download_images`` (as for ``chatgate.completion``)."""

    tags: Sequence[str] | None
    priority: int
    timeout: float | None
    num_retries: int | None
    disable_fallbacks: bool
    raise_on_truncation: bool
    download_images: bool


class GuardArgs(TypedDict, total=False):
    """The Router's cache and budgets, per call: ``cache`` as ``chatgate.completion`` takes it
    (``False``, ``{"no-store": True}``, a Cache...); ``key`` and ``team``: the budget subjects
    the call is charged to (the user is OpenAI's ``user`` field); ``spend_tags``: the tags it
    is charged to (tag budgets, as the gateway's ``x-chatgate-tags``; not ``tags``, which picks
    deployments)."""

    cache: CacheArg
    key: str | None
    team: str | None
    spend_tags: Sequence[str] | None


class RoutedCompletionArgs(ChatParams, RouteArgs, GuardArgs, total=False):
    """Everything ``Router.acompletion`` takes by keyword besides ``stream``."""


ROUTE_ARGS = frozenset(RouteArgs.__annotations__)
GUARD_ARGS = frozenset(GuardArgs.__annotations__)
_KNOWN = CHAT_FIELDS | ROUTE_ARGS | GUARD_ARGS | {"extra_body"}


def split_routed_args(
    kw: Mapping[str, Any],
) -> tuple[dict[str, Any], RouteArgs, GuardArgs]:
    """A Router call's keywords as (request fields, how to route, cache and budget subjects);
    a name that is none of these is refused here, with the hint that fits a Router."""
    params: dict[str, Any] = {}
    route: dict[str, Any] = {}
    guard: dict[str, Any] = {}
    for name, value in kw.items():
        if name in ROUTE_ARGS:
            route[name] = value
        elif name in GUARD_ARGS:
            guard[name] = value
        elif name in _KNOWN:
            params[name] = value
        else:
            raise _unknown(name)
    return params, cast(RouteArgs, route), cast(GuardArgs, guard)


def _unknown(name: str) -> InvalidRequestError:
    if name in _DEPLOYMENT_ARGS or name == "drop_params":
        return InvalidRequestError(
            f"{name} is not a Router call parameter: set it on the deployment in the "
            "router's model_list (params: {...})",
            param=name,
        )
    if name in STRUCTURED_ARGS or name == "response_model":
        return InvalidRequestError(
            f"{name} is not a Router call parameter: for structured output call "
            "chatgate.structured.acompletion_structured(name, messages, Model, router=router)",
            param=name,
        )
    close = difflib.get_close_matches(name, _KNOWN, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return InvalidRequestError(
        f"unknown parameter {name!r}: {hint}a provider's own fields go in "
        f"extra_body={{{name!r}: ...}}",
        param=name,
    )


def router_settings(
    settings: RouterSettings | Mapping[str, Any] | None, given: Mapping[str, Any]
) -> RouterSettings:
    """A Router's settings: ``settings`` (RouterSettings' defaults for what it leaves out) with
    the keywords given to the Router that are not None over them, checked as a config file's
    ``router_settings`` are."""
    base = settings.model_dump() if isinstance(settings, RouterSettings) else dict(settings or {})
    base.update({k: v for k, v in given.items() if v is not None})
    return config_module.parse({"router_settings": base}, env={}).router_settings
