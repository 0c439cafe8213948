"""Batch runs: a file of chat requests through chatgate, resumably, with a cost cap."""

from chatgate.batching.input import BatchInputError, BatchItem
from chatgate.batching.run import BatchRun, abatch, batch
from chatgate.batching.summary import BatchSummary

__all__ = ["BatchInputError", "BatchItem", "BatchRun", "BatchSummary", "abatch", "batch"]
