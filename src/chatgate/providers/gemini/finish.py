"""A Gemini candidate's ``finishReason`` -> OpenAI's ``finish_reason``, or the error to raise.

The values are google-genai's ``FinishReason`` enum (Gemini API and Vertex AI together). A
caller running an agent loop reads "stop" as "the model has answered", so only a natural stop
is "stop"; an answer withheld by a filter is "content_filter", a cut one "length"; a candidate
that ended without a usable answer raises, because mapped to "stop" its empty (or partial)
text would look finished:

    finishReason                                        OpenAI finish_reason, or raised
    STOP                                                stop; tool_calls if it called functions
    MAX_TOKENS                                          length
    CONTINUATION (request token limit, not done)        length
    SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT,  content_filter
    SPII, IMAGE_SAFETY, IMAGE_PROHIBITED_CONTENT,
    IMAGE_RECITATION, LANGUAGE, ESCALATION, MODEL_ARMOR
    MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL       MalformedToolCallError
    TOO_MANY_TOOL_CALLS, MALFORMED_RESPONSE, NO_IMAGE,  NoAnswerError
    OTHER, IMAGE_OTHER, FINISH_REASON_UNSPECIFIED,
    and any value not listed here
    MISSING_THOUGHT_SIGNATURE (history lacks one)       BadRequestError (400)
    PUP_LIMITED_DISABLED (account limited for abuse)    PermissionDeniedError (403)

The native value stays available: every choice and finishing chunk choice carries it as
``native_finish_reason`` (as OpenRouter does), and the errors name it (``finish_reason`` on
NoAnswerError and MalformedToolCallError, the message and ``body`` on the others).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatgate.errors import (
    BadRequestError,
    ChatgateError,
    MalformedToolCallError,
    NoAnswerError,
    PermissionDeniedError,
)
from chatgate.providers.base import Deployment
from chatgate.types import Usage

__all__ = ["FINISH_REASONS", "MALFORMED_CALL", "NO_ANSWER", "finish_error", "finish_reason"]

_FILTERED = (
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "LANGUAGE",
    "ESCALATION",
    "MODEL_ARMOR",
)
# The reasons that are an answer (whole, cut or filtered), and what OpenAI calls them.
FINISH_REASONS: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",
    **dict.fromkeys(_FILTERED, "content_filter"),
}
# The model tried a function call Gemini could not parse, or one it may not make.
MALFORMED_CALL = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})
# Known reasons with no answer behind them, and what happened, for the error message.
NO_ANSWER: dict[str, str] = {
    "TOO_MANY_TOOL_CALLS": "the model made too many tool calls, so Gemini's own tool loop "
    "stopped before a final answer; fewer built-in tools or a narrower question help",
    "MALFORMED_RESPONSE": "the model's response was malformed; asking again often works",
    "NO_IMAGE": "an image was expected and none was generated",
    "OTHER": "Gemini gives no reason; asking again often works",
    "IMAGE_OTHER": "image generation stopped, Gemini gives no reason",
    "FINISH_REASON_UNSPECIFIED": "Gemini gives no reason; asking again often works",
}


def finish_reason(native: str, called_functions: bool) -> str:
    """OpenAI's name for a reason in FINISH_REASONS (finish_error has ruled out the rest)."""
    reason = FINISH_REASONS[native]
    return "tool_calls" if reason == "stop" and called_functions else reason


def _malformed(native: str, detail: str | None) -> str:
    return (
        f"the model produced a tool call Gemini could not use (finishReason {native}"
        + (f": {detail}" if detail else "")
        + "); there is no answer. Asking again often works; simpler tool schemas help"
    )


def finish_error(
    candidate: Mapping[str, Any],
    usage: Usage | None,
    body: Mapping[str, Any],
    deployment: Deployment,
) -> ChatgateError | None:
    """The error for a candidate that finished without an answer; None for one that did not
    (or has not finished yet)."""
    native = candidate.get("finishReason")
    if not native or native in FINISH_REASONS:
        return None
    native = str(native)
    detail = candidate.get("finishMessage")
    detail = detail if isinstance(detail, str) and detail else None
    where: dict[str, Any] = {
        "provider": deployment.provider,
        "model": deployment.model,
        "body": dict(body),
    }
    if native == "MISSING_THOUGHT_SIGNATURE":
        return BadRequestError(
            "Gemini refused the history: a thought signature is missing (finishReason "
            "MISSING_THOUGHT_SIGNATURE). Send each assistant tool call back with the "
            "extra_content.google.thought_signature it came with",
            **where,
        )
    if native == "PUP_LIMITED_DISABLED":
        return PermissionDeniedError(
            "Gemini will not answer for this account: it is limited or disabled for "
            "Prohibited Use Policy violations (finishReason PUP_LIMITED_DISABLED)",
            **where,
        )
    kind = {"finish_reason": native, "finish_message": detail, "usage": usage, **where}
    if native in MALFORMED_CALL:
        return MalformedToolCallError(_malformed(native, detail), **kind)
    why = NO_ANSWER.get(native) or (
        "a reason chatgate does not know, so it cannot tell whether the answer is whole"
    )
    return NoAnswerError(
        f"Gemini stopped without a usable answer (finishReason {native}"
        + (f": {detail}" if detail else "")
        + f"): {why}",
        **kind,
    )
