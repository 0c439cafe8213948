"""From a caller's arguments to a validated ``ChatRequest``: the one place that knows OpenAI's
request fields by name.

``ChatParams`` types them for the public calls (``**params: Unpack[ChatParams]``), so a type
checker flags ``temprature=0.5``; ``chat_request`` refuses the same typo at run time, naming the
parameter, before anything is sent. Provider-specific fields travel in ``extra_body``, as in the
official openai SDK. Wire bodies (the gateway, batch files) keep unknown fields as they are:
there the caller speaks JSON, not Python, and extras are how provider fields reach the provider.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import pydantic

from chatgate.errors import InvalidRequestError
from chatgate.types import ChatRequest, Message

if TYPE_CHECKING:
    from chatgate.cache.default import CacheArg
    from chatgate.transport.http import Timeouts

__all__ = [
    "CALL_ARGS",
    "CHAT_FIELDS",
    "STRUCTURED_ARGS",
    "CallArgs",
    "ChatParams",
    "CompletionArgs",
    "MessageLike",
    "chat_request",
]

MessageLike = Message | Mapping[str, Any]


class ChatParams(TypedDict, total=False):
    """OpenAI's Chat Completions request fields, besides ``model``, ``messages`` and
    ``stream`` (which the calls take by name), plus ``extra_body`` for anything else."""

    audio: Mapping[str, Any] | None
    frequency_penalty: float | None
    function_call: str | Mapping[str, Any] | None
    functions: Sequence[Mapping[str, Any]] | None
    logit_bias: Mapping[str, float] | None
    logprobs: bool | None
    max_completion_tokens: int | None
    max_tokens: int | None
    metadata: Mapping[str, str] | None
    modalities: Sequence[str] | None
    n: int | None
    parallel_tool_calls: bool | None
    prediction: Mapping[str, Any] | None
    presence_penalty: float | None
    prompt_cache_key: str | None
    reasoning_effort: str | None
    response_format: Mapping[str, Any] | None
    safety_identifier: str | None
    seed: int | None
    service_tier: str | None
    stop: str | Sequence[str] | None
    store: bool | None
    stream_options: Mapping[str, Any] | None
    temperature: float | None
    tool_choice: Literal["none", "auto", "required"] | Mapping[str, Any] | None
    tools: Sequence[Mapping[str, Any]] | None
    top_logprobs: int | None
    top_p: float | None
    user: str | None
    verbosity: str | None
    web_search_options: Mapping[str, Any] | None
    extra_body: Mapping[str, Any] | None


class CallArgs(TypedDict, total=False):
    """How a call is made, as distinct from what it asks: where to send it and what to do with
    the answer. Defaults: a key from the provider's environment variable, its public endpoint,
    ``timeout`` 600 s, ``drop_params``, ``raise_on_truncation`` and ``download_images`` False,
    the cache set by ``configure_cache``."""

    api_key: str | None
    api_base: str | None  # what the provider's official SDK calls base_url
    timeout: float | Timeouts | None
    drop_params: bool  # drop the fields this provider does not take instead of refusing
    raise_on_truncation: bool  # raise TruncatedResponseError on finish_reason "length"
    extra_headers: Mapping[str, str] | None
    api_version: str | None  # Azure
    provider_options: Mapping[str, Any] | None  # e.g. Azure azure_ad_token, Bedrock region
    download_images: bool  # fetch http(s) image URLs for providers that take only bytes
    cache: CacheArg  # True, False, {"no-cache": True, "ttl": 600}, or a Cache


class CompletionArgs(ChatParams, CallArgs, total=False):
    """Everything ``completion`` takes by keyword besides ``stream``."""


CHAT_FIELDS = frozenset(ChatParams.__annotations__) - {"extra_body"}
CALL_ARGS = frozenset(CallArgs.__annotations__)
# Arguments of the response_model loop (chatgate.structured), meaningless without it.
STRUCTURED_ARGS = ("max_retries", "retry_budget_tokens", "retry_budget_usd", "structured_mode")


def chat_request(
    model: str,
    messages: Sequence[MessageLike],
    params: Mapping[str, Any],
    *,
    strict: bool = True,
) -> ChatRequest:
    """Validate the arguments into a ChatRequest; errors name the field. ``strict``: a name
    that is not an OpenAI field is an error (the Python API); off for wire bodies."""
    fields = dict(params)
    extra = fields.pop("extra_body", None) or {}
    if strict:
        for name in fields:
            if name not in CHAT_FIELDS and name != "stream":
                raise _unknown(name, STRUCTURED_ARGS)
    if not isinstance(extra, Mapping):
        raise InvalidRequestError(
            "extra_body must be a mapping of field to value", param="extra_body"
        )
    try:
        return ChatRequest.model_validate({**extra, **fields, "model": model, "messages": messages})
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InvalidRequestError(f"invalid {where}: {first['msg']}{more}", param=where) from None


def _unknown(name: str, structured: Sequence[str]) -> InvalidRequestError:
    if name in structured:
        return InvalidRequestError(f"{name} needs response_model=...", param=name)
    close = difflib.get_close_matches(name, CHAT_FIELDS | CALL_ARGS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return InvalidRequestError(
        f"unknown parameter {name!r}: {hint}a provider's own fields go in "
        f"extra_body={{{name!r}: ...}}",
        param=name,
    )
