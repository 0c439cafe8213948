"""Which upstreams serve a requested model name: the config's model_list routed by a Router
(load balancing, retries, fallbacks), plus, with no config, the embedded local model and every
provider whose key is in the environment (``openai/<model>`` is added on first use).

Names added on first use are kept for the ``general_settings.max_open_models`` most recently
used; past that the least recently used one is forgotten (and added again if asked for), so
clients inventing names cannot grow the process without bound."""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from chatgate.config import Config
from chatgate.errors import InvalidRequestError
from chatgate.providers.base import Deployment
from chatgate.providers.registry import PROVIDERS, split_model
from chatgate.router import Router, RouterState
from chatgate.server.errors import GatewayError

__all__ = ["DEFAULT_LOCAL_MODEL", "ModelTable"]

DEFAULT_LOCAL_MODEL = "smollm2-135m"


class ModelTable:
    def __init__(
        self,
        config: Config,
        *,
        zero_config: bool,
        env: Mapping[str, str] | None = None,
        state: RouterState | None = None,
    ):
        self._env = dict(os.environ if env is None else env)
        self._open: OrderedDict[str, None] = OrderedDict()  # added on first use, LRU first
        self._max_open = config.general_settings.max_open_models
        entries: list[Any] = list(config.model_list)
        self.open_providers: list[str] = []
        if zero_config:
            if "local" in PROVIDERS and importlib.util.find_spec("llama_cpp") is not None:
                local = {"model": f"local/{DEFAULT_LOCAL_MODEL}"}
                entries.append({"model_name": DEFAULT_LOCAL_MODEL, "params": local})
                entries.append({"model_name": f"local/{DEFAULT_LOCAL_MODEL}", "params": local})
            self.open_providers = sorted(
                name
                for name, spec in PROVIDERS.items()
                if spec.key_env and spec.key_env in self._env
            )
        # every configured deployment is resolved now: a bad entry fails at start, not later
        self.router = Router(entries, settings=config.router_settings, env=self._env, state=state)

    @property
    def names(self) -> list[str]:
        return self.router.model_names

    def deployments(self) -> Iterator[Deployment]:
        for group in self.router.groups.values():
            for routed in group:
                yield routed.deployment

    def label(self, name: str) -> str:
        """provider/model of the group's first deployment, until one actually answers
        (a tiered name: its cheapest tier's)."""
        tiered = self.router.tiered.get(name)
        return (
            self.label(tiered.tiers[0]) if tiered is not None else self.router.groups[name][0].model
        )

    def resolve(self, name: str) -> str:
        """The model_list name to route ``name`` to; 404 naming what is served otherwise."""
        if name in self.router.groups or name in self.router.tiered:
            if name in self._open:
                self._open.move_to_end(name)
            return name
        try:
            spec, _ = split_model(name)
        except InvalidRequestError:
            spec = None
        if spec is not None and "/" in name and spec.name in self.open_providers:
            self.router.add_deployments([{"model_name": name, "params": {"model": name}}])
            self._open[name] = None
            while len(self._open) > self._max_open:
                self.router.remove_group(self._open.popitem(last=False)[0])
            return name
        configured = [n for n in self.names if n not in self._open]
        available = ", ".join(configured + [f"{p}/<model>" for p in self.open_providers])
        raise GatewayError(
            404,
            f"model {name!r} is not served here; available: {available or 'none configured'}",
            param="model",
            code="model_not_found",
        )
