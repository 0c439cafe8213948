"""A chat request as a routed job: one attempt sends it to a deployment, whole or as a stream
whose slot is held until the stream ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from chatgate.client import inline_images_for, open_stream, send
from chatgate.cost.tokens import count_tokens
from chatgate.errors import APITimeoutError, ChatgateError
from chatgate.meta import tries
from chatgate.providers.anthropic.cache_points import OPTION
from chatgate.providers.base import Deployment
from chatgate.router.attempt import GroupRunner, correction
from chatgate.router.call import CallContext, bounded, estimate_tokens
from chatgate.router.deployments import RoutedDeployment
from chatgate.stream import ChatStream
from chatgate.transport.http import Timeouts
from chatgate.types import Attempt, ChatRequest, ChatResponse

__all__ = ["ChatJob"]


class ChatJob:
    def __init__(self, request: ChatRequest) -> None:
        self.request = request

    @property
    def model(self) -> str:
        return self.request.model

    def estimate(self) -> int:
        return estimate_tokens(self.request)

    def counted(self, model: str) -> int:
        """Prompt tokens as ``model``'s tokenizer counts them, plus the output limit."""
        request = self.request
        prompt = count_tokens(model, request.messages, request.tools).tokens
        return prompt + (request.output_limit() or 0)

    def attempt(
        self, runner: GroupRunner, d: RoutedDeployment, call: CallContext, tokens: int, left: float
    ) -> Coroutine[Any, Any, ChatResponse | ChatStream]:
        """``runner.whole`` itself for a whole answer: one coroutine frame less on every
        resume of the call."""
        timeouts = bounded(d.timeouts, left)
        if not self.request.stream:
            return runner.whole(d, call, tokens, self._send(d, call, timeouts))
        return self._stream(runner, d, call, tokens, left, timeouts)

    async def _stream(
        self,
        runner: GroupRunner,
        d: RoutedDeployment,
        call: CallContext,
        tokens: int,
        left: float,
        timeouts: Timeouts,
    ) -> ChatStream:
        started = time.perf_counter()
        ticket = _StreamTicket(runner, d, call, tokens)
        stream = await self._open(runner, d, call, timeouts, ticket)
        try:
            async with asyncio.timeout(left):
                await stream.prefetch()
        except TimeoutError:
            stream.close()
            await runner.release(d, 0)
            raise APITimeoutError(
                "no first chunk before the call's deadline", model=d.model
            ) from None
        except BaseException:
            stream.close()
            await runner.release(d, 0)
            raise
        ttft = (
            stream.ttft_ms / 1000.0 if stream.ttft_ms is not None else time.perf_counter() - started
        )
        router = runner.runtime
        await router.state.record_success(d.id, ttft, router.now())
        took = (time.perf_counter() - started) * 1000.0  # to the first chunk
        attempt = Attempt(deployment=d.id, model=d.model, latency_ms=took)
        call.log.append(attempt)
        stream.attempts = tries(call.log)
        stream.attempt_log = call.log  # the same list: a failure mid-way is marked in it
        stream.deployment_id = d.id
        ticket.hand_over(attempt)
        return stream

    async def _upstream(self, d: RoutedDeployment, call: CallContext) -> ChatRequest:
        upstream = self._for(d)
        if call.download_images:
            upstream = await inline_images_for(upstream, d.deployment)
        return upstream

    def _for(self, d: RoutedDeployment) -> ChatRequest:
        return self.request.model_copy(update={"model": d.deployment.model})

    def _send(
        self, d: RoutedDeployment, call: CallContext, timeouts: Timeouts
    ) -> Coroutine[Any, Any, ChatResponse]:
        """The attempt's coroutine: ``send`` itself unless images are downloaded first (one
        coroutine frame less for every resume of the call)."""
        if call.download_images:
            return self._send_inlined(d, call, timeouts)
        return send(
            self._for(d),
            _deployment(d, call),
            timeouts=timeouts,
            raise_on_truncation=call.raise_on_truncation,
        )

    async def _send_inlined(
        self, d: RoutedDeployment, call: CallContext, timeouts: Timeouts
    ) -> ChatResponse:
        return await send(
            await self._upstream(d, call),
            _deployment(d, call),
            timeouts=timeouts,
            raise_on_truncation=call.raise_on_truncation,
        )

    async def _open(
        self,
        runner: GroupRunner,
        d: RoutedDeployment,
        call: CallContext,
        timeouts: Timeouts,
        ticket: _StreamTicket,
    ) -> ChatStream:
        try:
            return await open_stream(
                await self._upstream(d, call),
                _deployment(d, call),
                timeouts=timeouts,
                sync=call.sync,
                raise_on_truncation=call.raise_on_truncation,
                on_finish=ticket.finished,
            )
        except BaseException:
            await runner.release(d, 0)
            raise


def _deployment(d: RoutedDeployment, call: CallContext) -> Deployment:
    """The deployment, with automatic cache breakpoints when the caller's key asks for them."""
    deployment = d.deployment
    if call.auto_prompt_cache and not deployment.options.get(OPTION):
        return replace(deployment, options={**deployment.options, OPTION: True})
    return deployment


def _broke_off(attempt: Attempt, error: ChatgateError) -> None:
    """Mark the attempt whose stream failed after its first chunk (its message was scrubbed
    where the error left the provider: ``ChatStream``)."""
    attempt.error = type(error).__name__
    attempt.status_code = error.status_code
    attempt.message = error.message


class _StreamTicket:
    """Bookkeeping for a stream that ends long after the routing call returned: release its
    slot, correct the TPM estimate, record a mid-stream failure, stamp the final meta."""

    def __init__(self, runner: GroupRunner, d: RoutedDeployment, call: CallContext, tokens: int):
        self._runner = runner
        self._d = d
        self._call = call
        self._tokens = tokens
        self._handed_over = False
        self._attempt: Attempt | None = None  # the attempt whose stream the caller reads
        self._pending: tuple[ChatResponse | None, BaseException | None] | None = None

    def hand_over(self, attempt: Attempt) -> None:
        """The stream now belongs to the caller; settle an end that came during prefetch."""
        self._handed_over = True
        self._attempt = attempt
        if self._pending is not None:
            self.finished(*self._pending)

    def finished(self, response: ChatResponse | None, error: BaseException | None) -> None:
        if not self._handed_over:  # a failure in prefetch is the router's to handle
            self._pending = (response, error)
            return
        runner, d, call = self._runner, self._d, self._call
        if response is not None:
            runner.stamp(response.meta, d, call)
        elif isinstance(error, ChatgateError) and self._attempt is not None:
            _broke_off(self._attempt, error)  # what the client saw: this attempt failed
        runner.spawn(self._settle(response, error))
        call.end_stream()

    async def _settle(self, response: ChatResponse | None, error: BaseException | None) -> None:
        router = self._runner.runtime
        if isinstance(error, ChatgateError) and error.retryable:
            await router.state.record_failure(
                self._d.id, type(error).__name__, router.health, router.now()
            )
        fix = correction(response, self._tokens) if response is not None else 0
        await self._runner.release(self._d, fix)
