"""What a provider's batch API offers a run: jobs of wire lines submitted, their status
polled, and one outcome per line read back (a ChatResponse, or the error it ended with)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chatgate.errors import APIError, ChatgateError
from chatgate.providers.base import Deployment
from chatgate.types import ChatRequest, ChatResponse

__all__ = ["BatchAPI", "BatchLineError", "LineTarget", "Outcome", "PerModelJobs", "Status"]

Outcome = ChatResponse | ChatgateError
LineTarget = tuple[ChatRequest, Deployment]  # what a wire line asked, and where it went


class BatchLineError(APIError):
    """A line the provider did not answer: the batch expired, failed or was cancelled before
    it ran. ``code`` is ``batch_expired``, ``batch_failed``, ``batch_cancelled`` or
    ``batch_missing`` (the provider returned no result for it)."""

    def __init__(self, code: str, message: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.code = code


@dataclass(frozen=True, slots=True)
class Status:
    """A job as the provider reports it. ``ended``: results can be read; ``missing`` is the
    (code, message) for lines that have no result once it ended."""

    ended: bool
    state: str  # the provider's own word: in_progress, completed, expired, ended, ...
    missing: tuple[str, str] = ("batch_missing", "the batch returned no result for this line")


class PerModelJobs:
    """For APIs whose batch serves one model (OpenAI, Gemini): lines of one account and one
    model share a job, each sent under its own custom_id."""

    def job_key(self, deployment: Deployment) -> tuple[str | None, ...]:
        return (deployment.provider, deployment.api_base, deployment.api_key, deployment.model)

    def wire_id(self, custom_id: str, line: int) -> str:
        return custom_id


class BatchAPI(Protocol):
    provider: str
    max_lines: int  # per job, the provider's limit
    max_bytes: int

    def job_key(self, deployment: Deployment) -> tuple[str | None, ...]:
        """Lines with the same key may share one job (same account; OpenAI: same model)."""
        ...

    def wire_id(self, custom_id: str, line: int) -> str:
        """The id the provider accepts for a line (Anthropic restricts its characters)."""
        ...

    def line(self, wire_id: str, request: ChatRequest, deployment: Deployment) -> bytes:
        """One request of a job, built by the provider's adapter (raises InvalidRequestError)."""
        ...

    async def submit(self, deployment: Deployment, lines: list[bytes]) -> str:
        """Create the job; its batch id."""
        ...

    async def status(self, deployment: Deployment, batch_id: str) -> Status: ...

    async def results(
        self, deployment: Deployment, batch_id: str, targets: Mapping[str, LineTarget]
    ) -> list[tuple[str, Outcome]]:
        """(wire id, outcome) of every line the ended job has a result for."""
        ...
