"""Anthropic's Messages API (https://api.anthropic.com/v1/messages), both directions.

``request`` / ``messages`` build the call, ``response`` and ``stream`` read answers, ``errors``
maps error bodies, and ``reverse`` turns Anthropic-format requests into ChatRequests and
canonical answers back into Anthropic messages and events (the gateway's /v1/messages).
Translation table: docs/providers/anthropic.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from chatgate.errors import APIError
from chatgate.providers.anthropic import errors, request, response
from chatgate.providers.anthropic.stream import AnthropicStreamTranslator
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.transport.sse import SSEDecoder
from chatgate.types import ChatRequest, ChatResponse

__all__ = ["ADAPTER", "AnthropicAdapter"]


class AnthropicAdapter:
    name = "anthropic"
    request_id_headers = ("request-id",)

    def build_request(self, request_: ChatRequest, deployment: Deployment) -> HttpRequest:
        return request.build_request(request_, deployment)

    def parse_response(
        self, body: bytes, request_: ChatRequest, deployment: Deployment
    ) -> ChatResponse:
        return response.parse_message(body, request_, deployment)

    def new_stream(
        self, request_: ChatRequest, deployment: Deployment
    ) -> tuple[SSEDecoder, AnthropicStreamTranslator]:
        json_tool = request.json_schema_tool_name(request_)
        return SSEDecoder(), AnthropicStreamTranslator(deployment, json_tool)

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
    ) -> APIError:
        return errors.map_error(status, headers, body, deployment)


ADAPTER = AnthropicAdapter()
