"""A batch input file: OpenAI's Batch API input format, every line checked before anything is sent.

One JSON object per line::

    {"custom_id": "q-1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "openai/gpt-4o-mini", "messages": [...], "max_tokens": 64}}

``body`` is a Chat Completions request, validated exactly as ``chatgate.completion`` validates
its arguments. Every problem found is collected with its line number; a file with any problem
is refused whole (``BatchInputError``), so a run never stops halfway on a typo.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from chatgate.chat_request import chat_request
from chatgate.errors import InvalidRequestError
from chatgate.types import ChatRequest

__all__ = [
    "URL",
    "BatchInputError",
    "BatchItem",
    "Source",
    "collect_items",
    "read_items",
    "where_of",
]

URL = "/v1/chat/completions"
SHOWN = 10  # problems listed in the error; the count says how many more there were

Source = str | Path | Iterable[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class BatchItem:
    line: int  # 1-based line of the input file (position, for a list of requests)
    custom_id: str
    request: ChatRequest  # ``model`` as written: a model_list name or a provider/model string


class BatchInputError(InvalidRequestError):
    """The input has problems; ``problems`` lists each one as ``line N: what and the fix``."""

    def __init__(self, problems: list[str], where: str) -> None:
        shown = "\n  ".join(problems[:SHOWN])
        more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        super().__init__(
            f"{where}: {len(problems)} problem(s), nothing was sent:\n  {shown}{more}",
            param="input",
        )
        self.problems = problems


def _lines(source: Source) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object or the JSON error) for every non-blank line."""
    if isinstance(source, str | Path):
        with open(source, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    yield number, orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    yield number, exc
        return
    yield from enumerate(source, 1)


def _check(number: int, obj: Any, seen: dict[str, int]) -> tuple[BatchItem | None, str | None]:
    where = f"line {number}"
    if isinstance(obj, orjson.JSONDecodeError):
        return None, f"{where}: not valid JSON ({obj.msg}); each line is one JSON object"
    if not isinstance(obj, Mapping):
        return None, f"{where}: expected a JSON object with custom_id, method, url and body"
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return None, f"{where}: custom_id must be a non-empty string (it names the answer)"
    if custom_id in seen:
        return None, f"{where}: custom_id {custom_id!r} repeats line {seen[custom_id]}"
    seen[custom_id] = number
    if obj.get("method", "POST") != "POST":
        return None, f'{where}: method must be "POST", got {obj.get("method")!r}'
    if obj.get("url", URL) not in (URL, "/chat/completions"):
        return (
            None,
            f"{where}: url must be {URL!r} (the endpoint batch runs serve), got {obj['url']!r}",
        )
    body = obj.get("body")
    if not isinstance(body, Mapping):
        return None, f"{where}: body must be a Chat Completions request object"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return None, f"{where}: body.model must be a model name"
    if body.get("stream"):
        return None, f"{where}: body.stream: a batch run takes whole answers; remove stream"
    params = {k: v for k, v in body.items() if k not in ("model", "messages")}
    try:
        request = chat_request(model, body.get("messages") or [], params, strict=False)
    except InvalidRequestError as exc:
        return None, f"{where}: body: {exc.message}"
    return BatchItem(number, custom_id, request), None


def collect_items(source: Source) -> tuple[list[BatchItem], list[str]]:
    """Every valid request of ``source`` (a JSONL path, or an iterable of line objects) and
    every problem found, as ``line N: what and the fix``."""
    items: list[BatchItem] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, obj in _lines(source):
        item, problem = _check(number, obj, seen)
        if problem is not None:
            problems.append(problem)
        elif item is not None:
            items.append(item)
    if not items and not problems:
        problems.append("no requests: the input is empty")
    return items, problems


def where_of(source: Source) -> str:
    return str(source) if isinstance(source, str | Path) else "batch requests"


def read_items(source: Source) -> list[BatchItem]:
    """``collect_items``, raising BatchInputError if there is any problem."""
    items, problems = collect_items(source)
    if problems:
        raise BatchInputError(problems, where_of(source))
    return items
