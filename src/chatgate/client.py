"""completion / acompletion: resolve the provider, validate, send, and wrap the answer.

``send`` and ``open_stream`` are the single-attempt primitives the router builds on: one
request to one deployment, no retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload

import pydantic

from chatgate.cache.default import CacheArg, resolve_cache
from chatgate.cost.calc import response_cost
from chatgate.errors import (
    APIError,
    ChatgateError,
    InvalidRequestError,
    TruncatedResponseError,
)
from chatgate.providers.base import Adapter, Deployment
from chatgate.providers.registry import (
    PROVIDERS,
    get_adapter,
    prepare_deployment,
    resolve_deployment,
)
from chatgate.redact import scrub_error
from chatgate.stream import ChatStream, HttpChunkSource
from chatgate.telemetry import spans
from chatgate.transport import http
from chatgate.transport.http import Timeouts
from chatgate.transport.loop_thread import run_sync
from chatgate.types import ChatRequest, ChatResponse, Message, ResponseMeta

__all__ = ["acompletion", "build_request", "completion", "open_stream", "send"]

log = logging.getLogger("chatgate")

MessageLike = Message | Mapping[str, Any]
T = TypeVar("T")

# Arguments of the response_model loop (chatgate.structured), meaningless without it.
_STRUCTURED_ONLY = ("max_retries", "retry_budget_tokens", "retry_budget_usd", "structured_mode")


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


def attributed(
    exc: APIError, deployment: Deployment, request_id: str | None = None
) -> ChatgateError:
    """An upstream error with its provider, model and request id filled in, secrets scrubbed
    (chatgate.redact: this is where a refused request's error enters the core)."""
    exc.provider = exc.provider or deployment.provider
    exc.model = exc.model or deployment.model
    exc.request_id = exc.request_id or request_id
    scrub_error(exc, deployment)
    return exc


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
    span = spans.start_chat(request, deployment)
    spans.inject(span, http_request.headers)
    started = time.perf_counter()
    request_id: str | None = None
    try:
        try:
            resp = await http.send(http_request, timeouts)
            request_id = request_id_of(adapter, resp.headers)
            if resp.status >= 400:
                raise adapter.map_error(resp.status, resp.headers, resp.body, deployment)
            response = adapter.parse_response(resp.body, request, deployment)
        except APIError as exc:
            raise attributed(exc, deployment, request_id) from exc.__cause__
    except BaseException as exc:
        spans.end_attempt(span, deployment, started, error=exc)
        raise
    fill_meta(response.meta, deployment, response.model, request_id, started)
    response.meta.cost = response_cost(response, deployment)
    spans.end_attempt(span, deployment, started, response)
    _check_truncation(response, raise_on_truncation)
    return response


async def open_stream(
    request: ChatRequest,
    deployment: Deployment,
    *,
    timeouts: Timeouts,
    sync: bool = False,
    raise_on_truncation: bool = False,
    on_finish: Callable[[ChatResponse | None, BaseException | None], None] | None = None,
) -> ChatStream:
    """One streaming attempt: returns once the upstream accepted (status 2xx), so that an
    error status raises here, before any chunk reached the caller."""
    adapter = get_adapter(deployment.provider)
    deployment = await prepare_deployment(deployment)
    http_request = adapter.build_request(request, deployment)
    span = spans.start_chat(request, deployment)
    spans.inject(span, http_request.headers)
    started = time.perf_counter()
    try:
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
    except BaseException as exc:
        spans.end_attempt(span, deployment, started, error=exc)
        raise
    framer, translator = adapter.new_stream(request, deployment)
    options = request.stream_options
    source = HttpChunkSource(
        resp, http_request, framer, translator, deployment, adapter.request_id_headers
    )
    return ChatStream(
        source,
        started=started,
        sync=sync,
        show_usage_chunk=bool(options and options.include_usage),
        raise_on_truncation=raise_on_truncation,
        on_finish=spans.on_stream_end(span, deployment, started, on_finish),
    )


async def inline_images_for(request: ChatRequest, deployment: Deployment) -> ChatRequest:
    """Download http(s) image URLs when this provider cannot fetch them itself."""
    if PROVIDERS[deployment.provider].fetches_image_urls:
        return request
    from chatgate.images import inline_image_urls  # only callers who opted in pay the import

    return await inline_image_urls(request)


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
    download_images: bool,
    cache: CacheArg,
    params: dict[str, Any],
    sync: bool,
    response_model: Any = None,
) -> Any:
    if response_model is not None:
        if stream:
            raise InvalidRequestError(
                "stream=True cannot be combined with response_model: use "
                "chatgate.astream_structured for partial objects",
                param="stream",
            )
        from chatgate.structured.run import acompletion_structured  # built on this module

        named: dict[str, Any] = dict(api_key=api_key, api_base=api_base, timeout=timeout)
        named.update(drop_params=drop_params, raise_on_truncation=raise_on_truncation)
        named.update(extra_headers=extra_headers, api_version=api_version)
        named.update(provider_options=provider_options)
        result = await acompletion_structured(model, messages, response_model, **named, **params)
        return result.value
    for name in _STRUCTURED_ONLY:
        if name in params:
            raise InvalidRequestError(f"{name} needs response_model=...", param=name)
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
    if download_images:
        request = await inline_images_for(request, deployment)
    timeouts = Timeouts.of(timeout)
    if (cached := resolve_cache(cache)) is not None:
        layer, control = cached

        async def call() -> ChatResponse | ChatStream:
            if stream:
                return await open_stream(request, deployment, timeouts=timeouts)
            return await send(request, deployment, timeouts=timeouts)

        return await layer.get_or_call(
            request,
            f"{deployment.provider}/{deployment.model}",
            call,
            control=control,
            partition=deployment.api_base,
            sync=sync,
            raise_on_truncation=raise_on_truncation,
        )
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
    model: str, messages: Sequence[MessageLike], *, response_model: type[T], **kw: Any
) -> T: ...
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
    download_images: bool = False,
    cache: CacheArg = None,
    response_model: Any = None,
    **params: Any,
) -> Any:
    """One Chat Completions call to any provider: ``model="provider/model"``.

    ``params`` are OpenAI's request fields (temperature, tools, response_format, ...);
    ``api_base`` is what the provider's official SDK calls base_url; ``provider_options`` are
    a provider's own settings (e.g. Azure ``azure_ad_token``, Bedrock ``region``); ``cache``
    is this call's cache control (True, False, ``{"no-cache": True, "ttl": 600}``, ...) for
    the cache set by ``configure_cache``, or a Cache to use instead (docs/caching.md);
    ``download_images=True`` lets chatgate fetch http(s) image URLs for providers that take
    images only as bytes (Gemini, Bedrock) — off by default, so nothing is fetched unasked.
    With ``response_model=Model`` the answer is a validated ``Model`` instance (see
    docs/structured-outputs.md: max_retries, retry_budget_tokens, retry_budget_usd)."""
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
        download_images=download_images,
        cache=cache,
        params=params,
        sync=False,
        response_model=response_model,
    )


@overload
def completion(
    model: str, messages: Sequence[MessageLike], *, response_model: type[T], **kw: Any
) -> T: ...
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
    download_images: bool = False,
    cache: CacheArg = None,
    response_model: Any = None,
    **params: Any,
) -> Any:
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
            download_images=download_images,
            cache=cache,
            params=params,
            sync=True,
            response_model=response_model,
        )
    )
