"""The core call: resolve the provider, validate, send, and wrap the answer.

``send`` and ``open_stream`` are the single-attempt primitives the router builds on: one
request to one deployment, no retries. ``acompletion`` / ``completion`` here are the plain call
that structured outputs, tool loops and memory build on; the public ``chatgate.acompletion``
(chatgate.api) sits above them all and adds ``response_model``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Unpack, cast, overload

from chatgate.cache.default import resolve_cache
from chatgate.chat_request import (
    CALL_ARGS,
    CallArgs,
    CompletionArgs,
    MessageLike,
    chat_request,
)
from chatgate.cost.calc import response_cost
from chatgate.errors import (
    APIError,
    ChatgateError,
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
from chatgate.types import ChatRequest, ChatResponse, ResponseMeta

__all__ = ["acompletion", "call", "completion", "open_stream", "send"]

log = logging.getLogger("chatgate")


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
    if PROVIDERS[deployment.provider].prepare is not None:  # no coroutine for the usual none
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
    if PROVIDERS[deployment.provider].prepare is not None:  # no coroutine for the usual none
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
    source = HttpChunkSource(resp, framer, translator, deployment, adapter.request_id_headers)
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


async def call(
    model: str,
    messages: Sequence[MessageLike],
    args: Mapping[str, Any],
    *,
    stream: bool,
    sync: bool,
) -> ChatResponse | ChatStream:
    """One call to ``model`` ("provider/model"): ``args`` are the request fields and the
    ``CallArgs`` together, as the caller gave them."""
    params = {k: v for k, v in args.items() if k not in CALL_ARGS}
    options = cast(CallArgs, {k: v for k, v in args.items() if k in CALL_ARGS})
    deployment = resolve_deployment(
        model,
        api_key=options.get("api_key"),
        api_base=options.get("api_base"),
        headers=options.get("extra_headers"),
        api_version=options.get("api_version"),
        drop_params=options.get("drop_params", False),
        options=options.get("provider_options"),
    )
    if stream:
        params["stream"] = True
    request = chat_request(deployment.model, messages, params)
    if options.get("download_images", False):
        request = await inline_images_for(request, deployment)
    timeouts = Timeouts.of(options.get("timeout"))
    raise_on_truncation = options.get("raise_on_truncation", False)
    if (cached := resolve_cache(options.get("cache"))) is not None:
        layer, control = cached

        async def upstream() -> ChatResponse | ChatStream:
            if stream:
                return await open_stream(request, deployment, timeouts=timeouts)
            return await send(request, deployment, timeouts=timeouts)

        return await layer.get_or_call(
            request,
            f"{deployment.provider}/{deployment.model}",
            upstream,
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
    **kw: Unpack[CompletionArgs],
) -> ChatResponse | ChatStream:
    """A plain call (no ``response_model``): what the features above build on. The public
    ``chatgate.acompletion`` (chatgate.api) adds structured outputs on top."""
    return await call(model, messages, kw, stream=stream, sync=False)


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
    **kw: Unpack[CompletionArgs],
) -> ChatResponse | ChatStream:
    """The blocking form of ``acompletion``; runs on chatgate's private loop thread."""
    return run_sync(call(model, messages, kw, stream=stream, sync=True))
