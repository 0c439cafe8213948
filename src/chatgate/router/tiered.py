"""The tiered names a Router serves (``router_settings.tiers`` or ``Router(tiers=...)``),
checked against its model groups: each tier a group, the name itself not one. When the
Router's state is in Redis, so are its conversations' tier floors (tiering/shared_session.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chatgate.config import ConfigError
from chatgate.cost.calc import price_of
from chatgate.errors import APITimeoutError
from chatgate.router.deployments import RoutedDeployment
from chatgate.router.state import RouterState
from chatgate.stream import ChatStream
from chatgate.tiering.route import Send, TieredModel
from chatgate.tiering.session import SessionFloors, SessionTiers
from chatgate.tiering.settings import TieredModelSettings
from chatgate.types import ChatRequest, ChatResponse

if TYPE_CHECKING:
    from chatgate.router.router import Router

__all__ = ["build_tiered", "tier_sender"]


def tier_sender(router: Router, timeout: float, **options: Any) -> Send:
    """How a tiered call sends to a tier: ``router.aroute`` with the caller's options, under
    one deadline for the whole call, escalations included."""
    deadline = router.now() + timeout

    async def send(request: ChatRequest) -> ChatResponse | ChatStream:
        left = deadline - router.now()
        if left <= 0:
            raise APITimeoutError(
                f"the call's {timeout:g}s deadline passed before tier {request.model!r}",
                model=request.model,
            )
        result: ChatResponse | ChatStream = await router.aroute(request, timeout=left, **options)
        return result

    return send


def build_tiered(
    specs: Sequence[TieredModelSettings | Mapping[str, Any]],
    groups: Mapping[str, list[RoutedDeployment]],
    state: RouterState | None = None,
) -> dict[str, TieredModel]:
    out: dict[str, TieredModel] = {}
    for raw in specs:
        spec = raw if isinstance(raw, TieredModelSettings) else _parse(raw)
        name = spec.model_name
        if name in groups or name in out:
            raise ConfigError(
                f"tiers: {name!r} is already a model name; a tiered name must be new",
                param="tiers",
            )
        missing = [tier for tier in spec.tiers if tier not in groups]
        if missing:
            raise ConfigError(
                f"tiers: {name!r} lists {', '.join(missing)}, not in the model_list; "
                f"tiers are model_list names: {', '.join(groups) or 'none'}",
                param="tiers",
            )
        premium = groups[spec.tiers[-1]][0].deployment
        try:
            out[name] = TieredModel(spec, price_of(premium), sessions=_shared_sessions(spec, state))
        except (OSError, ValueError) as exc:  # an examples_file that is missing or malformed
            raise ConfigError(f"tiers: {name!r}: {exc}", param="examples_file") from None
    return out


def _shared_sessions(spec: TieredModelSettings, state: RouterState | None) -> SessionFloors | None:
    """Floors in the Router's Redis, beside its state, when it keeps its state there; a call
    answered from memory while Redis is down counts as the state's own fallbacks do."""
    from chatgate.router.redis_state import RedisState

    if not isinstance(state, RedisState):
        return None
    from chatgate.tiering.shared_session import SharedSessionTiers

    outage = state.outage

    def fell_back() -> None:
        if outage.on_fallback is not None:
            outage.on_fallback()

    local = SessionTiers(spec.session_ttl_s, spec.max_sessions)
    return SharedSessionTiers(
        state.url,
        model=spec.model_name,
        namespace=state.namespace,
        local=local,
        ttl_s=spec.session_ttl_s,
        retry_s=outage.retry_s,
        on_fallback=fell_back,
    )


def _parse(raw: Mapping[str, Any]) -> TieredModelSettings:
    from chatgate import config as config_module

    settings = config_module.parse({"router_settings": {"tiers": [dict(raw)]}}, env={})
    return settings.router_settings.tiers[0]
