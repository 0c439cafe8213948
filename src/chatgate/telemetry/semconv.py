"""Attribute names and builders by the OpenTelemetry GenAI semantic conventions (v1.37+), and
ours under ``chatgate.``. Pure functions over chatgate's types: no OpenTelemetry import here.

The names are written out rather than imported from ``opentelemetry-semantic-conventions``:
that package is not a dependency of the API, its GenAI names sit in an ``_incubating`` module
that moves between releases, and the library must depend on the API only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from chatgate.embedding_types import EmbeddingRequest, EmbeddingResponse
    from chatgate.providers.base import Deployment
    from chatgate.types import ChatRequest, ChatResponse, Usage

__all__ = [
    "CACHE_STATUS",
    "COST_USD",
    "DEPLOYMENT_ID",
    "ERROR_TYPE",
    "FALLBACK_TAKEN",
    "INPUT_MESSAGES",
    "OPERATION",
    "OUTPUT_MESSAGES",
    "PARAMETER_NAMES",
    "PROVIDER",
    "REQUEST_MODEL",
    "RESPONSE_MODEL",
    "SERVED_GROUP",
    "TIME_TO_FIRST_CHUNK",
    "Attributes",
    "chat_request_attributes",
    "chat_response_attributes",
    "deployment_attributes",
    "embedding_request_attributes",
    "embedding_response_attributes",
    "parameter_attributes",
    "provider_name",
    "read_parameters",
    "request_parameters",
    "usage_attributes",
]

AttrValue = str | bool | int | float | list[str]
Attributes = dict[str, AttrValue]

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # seconds
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# Ours.
COST_USD = "chatgate.cost_usd"
DEPLOYMENT_ID = "chatgate.deployment.id"
ATTEMPT = "chatgate.attempt"
MODEL_GROUP = "chatgate.model_group"
FALLBACK_TAKEN = "chatgate.fallback_taken"
SERVED_GROUP = "chatgate.served_group"
CACHE_STATUS = "chatgate.cache.status"

# gen_ai.provider.name's well-known values; other registry names are used as they are.
_PROVIDER_NAMES = {
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}

# ChatRequest field -> gen_ai.request.* attribute (numbers and strings as they are).
_REQUEST_FIELDS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("seed", "gen_ai.request.seed"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
)
_DEFAULT_PORTS = {"https": 443, "http": 80}


def provider_name(provider: str) -> str:
    return _PROVIDER_NAMES.get(provider, provider)


@lru_cache(maxsize=1024)
def deployment_attributes(operation: str, provider: str, api_base: str) -> Attributes:
    """What an attempt's attributes owe to its deployment alone: parsed once per deployment,
    not per request (urlsplit alone is a few microseconds). Shared: callers copy it."""
    attrs: Attributes = {OPERATION: operation, PROVIDER: provider_name(provider)}
    parts = urlsplit(api_base)
    if parts.hostname:
        attrs[SERVER_ADDRESS] = parts.hostname
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        if port is not None:
            attrs[SERVER_PORT] = port
    return attrs


def chat_request_attributes(request: ChatRequest, deployment: Deployment) -> Attributes:
    attrs = deployment_attributes("chat", deployment.provider, deployment.api_base).copy()
    attrs[REQUEST_MODEL] = request.model
    attrs.update(request_parameters(request))
    return attrs


# A request's parameters as one tuple, read in one call (an attempt span's facts keep it).
PARAMETER_NAMES = (
    *(name for name, _ in _REQUEST_FIELDS),
    "max_completion_tokens",
    "max_tokens",
    "n",
    "stop",
    "stream",
)
read_parameters: Callable[[ChatRequest], tuple[Any, ...]] = attrgetter(*PARAMETER_NAMES)


def request_parameters(request: ChatRequest) -> Attributes:
    """The ``gen_ai.request.*`` attributes of the parameters the request gives."""
    return parameter_attributes(read_parameters(request))


def parameter_attributes(values: tuple[Any, ...]) -> Attributes:
    """``request_parameters`` from what ``read_parameters`` read."""
    attrs: Attributes = {}
    for (_, key), value in zip(_REQUEST_FIELDS, values, strict=False):
        if value is not None:
            attrs[key] = value
    max_completion_tokens, max_tokens, n, stop, stream = values[len(_REQUEST_FIELDS) :]
    if (limit := max_completion_tokens or max_tokens) is not None:  # ChatRequest.output_limit
        attrs["gen_ai.request.max_tokens"] = limit
    if n is not None and n != 1:
        attrs["gen_ai.request.choice.count"] = n
    if stop is not None:
        attrs["gen_ai.request.stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if stream:
        attrs["gen_ai.request.stream"] = True
    return attrs


def usage_attributes(usage: Usage | None) -> Attributes:
    if usage is None:
        return {}
    attrs: Attributes = {INPUT_TOKENS: usage.prompt_tokens, OUTPUT_TOKENS: usage.completion_tokens}
    prompt = usage.prompt_tokens_details
    if prompt is not None:
        if prompt.cached_tokens is not None:
            attrs[CACHE_READ_TOKENS] = prompt.cached_tokens
        if prompt.cache_creation_tokens is not None:
            attrs[CACHE_CREATION_TOKENS] = prompt.cache_creation_tokens
    completion = usage.completion_tokens_details
    if completion is not None and completion.reasoning_tokens is not None:
        attrs[REASONING_TOKENS] = completion.reasoning_tokens
    return attrs


def _reasons(reasons: Iterable[str | None]) -> list[str]:
    return [r for r in reasons if r]


def chat_response_attributes(response: ChatResponse) -> Attributes:
    attrs = usage_attributes(response.usage)
    if response.model:
        attrs[RESPONSE_MODEL] = response.model
    if response.id:
        attrs[RESPONSE_ID] = response.id
    reasons = _reasons(c.finish_reason for c in response.choices)
    if reasons:
        attrs[FINISH_REASONS] = reasons
    meta = response.meta
    if meta.cost is not None:
        attrs[COST_USD] = _usd(meta.cost)
    if meta.ttft_ms is not None:
        attrs[TIME_TO_FIRST_CHUNK] = meta.ttft_ms / 1000.0
    return attrs


def embedding_request_attributes(request: EmbeddingRequest, deployment: Deployment) -> Attributes:
    attrs = deployment_attributes("embeddings", deployment.provider, deployment.api_base).copy()
    attrs[REQUEST_MODEL] = request.model
    if request.encoding_format is not None:
        attrs["gen_ai.request.encoding_formats"] = [request.encoding_format]
    if request.dimensions is not None:
        attrs["gen_ai.embeddings.dimension.count"] = request.dimensions
    return attrs


def embedding_response_attributes(response: EmbeddingResponse) -> Attributes:
    attrs: Attributes = {}
    if response.model:
        attrs[RESPONSE_MODEL] = response.model
    if response.usage is not None:
        attrs[INPUT_TOKENS] = response.usage.prompt_tokens
    if response.meta.cost is not None:
        attrs[COST_USD] = _usd(response.meta.cost)
    return attrs


def _usd(cost: Decimal) -> float:
    return float(cost)
