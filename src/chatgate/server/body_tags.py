"""LiteLLM-style tags in a chat body: ``metadata.tags``, a list of strings or one
comma-separated string, read as the request's tags (as ``x-chatgate-tags`` is) on
/v1/chat/completions, /v1/messages and /v1/responses.

They are the gateway's, so they are taken out of ``metadata`` before it goes anywhere: the
rest of ``metadata`` is forwarded as before, and a ``metadata`` left empty is not sent at all.
OpenAI's own ``metadata`` is a map of strings, where a list would be refused with a 400.

Tags are bounded as the other sources are (``cost/budget_tags.py``): spaces around a tag and
empty ones are dropped as for the header, but a body that is wrong (not strings, more than
``MAX_TAGS``, one longer than ``MAX_TAG_CHARS``, a comma inside a listed tag) is a 400 naming
``metadata.tags``: a cut tag would miss its budget, and the client can fix its body.
"""

from __future__ import annotations

from typing import Any

from chatgate.cost.budget_tags import MAX_TAG_CHARS, MAX_TAGS
from chatgate.server.errors import GatewayError

__all__ = ["PARAM", "take_metadata_tags"]

PARAM = "metadata.tags"


def take_metadata_tags(data: dict[str, Any]) -> tuple[str, ...]:
    """The body's ``metadata.tags``, removed from it (with ``metadata`` when nothing else is
    left); () when there are none."""
    metadata = data.get("metadata")
    if type(metadata) is not dict or "tags" not in metadata:
        return ()  # a metadata that is not an object is the route's to refuse
    value = metadata.pop("tags")
    if not metadata:
        del data["metadata"]
    if value is None:
        return ()
    if isinstance(value, str):
        return _bounded([t.strip() for t in value.split(",")])
    if not isinstance(value, list):
        raise _wrong(f"a list of strings or a comma-separated string, not {_kind(value)}")
    tags = []
    for index, tag in enumerate(value):
        if not isinstance(tag, str):
            raise _wrong(f"item {index} is {_kind(tag)}, not a string")
        if "," in tag:
            raise _wrong(f"item {index} ({tag[:80]!r}) has a comma: list the tags apart")
        tags.append(tag.strip())
    return _bounded(tags)


def _bounded(tags: list[str]) -> tuple[str, ...]:
    kept = tuple(dict.fromkeys(t for t in tags if t))
    if len(kept) > MAX_TAGS:
        raise _wrong(f"at most {MAX_TAGS} tags, got {len(kept)}")
    for tag in kept:
        if len(tag) > MAX_TAG_CHARS:
            raise _wrong(f"a tag is at most {MAX_TAG_CHARS} characters: {tag[:80]!r}…")
    return kept


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _wrong(what: str) -> GatewayError:
    return GatewayError(400, f"{PARAM}: {what}", param=PARAM, code="invalid_tags")
