"""The router's view of a model_list: deployments resolved once, grouped by model name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pydantic

from chatgate.config import ConfigError, DeploymentParams, ModelEntry
from chatgate.cost.prices import ModelPrice, lookup_price
from chatgate.errors import InvalidRequestError
from chatgate.providers.anthropic.cache_points import OPTION
from chatgate.providers.base import Deployment
from chatgate.providers.registry import resolve_deployment
from chatgate.router.state import Limits
from chatgate.transport.http import Timeouts

__all__ = ["RoutedDeployment", "build_groups"]


@dataclass(frozen=True, slots=True)
class RoutedDeployment:
    id: str  # model_info.id, else "<model_name>#<n>" (n counts within the group, from 0)
    model_name: str
    model: str  # the provider/model string, for messages and the attempt log
    deployment: Deployment = field(repr=False)
    timeouts: Timeouts | None  # None: the call's deadline alone bounds it
    limits: Limits
    weight: float = 1.0
    tags: frozenset[str] = frozenset()
    cost: float | None = None  # for cost-based routing: `cost` param, else the price table
    context_window: int | None = None


def _entries(model_list: Sequence[ModelEntry | Mapping[str, Any]]) -> list[ModelEntry]:
    entries = []
    for i, raw in enumerate(model_list):
        if isinstance(raw, ModelEntry):
            entries.append(raw)
            continue
        try:
            entries.append(ModelEntry.model_validate(raw))
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
            raise ConfigError(f"model_list[{i}].{where}: {problem}", param=where) from None
    return entries


def _resolve(params: DeploymentParams, where: str, env: Mapping[str, str] | None) -> Deployment:
    try:
        return resolve_deployment(
            params.model,
            api_key=params.api_key,
            api_base=params.api_base,
            api_version=params.api_version,
            headers=params.extra_headers,
            drop_params=params.drop_params,
            env=env,
            options={OPTION: True} if params.auto_prompt_cache else None,
        )
    except InvalidRequestError as exc:
        raise ConfigError(f"{where}: {exc.message}", param=exc.param) from None


def _price(params: DeploymentParams, where: str) -> ModelPrice | None:
    try:
        return params.price()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", param=exc.param) from None


def _blended(price: ModelPrice | None) -> float | None:
    """USD per million tokens, three input tokens to one output: a typical chat mix."""
    if price is None:
        return None
    return float((price.input * 3 + price.output) / 4 * 1_000_000)


def build_groups(
    model_list: Sequence[ModelEntry | Mapping[str, Any]], env: Mapping[str, str] | None = None
) -> dict[str, list[RoutedDeployment]]:
    """Resolve every deployment now, so a missing key fails at startup, not on a request."""
    groups: dict[str, list[RoutedDeployment]] = {}
    seen: set[str] = set()
    for i, entry in enumerate(_entries(model_list)):
        params = entry.params
        group = groups.setdefault(entry.model_name, [])
        id = entry.model_info.id or f"{entry.model_name}#{len(group)}"
        if id in seen:
            raise ConfigError(f"model_list[{i}].model_info.id: {id!r} is used twice", param="id")
        seen.add(id)
        deployment = _resolve(params, f"model_list[{i}].params", env)
        price = _price(params, f"model_list[{i}].params")
        if price is not None:
            deployment = replace(deployment, price=price)
        table = price or lookup_price(params.model)
        group.append(
            RoutedDeployment(
                id=id,
                model_name=entry.model_name,
                model=params.model,
                deployment=deployment,
                timeouts=Timeouts.of(params.timeout) if params.timeout else None,
                limits=Limits(params.rpm, params.tpm, params.max_parallel_requests),
                weight=params.weight,
                tags=frozenset(params.tags),
                cost=params.cost if params.cost is not None else _blended(table),
                context_window=params.context_window or (table.context_window if table else None),
            )
        )
    return groups
