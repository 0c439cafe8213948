"""Which upstream serves a requested model name: the config's model_list, plus (with no config)
the embedded local model and every provider whose key is in the environment."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass

from chatgate.config import Config, DeploymentParams
from chatgate.errors import InvalidRequestError
from chatgate.providers.base import Deployment
from chatgate.providers.registry import PROVIDERS, resolve_deployment, split_model
from chatgate.server.errors import GatewayError
from chatgate.transport.http import Timeouts

__all__ = ["DEFAULT_LOCAL_MODEL", "ModelTable", "Target"]

DEFAULT_LOCAL_MODEL = "smollm2-135m"


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # the name the client asked for
    deployment: Deployment
    timeouts: Timeouts

    @property
    def label(self) -> str:
        """provider/model: what serves this name (x-chatgate-model, metrics, access log)."""
        return f"{self.deployment.provider}/{self.deployment.model}"


class ModelTable:
    def __init__(self, config: Config, *, zero_config: bool, env: Mapping[str, str] | None = None):
        self._env = dict(os.environ if env is None else env)
        self._entries: dict[str, DeploymentParams] = {}
        for entry in config.model_list:
            self._entries.setdefault(entry.model_name, entry.params)  # routing: first wins for now
        self.open_providers: list[str] = []
        if zero_config:
            if "local" in PROVIDERS and importlib.util.find_spec("llama_cpp") is not None:
                local = DeploymentParams(model=f"local/{DEFAULT_LOCAL_MODEL}")
                self._entries.setdefault(DEFAULT_LOCAL_MODEL, local)
                self._entries.setdefault(f"local/{DEFAULT_LOCAL_MODEL}", local)
            self.open_providers = sorted(
                name
                for name, spec in PROVIDERS.items()
                if spec.key_env and spec.key_env in self._env
            )
        self._cache: dict[str, Target] = {}
        for name in self._entries:  # resolve configured models once, at startup: fail early
            self._cache[name] = self._target(name, self._entries[name])

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def _target(self, name: str, params: DeploymentParams) -> Target:
        deployment = resolve_deployment(
            params.model,
            api_key=params.api_key,
            api_base=params.api_base,
            api_version=params.api_version,
            headers=params.extra_headers,
            drop_params=params.drop_params,
            env=self._env,
        )
        return Target(name, deployment, Timeouts.of(params.timeout))

    def resolve(self, name: str) -> Target:
        target = self._cache.get(name)
        if target is not None:
            return target
        try:
            spec, _ = split_model(name)
        except InvalidRequestError:
            spec = None
        if spec is not None and "/" in name and spec.name in self.open_providers:
            target = self._cache[name] = self._target(name, DeploymentParams(model=name))
            return target
        available = ", ".join(self.names + [f"{p}/<model>" for p in self.open_providers])
        raise GatewayError(
            404,
            f"model {name!r} is not served here; available: {available or 'none configured'}",
            param="model",
            code="model_not_found",
        )
