"""What a routed call may say besides the request itself: the typed keywords of
``Router.acompletion`` / ``aroute``, in one place (their names split the caller's keywords
from the request's fields)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from chatgate.chat_request import ChatParams

__all__ = ["ROUTE_ARGS", "RouteArgs", "RoutedCompletionArgs"]


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


class RoutedCompletionArgs(ChatParams, RouteArgs, total=False):
    """Everything ``Router.acompletion`` takes by keyword besides ``stream``."""


ROUTE_ARGS = frozenset(RouteArgs.__annotations__)
