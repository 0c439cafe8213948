"""Parameters a provider cannot honour: dropped on request, otherwise a named error."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from chatgate.errors import UnsupportedParamsError
from chatgate.providers.base import Deployment

__all__ = ["drop_or_reject"]


def drop_or_reject(
    wire: MutableMapping[str, Any], unsupported: Iterable[str], deployment: Deployment
) -> None:
    """Remove each unsupported parameter the caller set, or raise naming it and the fix."""
    present = [name for name in unsupported if wire.get(name) is not None]
    if not present:
        return
    if not deployment.drop_params:
        names = ", ".join(sorted(present))
        raise UnsupportedParamsError(
            f"{deployment.provider} does not support {names}: remove it, or pass "
            "drop_params=True to drop unsupported parameters",
            param=sorted(present)[0],
            provider=deployment.provider,
            model=deployment.model,
        )
    for name in present:
        del wire[name]
