"""Errors of llama-cpp-python's server, read as what they are.

The server answers a request its schema refuses with **500** ``internal_server_error``, not
400/422: its route handler turns every exception into a 500, FastAPI's validation error
included (measured with 0.3.36; recorded in tests/fixtures/local/). Retried as a server
error, such a request failed three times. The message is that validation error's text,
``"N validation error(s):"`` and one ``{'type': ..., 'loc': ('body', ...), 'msg': ...}`` per
line: this module recognises it (a text match, the server gives nothing structured) and
answers 400 naming each field, which is never retried and never cools the deployment down.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

import orjson

from chatgate.errors import APIError, error_for_status
from chatgate.providers.base import Deployment
from chatgate.providers.openai import error_from_body

__all__ = ["map_error", "validation_problems"]

_VALIDATION = re.compile(r"\d+ validation errors?:\n")
_MAX_RAW = 500
# One error of the list; its ``input`` (the caller's content, maybe large) is never read.
_ENTRY = re.compile(
    r"\{'type': '(?P<type>\w+)', 'loc': \((?P<loc>[^()\n]*)\), "
    r"'msg': (?:'(?P<sq>[^'\n]*)'|\"(?P<dq>[^\"\n]*)\")"
)


def map_error(
    status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
) -> APIError:
    error = error_from_body(status, headers, body, deployment)
    problems = validation_problems(body) if status == 500 else []
    if not problems:
        return error
    return error_for_status(
        400,
        "the local model server cannot take this request: " + "; ".join(problems),
        headers,
        provider=deployment.provider,
        model=deployment.model,
        body=error.body,
    )


def validation_problems(body: bytes) -> list[str]:
    """``["messages[0].content: Input should be a valid string", ...]`` from the server's
    500 for a request it could not validate; [] for any other body."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not _VALIDATION.match(message):
        return []
    entries = [_entry(m) for m in _ENTRY.finditer(message)]
    found = [e for e in entries if e is not None]
    # A message is checked against each role's schema in turn; a branch whose role did not
    # match says nothing about the request, only the branch of its own role does.
    other_roles = {
        loc[:-1] for kind, loc, _ in found if kind == "literal_error" and loc[-1:] == ("role",)
    }
    relevant = [e for e in found if not any(e[1][: len(b)] == b for b in other_roles)]
    problems = [f"{_where(loc)}: {msg}" for _, loc, msg in relevant or found]
    if not problems:  # a validation error all the same, in a shape not seen before
        return [message.split("\n\n")[0][:_MAX_RAW]]
    return list(dict.fromkeys(problems))


def _entry(match: re.Match[str]) -> tuple[str, tuple[object, ...], str] | None:
    text = f"({match['loc'].rstrip(',')},)"  # a tuple of strings and ints: see _ENTRY
    try:
        loc = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    return match["type"], tuple(loc), match["sq"] or match["dq"] or ""


def _where(loc: tuple[object, ...]) -> str:
    """('body', 'messages', 0, 'ChatCompletionRequestSystemMessage', 'content') ->
    'messages[0].content': the body prefix and the schema's class names left out."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "body" and isinstance(part, str) and not part[:1].isupper():
            out += f".{part}" if out else part
    return out or "(body)"
