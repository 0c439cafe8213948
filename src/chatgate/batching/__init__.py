"""Batch runs: a file of chat requests through chatgate, resumably, with a cost cap.

Names load on first use (PEP 562), so `chatgate batch --help` and the other commands, which
import ``chatgate.batching.cli``, do not load the client and the router."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatgate.batching.input import BatchInputError, BatchItem
    from chatgate.batching.provider.poll import PollPolicy
    from chatgate.batching.provider.run import ProviderBatchRun
    from chatgate.batching.run import BatchRun, abatch, batch
    from chatgate.batching.summary import BatchSummary

__all__ = [
    "BatchInputError",
    "BatchItem",
    "BatchRun",
    "BatchSummary",
    "PollPolicy",
    "ProviderBatchRun",
    "abatch",
    "batch",
]

_WHERE = {
    "BatchInputError": "chatgate.batching.input",
    "BatchItem": "chatgate.batching.input",
    "BatchRun": "chatgate.batching.run",
    "abatch": "chatgate.batching.run",
    "batch": "chatgate.batching.run",
    "BatchSummary": "chatgate.batching.summary",
    "PollPolicy": "chatgate.batching.provider.poll",
    "ProviderBatchRun": "chatgate.batching.provider.run",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'chatgate.batching' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
