"""Everything a request handler needs, built from one config. A reload builds a new one and
swaps it in whole; requests already running keep the one they started with."""

from __future__ import annotations

from dataclasses import dataclass

from chatgate.config import Config
from chatgate.server.models import ModelTable
from chatgate.server.services import Services

__all__ = ["GatewayState"]


@dataclass(frozen=True, slots=True)
class GatewayState:
    config: Config
    models: ModelTable
    master_key: str | None
    services: Services
    log_content: bool = False

    @classmethod
    def build(
        cls, config: Config, services: Services, *, zero_config: bool | None = None
    ) -> GatewayState:
        """Resolve every configured model now: a bad entry fails here, not on a request."""
        if zero_config is None:
            zero_config = not config.model_list
        settings = config.general_settings
        return cls(
            config=config,
            models=ModelTable(
                config, zero_config=zero_config, state=services.router_state(config.router_settings)
            ),
            master_key=settings.master_key,
            services=services,
            log_content=settings.log_content,
        )
