"""Everything a request handler needs, built once per app by create_app."""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.config import Config
from chatgate.server.models import ModelTable

__all__ = ["GatewayState"]


@dataclass(slots=True)
class GatewayState:
    config: Config
    models: ModelTable
    master_key: str | None
