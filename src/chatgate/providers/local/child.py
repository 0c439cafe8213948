"""The managed server process: llama-cpp-python's OpenAI server plus two things it lacks.

Run as ``python -m chatgate.providers.local.child <llama_cpp.server flags> --max_queue N
--parent_pid P``. It is ``python -m llama_cpp.server`` (same app, same flags) with:

- an admission gate (pure ASGI) in front of the inference routes: one request runs, at most
  ``max_queue`` wait, the next gets 429 with ``Retry-After`` (queue length x recent service
  time); every answer carries ``x-queue-time-ms``. It lives here because only the server sees
  when a streamed answer really ends; llama.cpp itself would queue without bound.
- whole-prompt evaluation (``--prefix_cache False``, the default) so temperature 0 is
  deterministic; see ``_patch_llama``.
- a usage chunk at the end of each chat stream (llama.cpp never sends one): prompt tokens as
  the model's tokenizer counted them for this request, completion tokens as streamed.

It exits when its parent dies, so a killed gateway leaves no model server behind.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

__all__ = ["AdmissionGate", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_GATED_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


class AdmissionGate:
    """Serializes inference requests with a bounded wait queue and honest 429s."""

    def __init__(self, app: ASGIApp, max_queue: int) -> None:
        self._app = app
        self._max_queue = max_queue
        self._running: asyncio.Lock | None = None
        self._waiting = 0
        self._service_s = 0.5  # moving average of how long one request holds the model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in _GATED_PATHS:
            await self._app(scope, receive, send)
            return
        if self._running is None:
            self._running = asyncio.Lock()
        running = self._running
        if running.locked() and self._waiting >= self._max_queue:
            await self._reject(send)
            return
        queued = time.perf_counter()
        self._waiting += 1
        try:
            await running.acquire()
        finally:
            self._waiting -= 1
        started = time.perf_counter()
        queue_ms = f"{(started - queued) * 1000.0:.1f}".encode()

        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                running.release()
                elapsed = time.perf_counter() - started
                self._service_s = 0.8 * self._service_s + 0.2 * elapsed

        async def send_with_queue_time(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-queue-time-ms", queue_ms)]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Free the slot before the client can see the end of its answer: the app's
                # own teardown runs after this, and a client that sends its next request at
                # once must not be told the model is busy with the one it already has.
                release()
            await send(message)

        try:
            await self._app(scope, receive, send_with_queue_time)
        finally:
            release()

    async def _reject(self, send: Send) -> None:
        retry_after = max(1, math.ceil(self._service_s * (self._waiting + 1)))
        body = (
            b'{"error": {"message": "the local model is busy: '
            + str(self._waiting).encode()
            + b' requests are already waiting (max_queue); retry later", '
            b'"type": "rate_limit_exceeded", "param": null, "code": "queue_full"}}'
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _patch_llama(llama_class: Any, prefix_cache: bool) -> None:
    """Make ``Llama.create_chat_completion(stream=True)`` end with an OpenAI usage chunk, and
    (unless ``prefix_cache``) evaluate every prompt whole: reusing the KV cache of a shared
    prefix changes the batch shapes and with them the logits, so temperature 0 answers the
    same request differently depending on what came before (measured with SmolLM2)."""
    generate = llama_class.generate
    chat = llama_class.create_chat_completion

    def counting_generate(self: Any, tokens: Any, *args: Any, **kwargs: Any) -> Any:
        self._chatgate_prompt_tokens = len(tokens)  # the whole prompt, as the model sees it
        if not prefix_cache:
            self.reset()
        return generate(self, tokens, *args, **kwargs)

    def chat_with_usage(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = chat(self, *args, **kwargs)
        return _with_usage(self, result) if kwargs.get("stream") else result

    llama_class.generate = counting_generate
    llama_class.create_chat_completion = chat_with_usage


def _with_usage(llama: Any, chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    llama._chatgate_prompt_tokens = 0
    completion = 0
    last: dict[str, Any] = {}
    for chunk in chunks:
        for choice in chunk.get("choices", ()):
            delta = choice.get("delta") or {}
            completion += 1 if delta.get("content") else 0
            for call in delta.get("tool_calls") or ():
                completion += 1 if (call.get("function") or {}).get("arguments") else 0
        last = chunk
        yield chunk
    prompt = int(llama._chatgate_prompt_tokens)
    yield {
        "id": last.get("id", ""),
        "object": "chat.completion.chunk",
        "created": last.get("created", int(time.time())),
        "model": last.get("model", ""),
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _exit_with_parent(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    # Imported here: this module is loaded only in the child, where llama_cpp must exist.
    llama_cpp = importlib.import_module("llama_cpp")
    app_module = importlib.import_module("llama_cpp.server.app")
    settings = importlib.import_module("llama_cpp.server.settings")
    cli = importlib.import_module("llama_cpp.server.cli")
    uvicorn = importlib.import_module("uvicorn")

    parser = argparse.ArgumentParser(description="chatgate's managed llama.cpp server")
    cli.add_args_from_model(parser, settings.Settings)
    parser.add_argument("--max_queue", type=int, default=16)
    parser.add_argument("--parent_pid", type=int, default=0)
    parser.add_argument("--prefix_cache", choices=("True", "False"), default="False")
    args = parser.parse_args()
    if args.parent_pid:
        _exit_with_parent(args.parent_pid)
    server_settings = cli.parse_model_from_args(settings.ServerSettings, args)
    model_settings = [cli.parse_model_from_args(settings.ModelSettings, args)]
    _patch_llama(llama_cpp.Llama, prefix_cache=args.prefix_cache == "True")
    app = app_module.create_app(server_settings=server_settings, model_settings=model_settings)
    uvicorn.run(
        AdmissionGate(app, max(0, args.max_queue)),
        host=server_settings.host,
        port=server_settings.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
