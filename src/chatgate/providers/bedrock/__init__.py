"""AWS Bedrock Runtime through the Converse and ConverseStream APIs, SigV4-signed.

``bedrock/<modelId>`` (e.g. ``bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0``, or an
inference-profile id or ARN). Needs the ``chatgate[bedrock]`` extra (botocore), imported only
inside this package. Credentials and region are looked up by ``auth.prepare`` (the registry
row's prepare step); everything here is pure, with the signing clock injectable.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping

try:
    import botocore  # noqa: F401 (checked here so the error names the extra)
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "the Bedrock provider needs botocore: pip install 'chatgate[bedrock]'"
    ) from exc

from chatgate.errors import APIError
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.bedrock import errors, request, response
from chatgate.providers.bedrock.stream import BedrockStreamTranslator, EventStreamFramer
from chatgate.types import ChatRequest, ChatResponse

__all__ = ["ADAPTER", "BedrockAdapter"]

Clock = Callable[[], datetime.datetime]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class BedrockAdapter:
    name = "bedrock"
    request_id_headers = ("x-amzn-requestid",)  # aiohttp headers are case-insensitive

    def __init__(self, clock: Clock = _utc_now) -> None:
        self._clock = clock  # signing time and ``created``; tests pin it

    def build_request(self, chat: ChatRequest, deployment: Deployment) -> HttpRequest:
        return request.build_request(chat, deployment, self._clock())

    def parse_response(
        self, body: bytes, chat: ChatRequest, deployment: Deployment
    ) -> ChatResponse:
        return response.parse_response(
            body,
            deployment,
            json_tool=request.json_tool_name(chat),
            created=int(self._clock().timestamp()),
        )

    def new_stream(
        self, chat: ChatRequest, deployment: Deployment
    ) -> tuple[EventStreamFramer, BedrockStreamTranslator]:
        translator = BedrockStreamTranslator(
            deployment,
            json_tool=request.json_tool_name(chat),
            created=int(self._clock().timestamp()),
        )
        return EventStreamFramer(deployment), translator

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
    ) -> APIError:
        return errors.map_error(status, headers, body, deployment)


ADAPTER = BedrockAdapter()
