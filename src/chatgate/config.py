"""The config file shape shared by the router and the gateway (YAML; see docs/configuration.md).

    model_list:
      - model_name: smart                # the name clients ask for
        params:                          # `litellm_params` is accepted as an alias
          model: openai/gpt-4o
          api_key: os.environ/OPENAI_API_KEY
    general_settings: {master_key: os.environ/CHATGATE_MASTER_KEY}

A value ``os.environ/NAME`` is read from the environment when the config is loaded. Unknown
keys are errors that name the key and where it is, never silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from chatgate.cost.budget_tags import check_tag_subject
from chatgate.errors import InvalidRequestError
from chatgate.tiering.settings import TieredModelSettings

if TYPE_CHECKING:
    from chatgate.cost.prices import ModelPrice
    from chatgate.yaml_lines import LineFinder

__all__ = [
    "Config",
    "ConfigError",
    "DeploymentParams",
    "GeneralSettings",
    "ModelEntry",
    "OtelSettings",
    "RouterSettings",
    "SharedStateFailure",
    "load",
    "parse",
]


class ConfigError(InvalidRequestError):
    """The config file is wrong; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DeploymentParams(_Strict):
    model: str
    api_key: str | None = Field(default=None, repr=False)
    api_base: str | None = None
    api_version: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    drop_params: bool = False
    # /v1/responses: refuse (400) hosted tools this deployment cannot run instead of dropping
    strict_tools: bool = False
    extra_headers: dict[str, str] | None = Field(default=None, repr=False)
    # routing (see docs/routing.md)
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    weight: float = Field(default=1.0, gt=0)
    max_parallel_requests: int | None = Field(default=None, gt=0)
    tags: list[str] = Field(default_factory=list)
    cost: float | None = Field(default=None, ge=0)  # relative, for cost-based routing
    context_window: int | None = Field(default=None, gt=0)
    # Anthropic / Bedrock-Claude: place prompt-cache breakpoints when the client set none
    auto_prompt_cache: bool = False
    # Pricing (USD per token; LiteLLM's names, so LiteLLM configs load as they are).
    input_cost_per_token: Decimal | None = Field(default=None, ge=0)
    output_cost_per_token: Decimal | None = Field(default=None, ge=0)
    cache_read_input_token_cost: Decimal | None = Field(default=None, ge=0)
    cache_creation_input_token_cost: Decimal | None = Field(default=None, ge=0)
    cache_creation_input_token_cost_above_1hr: Decimal | None = Field(default=None, ge=0)
    output_cost_per_reasoning_token: Decimal | None = Field(default=None, ge=0)
    base_model: str | None = None  # price this deployment as that model (azure/<deployment>)
    free: bool = False  # self-hosted: every token costs 0

    def price(self) -> ModelPrice | None:
        """The configured price, layered over the price table's row for ``base_model`` (or
        ``model``); None when nothing is configured (the table decides at call time)."""
        from chatgate.cost.prices import FREE, MissingPriceError, layer_price, lookup_price

        if self.free:
            return FREE
        given = {
            field: value
            for field, value in (
                ("input", self.input_cost_per_token),
                ("output", self.output_cost_per_token),
                ("cached_input", self.cache_read_input_token_cost),
                ("cache_write", self.cache_creation_input_token_cost),
                ("cache_write_1h", self.cache_creation_input_token_cost_above_1hr),
                ("reasoning", self.output_cost_per_reasoning_token),
            )
            if value is not None
        }
        base = lookup_price(self.base_model or self.model)
        if self.base_model and base is None:
            raise ConfigError(
                f"base_model {self.base_model!r} has no price in the price table; give "
                "input_cost_per_token and output_cost_per_token instead",
                param="base_model",
            )
        if not given:
            return base if self.base_model else None
        try:
            return layer_price(self.model, base, given, "config")
        except MissingPriceError as exc:
            names = " and ".join(f"{n}_cost_per_token" for n in exc.missing)
            raise ConfigError(
                f"{self.model} has no price in the price table: set {names}",
                param=f"{exc.missing[0]}_cost_per_token",
            ) from None


class ModelInfo(_Strict):
    id: str | None = Field(default=None, min_length=1)


class ModelEntry(_Strict):
    model_name: str = Field(min_length=1)
    params: DeploymentParams = Field(
        validation_alias=pydantic.AliasChoices("params", "litellm_params")
    )
    model_info: ModelInfo = Field(default_factory=ModelInfo)


Strategy = Literal[
    "simple-shuffle", "round-robin", "least-busy", "latency-based", "cost-based", "usage-based"
]
# LiteLLM's names for the same strategies, so its configs load unchanged.
STRATEGY_ALIASES = {
    "latency-based-routing": "latency-based",
    "cost-based-routing": "cost-based",
    "usage-based-routing": "usage-based",
    "usage-based-routing-v2": "usage-based",
}

Fallbacks = list[dict[str, list[str]]]
SharedStateFailure = Literal["open", "closed"]


class RouterSettings(_Strict):
    routing_strategy: Strategy = "simple-shuffle"
    num_retries: int = Field(default=2, ge=0)
    timeout: float = Field(default=600.0, gt=0)  # one deadline for the whole call
    fallbacks: Fallbacks = Field(default_factory=list)
    context_window_fallbacks: Fallbacks = Field(default_factory=list)
    content_policy_fallbacks: Fallbacks = Field(default_factory=list)
    cooldown_time: float = Field(default=30.0, ge=0)
    allowed_fails: int = Field(default=3, ge=1)
    failure_window: float = Field(default=60.0, gt=0)
    retry_base_delay: float = Field(default=0.5, ge=0)
    retry_max_delay: float = Field(default=8.0, ge=0)
    limit_wait: float = Field(default=1.0, ge=0)  # longest wait for an RPM/TPM/parallel slot
    max_parallel_requests: int | None = Field(default=None, gt=0)  # admission, per process
    max_queue: int = Field(default=0, ge=0)
    latency_exploration: float = Field(default=0.05, ge=0, le=1)
    enable_pre_call_checks: bool = True
    # Shared state (cooldowns, RPM/TPM, in-flight; the gateway's per-key limits) in Redis, for
    # every worker and instance: redis_url, or LiteLLM's redis_host/_port/_password.
    redis_url: str | None = Field(default=None, repr=False)
    redis_host: str | None = None
    redis_port: int = Field(default=6379, gt=0, lt=65536)
    redis_password: str | None = Field(default=None, repr=False)
    redis_namespace: str = Field(default="default", pattern=r"^[A-Za-z0-9_.:-]+$")
    # While that Redis is unreachable: "open" serves with per-process limits, "closed"
    # refuses routed calls and key-limited requests (SharedStateUnavailableError, 503).
    shared_state_failure: SharedStateFailure = "open"
    # Cache-aware routing (router/affinity.py, docs/routing.md): a request goes to a
    # deployment that served its longest known prompt prefix, within health and limits.
    cache_affinity: bool = True
    cache_affinity_ttl: float = Field(default=600.0, gt=0)  # how long a deployment stays warm
    cache_affinity_max_prefixes: int = Field(default=10_000, gt=0)  # per-process LRU bound
    cache_affinity_min_tokens: int = Field(default=1024, ge=1)  # shorter prefixes: no affinity
    # routed names whose tier a local classifier picks (docs/routing.md, "Tiered routing")
    tiers: list[TieredModelSettings] = Field(default_factory=list)

    @pydantic.field_validator("routing_strategy", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        return STRATEGY_ALIASES.get(value, value) if isinstance(value, str) else value

    @pydantic.model_validator(mode="after")
    def _one_redis(self) -> RouterSettings:
        if self.redis_url and (self.redis_host or self.redis_password):
            raise ValueError(
                "give redis_url or redis_host (with redis_port, redis_password), not both; "
                "a password goes in the URL: redis://:PASSWORD@host:6379/0"
            )
        if self.redis_password and not self.redis_host:
            raise ValueError("redis_password needs redis_host (or put it in redis_url)")
        return self

    def shared_state_url(self) -> str | None:
        """The Redis that holds the router's state, as a URL; None: each process its own."""
        if self.redis_url or not self.redis_host:
            return self.redis_url or None
        from urllib.parse import quote

        host = f"[{self.redis_host}]" if ":" in self.redis_host else self.redis_host
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{host}:{self.redis_port}/0"


class BudgetSettings(_Strict):
    """A budget in force at the gateway (keys carry their own; see docs/cost.md)."""

    scope: Literal["key", "user", "team", "model", "tag", "global"]
    limit: Decimal = Field(ge=0)  # USD
    window: Literal["daily", "monthly", "lifetime"] = "monthly"
    # the key id, user, team, model or tag it caps; "*": each its own (not for tags)
    subject: str = Field(default="*", validate_default=True)
    alerts: list[Decimal] = Field(default_factory=lambda: [Decimal("0.8")])

    @pydantic.field_validator("subject")
    @classmethod
    def _one_tag(cls, value: str, info: pydantic.ValidationInfo) -> str:
        if info.data.get("scope") == "tag":
            try:
                check_tag_subject(value)
            except InvalidRequestError as refused:
                raise ValueError(refused.args[0]) from None
        return value


class CacheSettings(_Strict):
    backend: Literal["memory", "sqlite", "redis"] = "memory"
    mode: Literal["auto", "always", "never"] = "auto"  # auto: temperature 0 or a seed only
    ttl: float | None = Field(default=3600.0, gt=0)
    max_bytes: int | None = Field(default=None, gt=0)  # memory backend bound
    path: str | None = None  # sqlite file
    url: str | None = Field(default=None, repr=False)  # redis://...


class OtelSettings(_Strict):
    """OpenTelemetry export (docs/observability.md). What is left out here falls back to the
    standard OTEL_EXPORTER_OTLP_* / OTEL_SERVICE_NAME variables, then to the SDK defaults."""

    endpoint: str | None = None  # the collector's base URL (http/protobuf) or host:port (grpc)
    protocol: Literal["http/protobuf", "grpc"] | None = None  # default: http/protobuf
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # auth for a vendor
    service_name: str | None = None  # default: OTEL_SERVICE_NAME, else "chatgate"
    sample_rate: float = Field(default=1.0, ge=0, le=1)  # of new traces; a caller's is kept
    capture_content: bool = False  # prompts and answers on spans (scrubbed of secrets)
    max_queue_size: int = Field(default=2048, gt=0)  # spans waiting for export; past it dropped
    export_timeout_s: float = Field(default=5.0, gt=0)  # one export attempt
    metrics: bool = True  # export the GenAI metrics too
    metrics_interval_s: float = Field(default=60.0, gt=0)


class GeneralSettings(_Strict):
    master_key: str | None = Field(default=None, repr=False)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # What one client may hold of `chatgate serve` (docs/operations.md, connection limits):
    header_timeout_s: float = Field(default=10.0, gt=0)  # request line + headers, or 408
    body_timeout_s: float = Field(default=30.0, gt=0)  # the whole body after them, or 408
    max_connections: int = Field(default=4096, gt=0)  # open, per process; beyond: 503
    keep_alive_timeout_s: float = Field(default=5.0, gt=0)  # idle between requests
    # keys, spend log, budgets; default sqlite:///chatgate.db (or CHATGATE_DATABASE_URL)
    database_url: str | None = Field(default=None, repr=False)
    log_content: bool = False  # put message content in the access log
    shutdown_grace_s: float = Field(default=30.0, ge=0)  # in-flight time allowed on SIGTERM
    budgets: list[BudgetSettings] = Field(default_factory=list)
    cache: CacheSettings | None = None  # no response cache unless configured
    key_cache_ttl_s: float = Field(default=5.0, ge=0)  # how long a key lookup is reused
    # The most choices (`n`) a request may ask for: each may use the whole output cap.
    max_n: int = Field(default=16, ge=1, le=128)
    # A budget hold its process stopped renewing (it died) is released after this long;
    # None: router_settings.timeout plus a margin (docs/cost.md).
    budget_hold_ttl_s: float | None = Field(default=None, ge=1)
    # zero-config: provider/<model> names added on first use, least recently used dropped past it
    max_open_models: int = Field(default=1000, gt=0)
    metrics_max_models: int = Field(default=500, gt=0)  # label values; past it: "other"
    metrics_require_key: bool = False  # GET /metrics needs the master key
    spend_wal_dir: str | None = None  # default: chatgate-spend-wal beside the SQLite file, or ./
    otel: OtelSettings | None = None  # OpenTelemetry export; also on with OTEL_EXPORTER_OTLP_*


class Config(_Strict):
    model_list: list[ModelEntry] = Field(default_factory=list)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)


Path_ = tuple[str | int, ...]


def _resolve_env(
    value: Any, env: Mapping[str, str], where: str, path: Path_, lines: LineFinder | None
) -> Any:
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value.removeprefix("os.environ/")
        if name not in env:
            raise ConfigError(
                f"{_at(lines, path)}{where}: environment variable {name} is not set", param=where
            )
        return env[name]
    if isinstance(value, dict):
        return {
            k: _resolve_env(v, env, f"{where}.{k}", (*path, k), lines) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _resolve_env(v, env, f"{where}[{i}]", (*path, i), lines) for i, v in enumerate(value)
        ]
    return value


def _at(lines: LineFinder | None, path: Path_) -> str:
    line = lines.line(path) if lines is not None else None
    return f"line {line}: " if line is not None else ""


def parse(
    data: Any,
    env: Mapping[str, str] | None = None,
    source: str = "config",
    lines: LineFinder | None = None,
) -> Config:
    """Validate config data; ``lines`` (from ``load``) lets errors name the file's line."""
    environ = os.environ if env is None else env
    resolved = _resolve_env(data or {}, environ, source, (), lines)
    try:
        return Config.model_validate(resolved)
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{_at(lines, error['loc'])}{where}: {problem}")
        raise ConfigError(f"{source}: " + "; ".join(problems), param=problems[0]) from None


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    import yaml

    from chatgate.yaml_lines import LineFinder

    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text)
        lines = LineFinder(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(data, env, str(path), lines)
