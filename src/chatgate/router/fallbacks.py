"""Fallbacks: the three tables (general, context-window, content-policy), the groups a call may
reach through them, and skipping the groups a caller may not use.

General fallbacks apply to the requested group only; a context-window or content-policy fault
in any group reached adds that group's own fallbacks of that kind. A group the caller may not
use is never tried: it is logged in the attempt log as skipped and the walk goes on past it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chatgate import config as config_module
from chatgate.config import RouterSettings
from chatgate.router.call import CallContext
from chatgate.router.policy import Fault
from chatgate.types import Attempt

__all__ = ["NOT_ALLOWED", "Allowed", "FallbackTables", "everything", "next_allowed"]

Allowed = Callable[[str], bool]  # may the caller use this model group?
NOT_ALLOWED = "the caller may not use this model group"


def everything(name: str) -> bool:
    return True


class FallbackTables:
    """The router's fallback rules, every name checked against the model groups."""

    def __init__(self, settings: RouterSettings, groups: Mapping[str, Any]) -> None:
        self.general = _table(settings.fallbacks, groups, "fallbacks")
        self.context_window = _table(
            settings.context_window_fallbacks, groups, "context_window_fallbacks"
        )
        self.content_policy = _table(
            settings.content_policy_fallbacks, groups, "content_policy_fallbacks"
        )

    def on_fault(self, name: str, fault: Fault) -> list[str] | None:
        """The groups ``name`` falls back to after ``fault`` ([] for a fault that moves on down
        the chain; None for one no other group would answer differently)."""
        if fault is Fault.CONTEXT_WINDOW:
            return self.context_window.get(name, [])
        if fault is Fault.CONTENT_POLICY:
            return self.content_policy.get(name, [])
        if fault in (Fault.RETRYABLE, Fault.DEPLOYMENT):
            return []
        return None

    def reachable(self, name: str, allow: Allowed = everything) -> list[str]:
        """The groups a call to ``name`` may be served by, in the order they would be tried:
        ``name`` (always), its fallbacks, and each reached group's context-window and
        content-policy fallbacks, transitively; only groups ``allow`` admits."""
        queue = [name, *self.general.get(name, [])]
        found: list[str] = []
        while queue:
            group = queue.pop(0)
            if group in found or (group != name and not allow(group)):
                continue
            found.append(group)
            queue += self.context_window.get(group, []) + self.content_policy.get(group, [])
        return found


def next_allowed(
    chain: list[str], index: int, allow: Allowed, visited: set[str], call: CallContext
) -> int:
    """The index of the next group in ``chain`` after ``index`` the caller may use
    (``len(chain)``: none); each one skipped on the way is logged in the attempt log."""
    index += 1
    while index < len(chain) and not allow(chain[index]):
        visited.add(chain[index])
        call.log.append(Attempt(deployment=chain[index], model=chain[index], skipped=NOT_ALLOWED))
        index += 1
    return index


def _table(
    rules: list[dict[str, list[str]]], groups: Mapping[str, Any], where: str
) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for rule in rules:
        for source, targets in rule.items():
            for name in [source, *targets]:
                if name not in groups:
                    raise config_module.ConfigError(
                        f"router_settings.{where}: {name!r} is not a model_name in model_list",
                        param=where,
                    )
            table.setdefault(source, []).extend(t for t in targets if t != source)
    return table
