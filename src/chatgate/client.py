"""completion / acompletion: resolve the provider, validate, send, and wrap the answer.

``send`` and ``open_stream`` are the single-attempt primitives the router builds on: one
request to one deployment, no retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import pydantic

from chatgate.errors import (
    APIError,
    ChatgateError,
    InvalidRequestError,
    TruncatedResponseError,
)
from chatgate.providers.base import Adapter, Deployment
from chatgate.providers.registry import get_adapter, prepare_deployment, resolve_deployment
from chatgate.stream import ChatStream
from chatgate.transport import http
from chatgate.transport.http import Timeouts
from chatgate.transport.loop_thread import run_sync
from chatgate.types import ChatRequest, ChatResponse, Message, ResponseMeta

__all__ = ["acompletion", "build_request", "completion", "open_stream", "send"]

log = logging.getLogger("chatgate")

MessageLike = Message | Mapping[str, Any]


def build_request(
    model: str, messages: Sequence[MessageLike], params: Mapping[str, Any]
) -> ChatRequest:
    """Validate the caller's arguments into a ChatRequest; errors name the field."""
    try:
        return ChatRequest.model_validate({**params, "model": model, "messages": messages})
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InvalidRequestError(f"invalid {where}: {first['msg']}{more}", param=where) from None


def _scrub(exc: ChatgateError, deployment: Deployment) -> ChatgateError:
    """Never let a key travel in an error, even if an upstream echoed it back."""
    key = deployment.api_key
    if key and len(key) >= 8 and key in exc.message:
        exc.message = exc.message.replace(key, "***")
        exc.args = (exc.message,)
    return exc


def attributed(
    exc: APIError, deployment: Deployment, request_id: str | None = None
) -> ChatgateError:
    """An upstream error with its provider, model and request id filled in, key scrubbed."""
    exc.provider = exc.provider or deployment.provider
    exc.model = exc.model or deployment.model
    exc.request_id = exc.request_id or request_id
    return _scrub(exc, deployment)


def fill_meta(
    meta: ResponseMeta,
    deployment: Deployment,
    model: str,
    request_id: str | None,
    started: float,
) -> None:
    meta.provider = deployment.provider
    meta.model = model or deployment.model
    meta.request_id = request_id
    meta.latency_ms = (time.perf_counter() - started) * 1000.0


def request_id_of(adapter: Adapter, headers: Mapping[str, str]) -> str | None:
    for name in adapter.request_id_headers:
        if (value := headers.get(name)) is not None:
            return value
    return None


def _check_truncation(response: ChatResponse, raise_on_truncation: bool) -> None:
    if not response.truncated:
        return
    meta = response.meta
    log.warning("answer truncated at max tokens (provider=%s model=%s)", meta.provider, meta.model)
    if raise_on_truncation:
        raise TruncatedResponseError(
            "the answer stopped at the output token limit (finish_reason 'length'); "
            "raise max_tokens or pass raise_on_truncation=False",
            provider=meta.provider,
            model=meta.model,
            request_id=meta.request_id,
        )


async def send(
    request: ChatRequest,
    deployment: Deployment,
    *,
    timeouts: Timeouts,
    raise_on_truncation: bool = False,
) -> ChatResponse:
    """One non-streaming attempt against one deployment."""
    adapter = get_adapter(deployment.provider)
    deployment = await prepare_deployment(deployment)
    http_request = adapter.build_request(request, deployment)
    started = time.perf_counter()
    request_id: str | None = None
    try:
        resp = await http.send(http_request, timeouts)
        request_id = request_id_of(adapter, resp.headers)
        if resp.status >= 400:
            raise adapter.map_error(resp.status, resp.headers, resp.body, deployment)
        response = adapter.parse_response(resp.body, request, deployment)
    except APIError as exc:
        raise attributed(exc, deployment, request_id) from exc.__cause__
    fill_meta(response.meta, deployment, response.model, request_id, started)
    _check_truncation(response, raise_on_truncation)
    return response


async def open_stream(
    request: ChatRequest,
    deployment: Deployment,
    *,
    timeouts: Timeouts,
    sync: bool = False,
    raise_on_truncation: bool = False,
) -> ChatStream:
    """One streaming attempt: returns once the upstream accepted (status 2xx), so that an
    error status raises here, before any chunk reached the caller."""
    adapter = get_adapter(deployment.provider)
    deployment = await prepare_deployment(deployment)
    http_request = adapter.build_request(request, deployment)
    started = time.perf_counter()
    try:
        resp = await http.open_response(http_request, timeouts)
        if resp.status >= 400:
            try:
                body = await resp.read()
            finally:
                resp.release()
            error = adapter.map_error(resp.status, resp.headers, body, deployment)
            error.request_id = request_id_of(adapter, resp.headers)
            raise error
    except APIError as exc:
        raise attributed(exc, deployment) from exc.__cause__
    framer, translator = adapter.new_stream(request, deployment)
    options = request.stream_options
    return ChatStream(
        resp,
        http_request,
        framer,
        translator,
        deployment,
        request_id_headers=adapter.request_id_headers,
        started=started,
        sync=sync,
        show_usage_chunk=bool(options and options.include_usage),
        raise_on_truncation=raise_on_truncation,
    )


async def _acompletion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    api_key: str | None,
    api_base: str | None,
    timeout: float | Timeouts | None,
    stream: bool,
    drop_params: bool,
    raise_on_truncation: bool,
    extra_headers: Mapping[str, str] | None,
    api_version: str | None,
    provider_options: Mapping[str, Any] | None,
    params: dict[str, Any],
    sync: bool,
) -> ChatResponse | ChatStream:
    deployment = resolve_deployment(
        model,
        api_key=api_key,
        api_base=api_base,
        headers=extra_headers,
        api_version=api_version,
        drop_params=drop_params,
        options=provider_options,
    )
    if stream:
        params["stream"] = True
    request = build_request(deployment.model, messages, params)
    timeouts = Timeouts.of(timeout)
    if stream:
        return await open_stream(
            request,
            deployment,
            timeouts=timeouts,
            sync=sync,
            raise_on_truncation=raise_on_truncation,
        )
    return await send(
        request, deployment, timeouts=timeouts, raise_on_truncation=raise_on_truncation
    )


@overload
async def acompletion(
    model: str, messages: Sequence[MessageLike], *, stream: Literal[True], **kw: Any
) -> ChatStream: ...
@overload
async def acompletion(
    model: str, messages: Sequence[MessageLike], *, stream: Literal[False] = False, **kw: Any
) -> ChatResponse: ...
async def acompletion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | Timeouts | None = None,
    stream: bool = False,
    drop_params: bool = False,
    raise_on_truncation: bool = False,
    extra_headers: Mapping[str, str] | None = None,
    api_version: str | None = None,
    provider_options: Mapping[str, Any] | None = None,
    **params: Any,
) -> ChatResponse | ChatStream:
    """One Chat Completions call to any provider: ``model="provider/model"``.

    ``params`` are OpenAI's request fields (temperature, tools, response_format, ...);
    ``api_base`` is what the provider's official SDK calls base_url; ``provider_options`` are
    a provider's own settings (e.g. Azure ``azure_ad_token``, Bedrock ``region``)."""
    return await _acompletion(
        model,
        messages,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        stream=stream,
        drop_params=drop_params,
        raise_on_truncation=raise_on_truncation,
        extra_headers=extra_headers,
        api_version=api_version,
        provider_options=provider_options,
        params=params,
        sync=False,
    )


@overload
def completion(
    model: str, messages: Sequence[MessageLike], *, stream: Literal[True], **kw: Any
) -> ChatStream: ...
@overload
def completion(
    model: str, messages: Sequence[MessageLike], *, stream: Literal[False] = False, **kw: Any
) -> ChatResponse: ...
def completion(
    model: str,
    messages: Sequence[MessageLike],
    *,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | Timeouts | None = None,
    stream: bool = False,
    drop_params: bool = False,
    raise_on_truncation: bool = False,
    extra_headers: Mapping[str, str] | None = None,
    api_version: str | None = None,
    provider_options: Mapping[str, Any] | None = None,
    **params: Any,
) -> ChatResponse | ChatStream:
    """The blocking form of ``acompletion``; runs on chatgate's private loop thread."""
    return run_sync(
        _acompletion(
            model,
            messages,
            api_key=api_key,
            api_base=api_base,
            timeout=timeout,
            stream=stream,
            drop_params=drop_params,
            raise_on_truncation=raise_on_truncation,
            extra_headers=extra_headers,
            api_version=api_version,
            provider_options=provider_options,
            params=params,
            sync=True,
        )
    )
