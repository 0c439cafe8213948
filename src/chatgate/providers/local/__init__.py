"""``local/...``: a small model on this machine, served by a managed llama.cpp server.

The wire format is OpenAI's, so this adapter is the OpenAI adapter with the server's quirks
fixed on the way in (``request.py``), the missing stream usage added on the way out
(``stream.py``) and its 500 for a request it cannot validate read as the 400 it is
(``errors.py``). Starting, health-checking and restarting the server is ``server.py``'s job,
run through the registry's ``prepare`` hook; models are found by ``models.py``.
"""

from __future__ import annotations

from collections.abc import Mapping

from chatgate.errors import APIError
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.local import errors
from chatgate.providers.local.request import translate_request
from chatgate.providers.local.stream import LocalStreamTranslator
from chatgate.providers.openai import OpenAIAdapter
from chatgate.transport.sse import SSEDecoder
from chatgate.types import ChatRequest

__all__ = ["ADAPTER", "LocalAdapter"]


class LocalAdapter(OpenAIAdapter):
    name = "local"
    request_id_headers = ("x-request-id",)

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        return super().build_request(translate_request(request, deployment), deployment)

    def new_stream(  # type: ignore[override]  # same protocol, a different translator class
        self, request: ChatRequest, deployment: Deployment
    ) -> tuple[SSEDecoder, LocalStreamTranslator]:
        return SSEDecoder(), LocalStreamTranslator(deployment)

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
    ) -> APIError:
        return errors.map_error(status, headers, body, deployment)


ADAPTER = LocalAdapter()
