"""One way for the higher-level helpers (structured outputs, tool loops) to call a model:
straight through ``chatgate.acompletion``, or through a Router when they are given one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from chatgate.client import acompletion
from chatgate.errors import InvalidRequestError

__all__ = ["RouterLike", "caller", "provider_model"]

Call = Callable[..., Awaitable[Any]]

# Where a deployment is reached is the router's business: these are set in its model_list.
_DEPLOYMENT_ARGS = ("api_key", "api_base", "api_version", "extra_headers", "provider_options")


class _Deployment(Protocol):
    @property
    def model(self) -> str: ...  # provider/model


class RouterLike(Protocol):
    """What these helpers need of a ``chatgate.Router`` (a protocol, so that the layers
    below the router do not import it)."""

    @property
    def groups(self) -> Mapping[str, Sequence[_Deployment]]: ...

    @property
    def model_names(self) -> list[str]: ...  # the groups' names and the tiered ones

    def reachable(self, name: str) -> list[str]: ...  # the groups a call to name may use

    async def acompletion(self, model: str, messages: Any, **kw: Any) -> Any: ...


def caller(router: RouterLike | None, params: Mapping[str, Any]) -> Call:
    """``acompletion``, or ``router.acompletion`` (refusing connection arguments, which the
    router's model_list owns and which must never travel as request fields)."""
    if router is None:
        return acompletion
    given = [name for name in _DEPLOYMENT_ARGS if name in params]
    if given:
        raise InvalidRequestError(
            f"{given[0]} cannot be combined with router=: set it in the router's model_list",
            param=given[0],
        )
    routed: Call = router.acompletion
    return routed


def provider_model(router: RouterLike | None, model: str) -> str:
    """The provider/model string that decides provider-specific behaviour: ``model`` itself,
    or, for a router's model name, its first deployment's (a tiered name's: its first tier's)."""
    if router is None:
        return model
    group = router.groups.get(model)
    if not group and model in router.model_names:  # a tiered name: no group of its own
        group = router.groups.get(router.reachable(model)[0])
    if not group:
        raise InvalidRequestError(
            f"model {model!r} is not in the router's model_list; known names: "
            f"{', '.join(router.model_names) or 'none'}",
            param="model",
        )
    return str(group[0].model)
