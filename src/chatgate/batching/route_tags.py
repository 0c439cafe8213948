"""A batch's routing tags: every line goes only to deployments carrying all of them, as a
routed call with ``tags=`` does (router/attempt.py), and, as there, only in groups where some
deployment has tags at all: a group with none serves any tags."""

from __future__ import annotations

from collections.abc import Sequence

from chatgate.cost.budget_tags import MAX_TAG_CHARS, MAX_TAGS
from chatgate.errors import InvalidRequestError
from chatgate.router.deployments import RoutedDeployment

__all__ = ["carrying", "route_tags", "untagged_problem"]


def route_tags(value: object) -> frozenset[str]:
    """A run's ``tags=``: at most 16 non-empty strings of at most 64 characters, the bounds
    the gateway's tags have; a string alone is refused (it would route by its letters)."""
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Sequence | frozenset | set):
        raise InvalidRequestError(
            f"tags takes a list of tags like ['eu'], not {type(value).__name__}", param="tags"
        )
    if len(value) > MAX_TAGS:
        raise InvalidRequestError(f"tags holds at most {MAX_TAGS}, got {len(value)}", param="tags")
    for tag in value:
        if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_CHARS:
            raise InvalidRequestError(
                f"each tag is a string of 1 to {MAX_TAG_CHARS} characters, got {str(tag)[:80]!r}",
                param="tags",
            )
    return frozenset(value)


def carrying(group: Sequence[RoutedDeployment], tags: frozenset[str]) -> list[RoutedDeployment]:
    """The deployments of ``group`` a call with ``tags`` may be routed to, in model_list order."""
    if not tags or not any(d.tags for d in group):
        return list(group)
    return [d for d in group if tags <= d.tags]


def untagged_problem(model: str, tags: frozenset[str]) -> str:
    """What a line whose group has no deployment carrying ``tags`` is told, and the fix."""
    names = ", ".join(sorted(tags))
    return (
        f"body.model {model!r}: no deployment of it carries every requested tag ({names}); "
        "send the batch without those tags, or tag a deployment of the model (params.tags)"
    )
