"""Google Gemini (AI Studio, ``generativelanguage.googleapis.com/v1beta``) as a Chat
Completions provider. The translation table is in docs/providers/gemini.md."""

from __future__ import annotations

from collections.abc import Mapping

from chatgate.errors import APIError
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.gemini.errors import error_from_body
from chatgate.providers.gemini.request import build_request
from chatgate.providers.gemini.response import parse_response
from chatgate.providers.gemini.schema import ChatgateSchemaWarning
from chatgate.providers.gemini.stream import GeminiStreamTranslator
from chatgate.transport.sse import SSEDecoder
from chatgate.types import ChatRequest, ChatResponse

__all__ = ["ADAPTER", "ChatgateSchemaWarning", "GeminiAdapter", "GeminiStreamTranslator"]


class GeminiAdapter:
    name = "gemini"
    request_id_headers: tuple[str, ...] = ()  # Google sends none; responseId becomes the id

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        return build_request(request, deployment)

    def parse_response(
        self, body: bytes, request: ChatRequest, deployment: Deployment
    ) -> ChatResponse:
        return parse_response(body, deployment)

    def new_stream(
        self, request: ChatRequest, deployment: Deployment
    ) -> tuple[SSEDecoder, GeminiStreamTranslator]:
        return SSEDecoder(), GeminiStreamTranslator(deployment)

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
    ) -> APIError:
        return error_from_body(status, headers, body, deployment)


ADAPTER = GeminiAdapter()
