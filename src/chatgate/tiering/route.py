"""A call to a tiered name: pick the tier (an explicit override, else the classifier, never
below the session's floor), send the request to that tier's group, escalate a whole answer to
the next tier when configured, and stamp the answer with its tier, score and saving.

``send`` is the router's own routing of a request to a model_list group (retries, fallbacks,
limits), so this module knows nothing of deployments and sits below the router.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from chatgate.cost.calc import cost_of
from chatgate.cost.prices import ModelPrice
from chatgate.errors import ChatgateError, InvalidRequestError
from chatgate.meta import Attempt, tries
from chatgate.stream import ChatStream
from chatgate.tiering.classifier import TierClassifier
from chatgate.tiering.escalation import answer_escalates, error_escalates, shows_answer
from chatgate.tiering.features import prompt_of
from chatgate.tiering.session import SessionFloors, SessionTiers
from chatgate.tiering.settings import TieredModelSettings
from chatgate.types import ChatRequest, ChatResponse, Usage

__all__ = ["Send", "TierChoice", "TierHints", "TieredModel"]

Result = ChatResponse | ChatStream
Send = Callable[[ChatRequest], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class TierChoice:
    """Which tier served a call and why (``reason``: classifier, session, header, escalated)."""

    tier: str
    index: int
    score: float | None  # the classifier's; None: a header chose, or the session is at the top
    reason: str
    baseline: ModelPrice | None  # the premium tier's price, for the saving

    def saving(self, usage: Usage | None, cost: Decimal | None) -> Decimal | None:
        """What the premium tier would have cost at these tokens, minus what this cost."""
        if self.baseline is None or usage is None or cost is None:
            return None
        return cost_of(usage, self.baseline) - cost


@dataclass(slots=True)
class TierHints:
    """What the caller says about a tiered call: ``tier`` forces one (x-chatgate-tier),
    ``session`` keys the conversation (x-chatgate-session; else the request's ``user``),
    ``on_choice`` hears the tier before the answer (a stream's headers need it)."""

    tier: str | None = None
    session: str | None = None
    on_choice: Callable[[TierChoice], None] | None = None


class TieredModel:
    def __init__(
        self,
        settings: TieredModelSettings,
        baseline: ModelPrice | None,
        *,
        classifier: TierClassifier | None = None,
        sessions: SessionFloors | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``sessions``: where conversations' floors are kept (default: this process)."""
        self.settings = settings
        self.name = settings.model_name
        self.tiers = list(settings.tiers)
        self.classifier = classifier or TierClassifier(self.tiers, settings.classifier)
        self.sessions: SessionFloors = sessions or SessionTiers(
            settings.session_ttl_s, settings.max_sessions, clock
        )
        self._baseline = baseline

    async def aclose(self) -> None:
        """Close the sessions' shared store's connection on this loop, if it has one."""
        close = getattr(self.sessions, "aclose", None)
        if close is not None:
            await close()

    async def choose(self, request: ChatRequest, hints: TierHints) -> TierChoice:
        if hints.tier is not None:
            if hints.tier not in self.tiers:
                raise InvalidRequestError(
                    f"x-chatgate-tier {hints.tier!r} is not a tier of {self.name!r}; "
                    f"use one of: {', '.join(self.tiers)}",
                    param="x-chatgate-tier",
                )
            return self._choice(self.tiers.index(hints.tier), None, "header")
        floor = await self.sessions.afloor(_session(request, hints))
        if floor == len(self.tiers) - 1:  # nothing to decide: skip the classifier
            return self._choice(floor, None, "session")
        classifier = self.classifier
        if classifier.warm_needed:  # the first call reads the embeddings: off the event loop
            await asyncio.to_thread(classifier.warm)
        found = classifier.classify(prompt_of(request))  # microseconds: no thread hop
        if floor > found.tier:
            return self._choice(floor, found.score, "session")
        return self._choice(found.tier, found.score, "classifier")

    async def route(self, request: ChatRequest, hints: TierHints, send: Send) -> Result:
        choice = await self.choose(request, hints)
        spent = Decimal(0)  # what answers replaced by an escalation cost
        earlier: list[Attempt] = []  # the attempts of the tiers escalated from
        while True:
            last = choice.index >= len(self.tiers) - 1
            try:
                result = await send(request.model_copy(update={"model": choice.tier}))
                answer = result if isinstance(result, ChatResponse) else None
                if isinstance(result, ChatStream) and not last:
                    answer = await self._judge_stream(result)
            except ChatgateError as exc:
                exc.attempt_log[:0] = earlier
                if last or not error_escalates(exc, self.settings.escalate_on):
                    raise
                earlier = exc.attempt_log
                choice = self._choice(choice.index + 1, choice.score, "escalated")
                continue
            if not last and answer is not None and self._escalates(request, answer):
                spent += answer.meta.cost or 0
                earlier = _escalated_from(earlier, result)
                if isinstance(result, ChatStream):
                    result.close()
                choice = self._choice(choice.index + 1, choice.score, "escalated")
                continue
            break
        if earlier:
            _attempts_before(result, earlier)
        try:
            await self.sessions.areached(_session(request, hints), choice.index)
        except BaseException:  # cancelled (the client went): the stream is nobody's now
            if isinstance(result, ChatStream):
                result.close()
            raise
        if isinstance(result, ChatResponse):
            _stamp(result, choice, spent)
        else:  # priced at its end: the spend log and ``final().meta`` get the saving
            result.also_on_complete(lambda final: _stamp(final, choice, spent))
        if hints.on_choice is not None:
            hints.on_choice(choice)
        return result

    async def _judge_stream(self, stream: ChatStream) -> ChatResponse | None:
        """A stream from a tier that may escalate: with ``empty`` in ``escalate_on``, read on
        until the answer shows (then it goes to the caller as it is: None) or ends (then it
        is returned, to be judged as a whole answer is)."""
        if "empty" not in self.settings.escalate_on:
            return None
        try:
            return await stream.read_ahead(shows_answer)
        except BaseException:
            stream.close()
            raise

    def _choice(self, index: int, score: float | None, reason: str) -> TierChoice:
        return TierChoice(self.tiers[index], index, score, reason, self._baseline)

    def _escalates(self, request: ChatRequest, answer: ChatResponse) -> bool:
        return answer_escalates(request, answer, self.settings.escalate_on)


def _session(request: ChatRequest, hints: TierHints) -> str | None:
    return hints.session or request.user or None


def _escalated_from(earlier: list[Attempt], result: Result) -> list[Attempt]:
    """The attempts so far, with those of an answer the next tier replaces (marked so)."""
    log = result.attempt_log if isinstance(result, ChatStream) else result.meta.attempt_log
    if not log:
        return earlier
    replaced = log[-1].model_copy(update={"message": "answer escalated to the next tier"})
    return [*earlier, *log[:-1], replaced]


def _attempts_before(result: Result, earlier: list[Attempt]) -> None:
    """Put the escalated tiers' attempts before the answering tier's: the log of a stream
    is the list its router keeps (``meta.attempt_log`` is copied from it at the end)."""
    if isinstance(result, ChatStream):
        result.attempt_log[:0] = earlier
        result.attempts = tries(result.attempt_log)
    else:
        meta = result.meta
        meta.attempt_log[:0] = earlier
        meta.attempts = tries(meta.attempt_log)


def _stamp(answer: ChatResponse, choice: TierChoice, spent: Decimal) -> None:
    meta = answer.meta
    if spent and meta.cost is not None:
        meta.cost += spent
    meta.tier = choice.tier
    meta.tier_score = choice.score
    meta.tier_saved_cost = choice.saving(answer.usage, meta.cost)
