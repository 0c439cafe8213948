"""The provider table: model-string prefix -> adapter, default base URL, key env var, quirks.

An OpenAI-compatible service is one row here; it needs no code of its own.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatgate.errors import InvalidRequestError, MissingAPIKeyError
from chatgate.providers.base import Adapter, Deployment

__all__ = [
    "PROVIDERS",
    "ProviderSpec",
    "get_adapter",
    "prepare_deployment",
    "resolve_deployment",
    "split_model",
    "stop_prepared",
]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    base_url: str | None  # None: the caller must give api_base (self-hosted servers)
    key_env: str | None  # None: no key needed
    adapter: str = "openai"  # module under chatgate.providers exposing ADAPTER
    base_env: str | None = None  # env var that may override base_url
    key_required: bool = True
    unsupported_params: frozenset[str] = frozenset()
    # Roles whose content the server takes only as a string: a list of text parts is joined
    # (providers/content.py). OpenAI takes a list for every role; these refuse it with 4xx.
    string_content: frozenset[str] = frozenset()
    headers: Mapping[str, str] = field(default_factory=dict)
    stream_usage: bool = True
    version_env: str | None = None  # env var for api_version (Azure)
    default_version: str | None = None
    # Module with ``async def prepare(deployment) -> Deployment`` for what can only be found at
    # run time: start a managed local server, load cloud credentials. Adapters stay pure.
    prepare: str | None = None
    fetches_image_urls: bool = True  # False: http(s) image URLs must be sent as bytes
    # How response_model output is constrained (chatgate.structured): "strict" (json_schema
    # strict), "json_schema" (translated by the adapter: forced tool, responseSchema, grammar),
    # "json_object" (JSON mode, schema in the prompt) or "prompt" (no constraint support).
    structured_output: str = "json_schema"


_GROQ_REJECTS = frozenset({"logprobs", "top_logprobs", "logit_bias"})
_EVERY_ROLE = frozenset({"system", "developer", "user", "assistant", "tool"})

PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            base_env="OPENAI_BASE_URL",
            structured_output="strict",
        ),
        ProviderSpec(
            "groq",
            "https://api.groq.com/openai/v1",
            "GROQ_API_KEY",
            unsupported_params=_GROQ_REJECTS,
        ),
        ProviderSpec(
            "anthropic",
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            adapter="anthropic",
            base_env="ANTHROPIC_BASE_URL",
        ),
        ProviderSpec(
            "deepseek",
            "https://api.deepseek.com/v1",
            "DEEPSEEK_API_KEY",
            structured_output="json_object",
            string_content=_EVERY_ROLE,  # its API types content as a string for every role
        ),
        ProviderSpec("together_ai", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        ProviderSpec("fireworks_ai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
        ProviderSpec("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
        ProviderSpec("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        ProviderSpec("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
        ProviderSpec("perplexity", "https://api.perplexity.ai", "PERPLEXITYAI_API_KEY"),
        ProviderSpec("holysheep", "https://api.holysheep.ai/v1", "HOLYSHEEP_API_KEY"),
        ProviderSpec(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            "GEMINI_API_KEY",
            adapter="gemini",
            base_env="GEMINI_API_BASE",
            fetches_image_urls=False,
        ),
        ProviderSpec(
            "vertex_ai",
            None,  # https://{location}-aiplatform.googleapis.com/..., filled in by prepare
            None,  # an OAuth access token: api_key, VERTEXAI_ACCESS_TOKEN or ADC, in prepare
            adapter="gemini",
            base_env="VERTEXAI_API_BASE",
            key_required=False,
            prepare="chatgate.providers.gemini.vertex",
            fetches_image_urls=False,
        ),
        ProviderSpec(
            "ollama",
            "http://localhost:11434/v1",
            None,
            base_env="OLLAMA_API_BASE",
            key_required=False,
        ),
        ProviderSpec("vllm", None, "VLLM_API_KEY", base_env="VLLM_API_BASE", key_required=False),
        ProviderSpec(
            "llamacpp", None, "LLAMACPP_API_KEY", base_env="LLAMACPP_API_BASE", key_required=False
        ),
        ProviderSpec(
            "local",
            None,
            None,
            adapter="local",
            key_required=False,
            stream_usage=False,
            # llama-cpp-python types content as a string but for user messages (500 otherwise)
            string_content=frozenset({"system", "developer", "assistant", "tool"}),
            prepare="chatgate.providers.local.server",
        ),
        ProviderSpec(
            "azure",
            None,
            "AZURE_API_KEY",
            adapter="azure",
            base_env="AZURE_API_BASE",
            key_required=False,  # an Entra ID token may stand in: checked by prepare
            version_env="AZURE_API_VERSION",
            default_version="2024-10-21",
            prepare="chatgate.providers.azure",
            structured_output="strict",
        ),
        ProviderSpec(
            "bedrock",
            None,  # https://bedrock-runtime.{region}.amazonaws.com, filled in by prepare
            None,
            adapter="bedrock",
            base_env="AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
            key_required=False,  # AWS credentials come from botocore's chain in prepare
            prepare="chatgate.providers.bedrock.auth",
            fetches_image_urls=False,
        ),
    )
}


def split_model(model: str) -> tuple[ProviderSpec, str]:
    """'groq/llama-3.1-8b' -> (groq spec, 'llama-3.1-8b'); a bare name means OpenAI."""
    if not model or not model.strip():
        raise InvalidRequestError(
            "model must be a non-empty string like 'openai/gpt-4o-mini'", param="model"
        )
    prefix, sep, rest = model.partition("/")
    if not sep:
        return PROVIDERS["openai"], model
    spec = PROVIDERS.get(prefix)
    if spec is None:
        known = ", ".join(sorted(PROVIDERS))
        raise InvalidRequestError(
            f"unknown provider prefix {prefix!r} in model {model!r}; known prefixes: {known}. "
            f"For an OpenAI model whose name contains '/', write 'openai/{model}'.",
            param="model",
        )
    if not rest:
        raise InvalidRequestError(
            f"model {model!r} names no model after '{prefix}/'", param="model"
        )
    return spec, rest


def resolve_deployment(
    model: str,
    *,
    api_key: str | None = None,
    api_base: str | None = None,
    headers: Mapping[str, str] | None = None,
    api_version: str | None = None,
    drop_params: bool = False,
    options: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Deployment:
    """Everything needed to reach the model, checked before any network call."""
    environ = os.environ if env is None else env
    spec, upstream_model = split_model(model)
    base = api_base or (spec.base_env and environ.get(spec.base_env)) or spec.base_url
    if not base and spec.prepare is None:
        raise InvalidRequestError(
            f"provider {spec.name!r} has no default address: pass api_base='http://host:port/v1'"
            + (f" or set {spec.base_env}" if spec.base_env else ""),
            param="api_base",
        )
    key = api_key or (spec.key_env and environ.get(spec.key_env)) or None
    if key is None and spec.key_required:
        raise MissingAPIKeyError(
            f"no API key for provider {spec.name!r}: pass api_key=... or set {spec.key_env}",
            param="api_key",
            provider=spec.name,
            model=upstream_model,
        )
    return Deployment(
        provider=spec.name,
        model=upstream_model,
        api_base=(base or "").rstrip("/"),
        api_key=key,
        headers={**spec.headers, **(headers or {})},
        api_version=api_version
        or (spec.version_env and environ.get(spec.version_env))
        or spec.default_version,
        drop_params=drop_params,
        unsupported_params=spec.unsupported_params,
        string_content=spec.string_content,
        stream_usage=spec.stream_usage,
        options=dict(options or {}),
    )


_ADAPTERS: dict[str, Adapter] = {}


def get_adapter(provider: str) -> Adapter:
    adapter = _ADAPTERS.get(provider)
    if adapter is None:
        module = importlib.import_module(f"chatgate.providers.{PROVIDERS[provider].adapter}")
        adapter = _ADAPTERS[provider] = module.ADAPTER
    return adapter


async def prepare_deployment(deployment: Deployment) -> Deployment:
    """Run the provider's run-time preparation step, if it has one (see ProviderSpec.prepare)."""
    spec = PROVIDERS[deployment.provider]
    if spec.prepare is None:
        return deployment
    module = importlib.import_module(spec.prepare)
    prepared: Deployment = await module.prepare(deployment)
    return prepared


async def stop_prepared() -> None:
    """Stop what ``prepare`` steps started (managed local servers), for a clean shutdown."""
    import sys

    for name in sorted({spec.prepare for spec in PROVIDERS.values() if spec.prepare}):
        module = sys.modules.get(name)
        stop = getattr(module, "stop", None)
        if stop is not None:
            await stop()
