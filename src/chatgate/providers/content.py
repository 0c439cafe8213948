"""Message content for servers that take a string where OpenAI also takes a list of parts.

OpenAI accepts ``content`` as a string or a list of parts for every role, and the Anthropic
SDK and Claude Code send ``system`` as a list of text blocks (with ``cache_control``), which
reaches us as a list of text parts. Some OpenAI-compatible servers refuse a list for some
roles (the registry row's ``string_content`` names them); for those, a list of text parts
only is sent as one string, its parts apart by a blank line. A list holding anything else
(an image) is left as it is: the server's refusal then says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["PART_SEPARATOR", "join_text_parts"]

PART_SEPARATOR = "\n\n"


def join_text_parts(messages: Iterable[dict[str, Any]], roles: frozenset[str]) -> None:
    """In place, on wire messages: text-only part lists of these roles become one string."""
    for message in messages:
        content = message.get("content")
        if type(content) is not list or message.get("role") not in roles:
            continue
        texts = [p["text"] for p in content if type(p) is dict and _is_text(p)]
        if len(texts) == len(content):
            message["content"] = PART_SEPARATOR.join(texts)


def _is_text(part: dict[str, Any]) -> bool:
    return part.get("type") == "text" and type(part.get("text")) is str
