"""The public call, ``chatgate.completion`` / ``acompletion``: the core call (chatgate.client)
plus ``response_model``, which hands the call to the validation-retry loop
(chatgate.structured). This module sits above both, so neither imports the other's caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal, TypeVar, Unpack, overload

from chatgate.chat_request import CompletionArgs, MessageLike
from chatgate.client import call
from chatgate.errors import InvalidRequestError
from chatgate.stream import ChatStream
from chatgate.structured.run import acompletion_structured
from chatgate.transport.loop_thread import run_sync
from chatgate.types import ChatResponse

__all__ = ["acompletion", "completion"]

T = TypeVar("T")


@overload
async def acompletion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    response_model: type[T],
    max_retries: int = 2,
    retry_budget_tokens: int | None = None,
    retry_budget_usd: Decimal | float | str | None = None,
    structured_mode: str | None = None,
    **kw: Unpack[CompletionArgs],
) -> T: ...
@overload
async def acompletion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    stream: Literal[True],
    **kw: Unpack[CompletionArgs],
) -> ChatStream: ...
@overload
async def acompletion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    stream: Literal[False] = False,
    **kw: Unpack[CompletionArgs],
) -> ChatResponse: ...
async def acompletion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    stream: bool = False,
    response_model: Any = None,
    max_retries: int | None = None,
    retry_budget_tokens: int | None = None,
    retry_budget_usd: Decimal | float | str | None = None,
    structured_mode: str | None = None,
    **kw: Unpack[CompletionArgs],
) -> Any:
    """One Chat Completions call to any provider: ``model="provider/model"``.

    Keywords are OpenAI's request fields (``temperature``, ``tools``, ``response_format``, ...,
    typed in ``ChatParams``; a name that is not one raises at once), ``extra_body`` for a
    provider's own fields, and how to make the call (``CallArgs``: ``api_key``, ``api_base``,
    ``timeout``, ``cache``, ...). With ``response_model=Model`` the answer is a validated
    ``Model`` instance (docs/structured-outputs.md: max_retries, retry_budget_tokens,
    retry_budget_usd, structured_mode)."""
    structured = _structured_args(
        response_model, max_retries, retry_budget_tokens, retry_budget_usd, structured_mode
    )
    if response_model is None:
        return await call(model, messages, kw, stream=stream, sync=False)
    return await _validated(model, messages, response_model, stream, structured, kw)


@overload
def completion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    response_model: type[T],
    max_retries: int = 2,
    retry_budget_tokens: int | None = None,
    retry_budget_usd: Decimal | float | str | None = None,
    structured_mode: str | None = None,
    **kw: Unpack[CompletionArgs],
) -> T: ...
@overload
def completion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    stream: Literal[True],
    **kw: Unpack[CompletionArgs],
) -> ChatStream: ...
@overload
def completion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    stream: Literal[False] = False,
    **kw: Unpack[CompletionArgs],
) -> ChatResponse: ...
def completion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    stream: bool = False,
    response_model: Any = None,
    max_retries: int | None = None,
    retry_budget_tokens: int | None = None,
    retry_budget_usd: Decimal | float | str | None = None,
    structured_mode: str | None = None,
    **kw: Unpack[CompletionArgs],
) -> Any:
    """The blocking form of ``acompletion``; runs on chatgate's private loop thread. A
    stream is iterated with a plain ``for``."""
    structured = _structured_args(
        response_model, max_retries, retry_budget_tokens, retry_budget_usd, structured_mode
    )
    if response_model is None:
        return run_sync(call(model, messages, kw, stream=stream, sync=True))
    return run_sync(_validated(model, messages, response_model, stream, structured, kw))


async def _validated(
    model: str,
    messages: Sequence[MessageLike],
    response_model: Any,
    stream: bool,
    structured: dict[str, Any],
    kw: CompletionArgs,
) -> Any:
    if stream:
        raise InvalidRequestError(
            "stream=True cannot be combined with response_model: use "
            "chatgate.astream_structured for partial objects",
            param="stream",
        )
    result = await acompletion_structured(model, messages, response_model, **structured, **kw)
    return result.value


def _structured_args(
    response_model: Any,
    max_retries: int | None,
    retry_budget_tokens: int | None,
    retry_budget_usd: Decimal | float | str | None,
    structured_mode: str | None,
) -> dict[str, Any]:
    """The response_model loop's settings that were given; refused without a response_model."""
    given = {
        "max_retries": max_retries,
        "retry_budget_tokens": retry_budget_tokens,
        "retry_budget_usd": retry_budget_usd,
        "structured_mode": structured_mode,
    }
    chosen = {k: v for k, v in given.items() if v is not None}
    if chosen and response_model is None:
        name = next(iter(chosen))
        raise InvalidRequestError(f"{name} needs response_model=...", param=name)
    return chosen
