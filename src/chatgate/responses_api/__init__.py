"""The OpenAI Responses API (``POST /v1/responses``) as a wire format over the canonical Chat
Completions types: a Responses request -> ChatRequest (``request``), a ChatResponse -> a
Response object (``response``), canonical chunks -> Responses stream events (``stream``).
Pure and stateless: nothing is stored, so nothing that needs a stored response is accepted."""

from __future__ import annotations

from chatgate.responses_api.request import Echo, chat_request_from_responses
from chatgate.responses_api.response import response_object
from chatgate.responses_api.stream import ChunksToResponseEvents, encode

__all__ = [
    "ChunksToResponseEvents",
    "Echo",
    "chat_request_from_responses",
    "encode",
    "response_object",
]
