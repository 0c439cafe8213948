"""The validation-retry loop behind ``response_model``.

Each retry sends the caller's messages plus exactly two more: the latest failed answer and
a user message listing its validation errors. Earlier failures are not resent, so the
context stays the same size however many retries run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from chatgate.accounting import Spend
from chatgate.chat_request import MessageLike
from chatgate.errors import InvalidRequestError, StructuredOutputError
from chatgate.routed import RouterLike, caller, provider_model
from chatgate.structured.modes import (
    Mode,
    choose_mode,
    request_messages,
    response_format,
    validate,
)
from chatgate.structured.schema import output_schema
from chatgate.transport.loop_thread import run_sync
from chatgate.types import AssistantMessage, ChatResponse, Usage, UserMessage

__all__ = [
    "Structured",
    "StructuredAttempt",
    "acompletion_structured",
    "completion_structured",
    "feedback_text",
]

T = TypeVar("T")

_RESERVED = ("response_format", "stream", "stream_options")


@dataclass(frozen=True)
class StructuredAttempt:
    """One call: its raw answer text and, when it failed, every validation error."""

    number: int
    text: str | None
    errors: list[str]
    response: ChatResponse

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Structured(Generic[T]):
    """A validated answer: ``value`` is the response_model instance, ``raw`` the response it
    came from; ``usage`` and ``cost`` cover every attempt (cost None when any is unknown)."""

    value: T
    raw: ChatResponse
    attempts: list[StructuredAttempt]
    usage: Usage
    cost: Decimal | None
    mode: str = field(default="json_schema")


def feedback_text(errors: Sequence[str], truncated: bool = False) -> str:
    lines = ["Your previous answer does not match the required JSON schema:"]
    lines += [f"- {error}" for error in errors]
    if truncated:
        lines.append("- it was cut off at the output token limit: answer more briefly")
    lines.append("Reply with the corrected JSON only.")
    return "\n".join(lines)


@dataclass
class _Budget:
    tokens: int | None
    usd: Decimal | None

    def stops(self, spend: Spend, last: ChatResponse) -> str | None:
        """Why the next attempt may not start, or None. The next attempt is assumed to cost
        what the last one did (same context size by construction)."""
        if self.tokens is not None:
            next_tokens = last.usage.total_tokens if last.usage else 0
            if spend.tokens + next_tokens > self.tokens:
                return (
                    f"the token budget of {self.tokens} would be exceeded "
                    f"({spend.tokens} spent, the next attempt needs about {next_tokens})"
                )
        if self.usd is not None:
            total, next_cost = spend.total_cost, last.meta.cost
            if total is None or next_cost is None:
                return "the dollar budget cannot be checked: this model's price is unknown"
            if total + next_cost > self.usd:
                return f"the ${self.usd} budget would be exceeded (${total} spent)"
        return None


def _check_params(params: Mapping[str, Any], max_retries: int) -> None:
    for name in _RESERVED:
        if params.get(name) is not None and params.get(name) is not False:
            raise InvalidRequestError(
                f"{name} cannot be combined with response_model: chatgate sets the output "
                "format itself; remove it",
                param=name,
            )
    if max_retries < 0:
        raise InvalidRequestError("max_retries must be 0 or more", param="max_retries")


async def acompletion_structured(
    model: str,
    messages: Sequence[MessageLike],
    response_model: type[T],
    *,
    max_retries: int = 2,
    retry_budget_tokens: int | None = None,
    retry_budget_usd: Decimal | float | str | None = None,
    structured_mode: str | None = None,
    router: RouterLike | None = None,
    **params: Any,
) -> Structured[T]:
    """Call until the answer validates against ``response_model`` (up to ``max_retries``
    retries, within the optional token / dollar budget for all attempts together).
    With ``router=``, ``model`` is one of its model names and every attempt is routed."""
    _check_params(params, max_retries)
    call = caller(router, params)
    schema = output_schema(response_model)
    mode: Mode = choose_mode(provider_model(router, model), schema, structured_mode)
    fmt = response_format(schema, mode)
    if fmt is not None:
        params["response_format"] = fmt
    base = request_messages(messages, schema, mode)
    budget = _Budget(
        retry_budget_tokens,
        Decimal(str(retry_budget_usd)) if retry_budget_usd is not None else None,
    )
    spend = Spend()
    attempts: list[StructuredAttempt] = []
    extra: list[MessageLike] = []
    reason, why = "retries", f"no valid answer after {max_retries + 1} attempt(s)"
    for number in range(1, max_retries + 2):
        response = await call(model, [*base, *extra], **params)
        spend.add(response)
        message = response.choices[0].message if response.choices else None
        text = message.content if message else None
        if message is not None and message.refusal:
            errors = [f"the model refused: {message.refusal}"]
            attempts.append(StructuredAttempt(number, text, errors, response))
            reason, why = "refusal", errors[0]
            break
        value, errors = validate(text or "", schema)
        attempts.append(StructuredAttempt(number, text, errors, response))
        if not errors:
            return Structured(value, response, attempts, spend.usage, spend.total_cost, mode)
        if number > max_retries:
            break
        if (stop := budget.stops(spend, response)) is not None:
            reason, why = "budget", stop
            break
        extra = [AssistantMessage(content=text)] if text else []
        extra.append(UserMessage(content=feedback_text(errors, response.truncated)))
    last = attempts[-1].errors
    raise StructuredOutputError(
        f"{schema.name}: {why}; last errors: " + "; ".join(last[:5]),
        attempts=attempts,
        reason=reason,
        usage=spend.usage,
        cost=spend.total_cost,
        model=model,
    )


def completion_structured(
    model: str,
    messages: Sequence[MessageLike],
    response_model: type[T],
    **kw: Any,
) -> Structured[T]:
    """The blocking form of ``acompletion_structured``."""
    result: Structured[T] = run_sync(acompletion_structured(model, messages, response_model, **kw))
    return result
