"""Requests for llama-cpp-python's server: its quirks fixed, what it cannot do refused first.

Every rule here exists because the server answers it badly (measured with 0.3.36):

- ``n > 1`` is ignored (one choice comes back): refused, naming ``n``.
- ``logprobs`` is a 500 with ``logits_all=False`` (how we run it, 2x faster prompts): refused.
- an assistant turn with tool calls and ``content: null`` or no content is a 500: sent as "".
- ``tools`` without ``tool_choice`` is treated as "none": OpenAI's default "auto" is sent.
- ``response_format: json_schema`` is a 500: sent as its ``{type: json_object, schema}``.
- ``developer`` messages: sent as ``system`` (older chat templates know no developer role).
- image, audio and file parts: refused, the local models read text only.
- ``content`` as a list of text parts in a system, assistant or tool message (the anthropic
  SDK's and Claude Code's ``system`` blocks) is a 500: sent as one string, by the registry
  row's ``string_content`` (providers/content.py).
- a request its schema refuses is a 500, not a 400: read as the 400 it is (``errors.py``).
"""

from __future__ import annotations

from typing import Any

from chatgate.errors import InvalidRequestError, UnsupportedParamsError
from chatgate.providers.base import Deployment
from chatgate.types import (
    AssistantMessage,
    ChatRequest,
    DeveloperMessage,
    Message,
    ResponseFormat,
    SystemMessage,
    TextPart,
    UserMessage,
)

__all__ = ["translate_request"]


def _unsupported(message: str, param: str, deployment: Deployment) -> UnsupportedParamsError:
    return UnsupportedParamsError(
        message, param=param, provider=deployment.provider, model=deployment.model
    )


def _message(message: Message, index: int, deployment: Deployment) -> Message:
    if isinstance(message, DeveloperMessage):
        fields = message.model_dump(exclude_unset=True, exclude={"role"})
        return SystemMessage.model_validate(fields)
    if isinstance(message, AssistantMessage) and message.content is None:
        return message.model_copy(update={"content": ""})
    if isinstance(message, UserMessage) and not isinstance(message.content, str):
        for j, part in enumerate(message.content):
            if not isinstance(part, TextPart):
                raise _unsupported(
                    f"the local model reads text only: messages[{index}].content[{j}] is "
                    f"{part.type!r}; send text parts only",
                    f"messages[{index}].content[{j}]",
                    deployment,
                )
    return message


def _response_format(fmt: ResponseFormat) -> ResponseFormat:
    if fmt.type != "json_schema":
        return fmt
    schema = (fmt.json_schema or {}).get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequestError(
            "response_format.json_schema.schema must be a JSON schema object",
            param="response_format",
        )
    return ResponseFormat.model_validate({"type": "json_object", "schema": schema})


def translate_request(request: ChatRequest, deployment: Deployment) -> ChatRequest:
    """The same request in the form the server handles correctly, or a named error."""
    if request.n is not None and request.n > 1 and not deployment.drop_params:
        raise _unsupported(
            f"the local model returns one choice per request; n={request.n} is not supported: "
            "send n separate requests (or drop_params=True to get one choice)",
            "n",
            deployment,
        )
    if (request.logprobs or request.top_logprobs) and not deployment.drop_params:
        raise _unsupported(
            "the local model server runs with logits_all=False (2x faster prompts) and cannot "
            "return logprobs: remove logprobs/top_logprobs, or pass drop_params=True",
            "logprobs",
            deployment,
        )
    update: dict[str, Any] = {
        "messages": [_message(m, i, deployment) for i, m in enumerate(request.messages)]
    }
    for name in ("n", "logprobs", "top_logprobs"):
        if name in request.model_fields_set:
            update[name] = None  # refused above or harmless (n=1, logprobs=False): not sent
    if request.tools and "tool_choice" not in request.model_fields_set:
        update["tool_choice"] = "auto"
    if request.response_format is not None:
        update["response_format"] = _response_format(request.response_format)
    translated = request.model_copy(update=update)
    for name in ("n", "logprobs", "top_logprobs"):
        translated.model_fields_set.discard(name)
    return translated
