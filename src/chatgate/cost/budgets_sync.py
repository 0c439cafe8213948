"""The blocking face of ``Budgets`` (``budgets.sync``), for code without an event loop: each
call runs the async one on chatgate's private loop thread, where ``Router.completion`` runs
too. A SQL backend's connections belong to the loop that opened them: use one Budgets from
one face (or let a Router's blocking calls hold and settle for you)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from chatgate.transport.loop_thread import run_sync

if TYPE_CHECKING:
    from chatgate.cost.budgets import Budgets

__all__ = ["SyncBudgets"]

P = ParamSpec("P")
T = TypeVar("T")


def _blocking(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(method(*args, **kwargs))

    call.__doc__ = method.__doc__
    return call


class SyncBudgets:
    """``Budgets``' async methods, blocking: ``reserve``, ``reserve_amount``, ``settle``,
    ``release``, ``status``, ``maintain``, ``sweep_expired``; ``worst_case`` never blocked."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.worst_case = budgets.worst_case
        self.reserve = _blocking(budgets.reserve)
        self.reserve_amount = _blocking(budgets.reserve_amount)
        self.settle = _blocking(budgets.settle)
        self.release = _blocking(budgets.release)
        self.status = _blocking(budgets.status)
        self.maintain = _blocking(budgets.maintain)
        self.sweep_expired = _blocking(budgets.sweep_expired)
