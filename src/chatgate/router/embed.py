"""An embeddings request as a routed job: each attempt sends it whole to one deployment."""

from __future__ import annotations

from chatgate.embedding_types import EmbeddingRequest, EmbeddingResponse
from chatgate.embeddings import send_embedding
from chatgate.router.attempt import GroupRunner
from chatgate.router.call import CallContext, bounded
from chatgate.router.deployments import RoutedDeployment

__all__ = ["EmbeddingJob"]


class EmbeddingJob:
    def __init__(self, request: EmbeddingRequest) -> None:
        self.request = request

    @property
    def model(self) -> str:
        return self.request.model

    def estimate(self) -> int:
        """Input tokens for TPM buckets: 4 bytes of text per token, token ids as they are;
        corrected by the usage the provider reports."""
        given = self.request.input
        if isinstance(given, str):
            return len(given) // 4 + 1
        return sum(len(item) // 4 + 1 if isinstance(item, str) else _ids(item) for item in given)

    def counted(self, model: str) -> None:
        """No pre-call context check: an embedding model's window bounds each input, not
        their sum, and an input too long is the provider's 400 to give."""
        return None

    async def attempt(
        self, runner: GroupRunner, d: RoutedDeployment, call: CallContext, tokens: int, left: float
    ) -> EmbeddingResponse:
        upstream = self.request.model_copy(update={"model": d.deployment.model})
        answer = send_embedding(upstream, d.deployment, timeouts=bounded(d.timeouts, left))
        return await runner.whole(d, call, tokens, answer)


def _ids(item: int | list[int]) -> int:
    return len(item) if isinstance(item, list) else 1
