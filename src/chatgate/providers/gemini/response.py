"""A Gemini ``GenerateContentResponse`` -> ChatResponse, and the pieces the stream shares.

Finish reasons (``finish.py`` has the table): STOP -> "stop" ("tool_calls" when the candidate
called functions), MAX_TOKENS / CONTINUATION -> "length", the filter family -> "content_filter";
a candidate that ended without a usable answer raises (MalformedToolCallError, NoAnswerError,
...). Each choice keeps Gemini's own value as ``native_finish_reason``. Usage follows OpenAI:
completion_tokens includes thinking tokens, which are also reported in
completion_tokens_details.reasoning_tokens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from chatgate.errors import APIConnectionError
from chatgate.providers.base import Deployment
from chatgate.providers.gemini.errors import blocked_prompt_error, error_from_body
from chatgate.providers.gemini.finish import finish_error, finish_reason
from chatgate.providers.gemini.messages import THOUGHT_SIGNATURE_KEY
from chatgate.types import (
    ChatResponse,
    Choice,
    CompletionTokensDetails,
    FunctionCall,
    PromptTokensDetails,
    ResponseMessage,
    ToolCall,
    Usage,
)

__all__ = [
    "load_event",
    "logprobs",
    "parse_response",
    "tool_call",
    "usage",
]

_MAX_BODY_CHARS = 2000


def usage(meta: Mapping[str, Any]) -> Usage:
    prompt = meta.get("promptTokenCount", 0) + meta.get("toolUsePromptTokenCount", 0)
    thoughts = meta.get("thoughtsTokenCount", 0)
    completion = meta.get("candidatesTokenCount", 0) + thoughts
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=meta.get("totalTokenCount", prompt + completion),
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=meta.get("cachedContentTokenCount", 0)
        ),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=thoughts),
    )


def tool_call(part: Mapping[str, Any], response_id: str, n: int) -> ToolCall:
    """A ``functionCall`` part as a ToolCall. Gemini's own id is kept; without one the id is
    ``call_<responseId>_<n>`` (n counts the calls of the candidate), stable for the answer."""
    call = part["functionCall"]
    call_id = call.get("id") or (f"call_{response_id}_{n}" if response_id else f"call_{n}")
    arguments = orjson.dumps(call.get("args") or {}).decode()
    extra: dict[str, Any] = {}
    if isinstance(part.get("thoughtSignature"), str):
        extra["extra_content"] = {"google": {THOUGHT_SIGNATURE_KEY: part["thoughtSignature"]}}
    return ToolCall(
        id=call_id, function=FunctionCall(name=call.get("name", ""), arguments=arguments), **extra
    )


def logprobs(candidate: Mapping[str, Any]) -> dict[str, Any] | None:
    """``logprobsResult`` in OpenAI's ``{"content": [{token, logprob, top_logprobs}]}`` shape."""
    result = candidate.get("logprobsResult")
    if not isinstance(result, Mapping):
        return None
    tops = result.get("topCandidates") or []
    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or []):
        alternatives = tops[i].get("candidates", []) if i < len(tops) else []
        content.append(
            {
                "token": chosen.get("token", ""),
                "logprob": chosen.get("logProbability", 0.0),
                "bytes": list(chosen.get("token", "").encode()),
                "top_logprobs": [
                    {
                        "token": alt.get("token", ""),
                        "logprob": alt.get("logProbability", 0.0),
                        "bytes": list(alt.get("token", "").encode()),
                    }
                    for alt in alternatives
                ],
            }
        )
    return {"content": content, "refusal": None}


def load_event(data: bytes | str, deployment: Deployment, status: int = 200) -> dict[str, Any]:
    """Parse one GenerateContentResponse; an ``error`` object in it raises the mapped error."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise APIConnectionError(
            f"the provider's answer is not JSON: {exc}",
            provider=deployment.provider,
            model=deployment.model,
            body=str(data)[:_MAX_BODY_CHARS],
        ) from exc
    if not isinstance(parsed, dict):
        raise APIConnectionError(
            "the provider's answer is not a GenerateContentResponse object",
            provider=deployment.provider,
            model=deployment.model,
        )
    if isinstance(parsed.get("error"), dict):
        code = parsed["error"].get("code")
        raw = data if isinstance(data, bytes) else data.encode()
        raise error_from_body(code if isinstance(code, int) else 500, {}, raw, deployment)
    if not parsed.get("candidates") and (parsed.get("promptFeedback") or {}).get("blockReason"):
        raise blocked_prompt_error(parsed["promptFeedback"], deployment)
    return parsed


def _choice(candidate: Mapping[str, Any], index: int, response_id: str) -> Choice:
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if "functionCall" in part:
            calls.append(tool_call(part, response_id, len(calls)))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else text).append(part["text"])
    native = candidate.get("finishReason")
    return Choice(
        index=index,
        message=ResponseMessage(
            content="".join(text) if text else None,
            reasoning_content="".join(thoughts) if thoughts else None,
            tool_calls=calls or None,
        ),
        finish_reason=finish_reason(native, bool(calls)) if native else None,
        logprobs=logprobs(candidate),
        **({"native_finish_reason": native} if native else {}),
    )


def parse_response(body: bytes, deployment: Deployment) -> ChatResponse:
    parsed = load_event(body, deployment)
    response_id = parsed.get("responseId") or ""
    meta = parsed.get("usageMetadata")
    candidates = parsed.get("candidates") or ()
    spent = usage(meta) if isinstance(meta, Mapping) else None
    for candidate in candidates:
        if (error := finish_error(candidate, spent, parsed, deployment)) is not None:
            raise error
    choices = [
        _choice(candidate, candidate.get("index", i), response_id)
        for i, candidate in enumerate(candidates)
    ]
    return ChatResponse(
        id=response_id,
        created=int(time.time()),
        model=parsed.get("modelVersion") or deployment.model,
        choices=choices,
        usage=spent,
    )
