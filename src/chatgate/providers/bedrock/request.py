"""ChatRequest -> a SigV4-signed Converse / ConverseStream request.

Translation (docs/providers/bedrock.md has the full table): system and developer messages
become ``system``; user, assistant and tool messages become ``messages`` of content blocks,
consecutive same-role turns merged (tool results join the user turn that follows them);
image and file parts become ``image`` / ``document`` blocks in place (``content.py``);
sampling settings go to ``inferenceConfig``, tools to ``toolConfig``; a ``json_schema`` /
``json_object`` response format is a forced tool whose input comes back as the content.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from chatgate.errors import InvalidRequestError, UnsupportedParamsError
from chatgate.providers.anthropic.cache_points import (
    OPTION,
    bedrock_cache_points,
    caches,
    drop_cache_points,
    request_marked,
)
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.bedrock.content import DocumentNames, document_block, image_block
from chatgate.providers.params import drop_or_reject
from chatgate.types import (
    AssistantMessage,
    ChatRequest,
    DeveloperMessage,
    FilePart,
    ImagePart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

__all__ = ["SERVICE", "build_request", "converse_body", "json_tool_name", "sign"]

Json = dict[str, Any]
SERVICE = "bedrock"
DEFAULT_JSON_TOOL = "json_response"
_EVENT_STREAM = "application/vnd.amazon.eventstream"
# OpenAI parameters Converse has no field for: dropped on request, otherwise an error.
_UNSUPPORTED = frozenset(
    {
        "seed",
        "logprobs",
        "top_logprobs",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "reasoning_effort",
    }
)
# Fields translated below (or meaningless here); anything else the caller set is an extra.
_CONSUMED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "metadata",
        "n",
        "parallel_tool_calls",
        "prompt_cache_key",  # OpenAI's cache routing hint: Converse has none
    }
)
# Extras with these names are Converse's own top-level fields; other extras are model fields.
_CONVERSE_FIELDS = frozenset(
    {
        "guardrailConfig",
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "performanceConfig",
        "promptVariables",
        "requestMetadata",
        "serviceTier",
    }
)


def json_tool_name(request: ChatRequest) -> str | None:
    """The forced tool standing in for a JSON response format, if the request has one."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    name = (fmt.json_schema or {}).get("name") if fmt.type == "json_schema" else None
    return str(name) if name else DEFAULT_JSON_TOOL


def _point(part: Any) -> list[Json]:
    """A client's ``cache_control`` on a part or tool: a cachePoint block after it (dropped
    again for a model that has no prompt cache, by ``converse_body``)."""
    extra = part.model_extra or {}
    return [{"cachePoint": {"type": "default"}}] if "cache_control" in extra else []


def _text(content: str | list[TextPart], where: str) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[Json] = []
    for part in content:
        blocks += [{"text": part.text}] if part.text else []
        blocks += _point(part)
    return blocks


def _user_blocks(message: UserMessage, where: str, names: DocumentNames) -> list[Json]:
    if isinstance(message.content, str):
        return _text(message.content, where)
    blocks: list[Json] = []
    for j, part in enumerate(message.content):
        at = f"{where}.content.{j}"
        if isinstance(part, TextPart):
            blocks.extend(_text(part.text, at))
        elif isinstance(part, ImagePart):
            blocks.append(image_block(part, at))
        elif isinstance(part, FilePart):
            blocks.append(document_block(part, at, names))
        else:
            raise InvalidRequestError(
                f"Bedrock Converse cannot take {part.type!r} content ({at}): send text, images "
                "or files",
                param=at,
            )
        blocks += _point(part)
    return blocks


def _assistant_blocks(message: AssistantMessage, where: str) -> list[Json]:
    blocks: list[Json] = []
    if isinstance(message.content, str):
        blocks.extend(_text(message.content, where))
    elif message.content:
        blocks.extend(_text([p for p in message.content if isinstance(p, TextPart)], where))
    for k, call in enumerate(message.tool_calls or ()):
        try:
            args = orjson.loads(call.function.arguments or "{}")
        except orjson.JSONDecodeError as exc:
            at = f"{where}.tool_calls.{k}.function.arguments"
            raise InvalidRequestError(f"{at} is not valid JSON", param=at) from exc
        use = {"toolUseId": call.id, "name": call.function.name, "input": args}
        blocks.append({"toolUse": use})
    return blocks


def _tool_result(message: ToolMessage, where: str) -> list[Json]:
    text = message.content
    points: list[Json] = []
    if not isinstance(text, str):
        points = [p for part in text for p in _point(part)][:1]
        text = "".join(part.text for part in text)
    # Always a text block: {"json": ...} and "status" are honoured only by some model families.
    result = {"toolResult": {"toolUseId": message.tool_call_id, "content": [{"text": text}]}}
    return [result, *points]


def _check_documents_have_text(turns: list[Json], starts: list[int]) -> None:
    """Converse wants a text block beside any document in a message."""
    for turn, start in zip(turns, starts, strict=True):
        blocks = turn["content"]
        if any("document" in b for b in blocks) and not any("text" in b for b in blocks):
            where = f"messages.{start}"
            raise InvalidRequestError(
                f"{where}: Bedrock needs a text part in a message that carries a document: add "
                "one saying what to do with it",
                param=where,
            )


def _messages(request: ChatRequest) -> tuple[list[Json], list[Json]]:
    system: list[Json] = []
    turns: list[Json] = []
    starts: list[int] = []  # per turn, the index of its first message
    names = DocumentNames()
    for i, message in enumerate(request.messages):
        where = f"messages.{i}"
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.extend(_text(message.content, where))
            continue
        if isinstance(message, AssistantMessage):
            role, blocks = "assistant", _assistant_blocks(message, where)
        elif isinstance(message, ToolMessage):
            role, blocks = "user", _tool_result(message, where)
        else:
            role, blocks = "user", _user_blocks(message, where, names)
        if not blocks:
            raise InvalidRequestError(
                f"{where} is empty: Bedrock rejects messages with no content", param=where
            )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
            starts.append(i)
    if names.count:
        _check_documents_have_text(turns, starts)
    return system, turns


def _has_tool_blocks(turns: list[Json]) -> bool:
    return any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"])


def _tool_config(request: ChatRequest, turns: list[Json], deployment: Deployment) -> Json | None:
    tools: list[Json] = []
    for tool in request.tools or ():
        fn = tool.function
        spec: Json = {"name": fn.name}
        if fn.description:
            spec["description"] = fn.description
        spec["inputSchema"] = {"json": fn.parameters or {"type": "object", "properties": {}}}
        tools.append({"toolSpec": spec})
        tools += _point(tool)
    choice = request.tool_choice
    json_tool = json_tool_name(request)
    if json_tool is not None:
        if tools:
            raise InvalidRequestError(
                "Bedrock answers in JSON through a forced tool, so response_format "
                "json_schema/json_object cannot be combined with tools: send one or the other",
                param="response_format",
            )
        fmt = request.response_format
        schema = (fmt.json_schema or {}).get("schema") if fmt is not None else None
        spec = {"name": json_tool, "inputSchema": {"json": schema or {"type": "object"}}}
        if fmt is not None and fmt.json_schema and fmt.json_schema.get("description"):
            spec["description"] = fmt.json_schema["description"]
        return {"tools": [{"toolSpec": spec}], "toolChoice": {"tool": {"name": json_tool}}}
    if not tools:
        return None
    if choice == "none":
        if not _has_tool_blocks(turns):
            return None  # no tools offered: the model cannot call one
        # Bedrock needs toolConfig when the history holds tool blocks, and has no "none".
        drop_or_reject({"tool_choice": choice}, ["tool_choice"], deployment)
        choice = None
    config: Json = {"tools": tools}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise InvalidRequestError(
                "tool_choice must be 'auto', 'required', 'none' or "
                "{'type': 'function', 'function': {'name': ...}}",
                param="tool_choice",
            )
        config["toolChoice"] = {"tool": {"name": name}}
    return config


def _inference_config(wire: Mapping[str, Any], request: ChatRequest) -> Json:
    config: Json = {}
    if (limit := request.output_limit()) is not None:
        config["maxTokens"] = limit
    if wire.get("temperature") is not None:
        config["temperature"] = wire["temperature"]
    if wire.get("top_p") is not None:
        config["topP"] = wire["top_p"]
    if (stop := wire.get("stop")) is not None:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    return config


def converse_body(request: ChatRequest, deployment: Deployment) -> Json:
    """The Converse JSON body (the same for ConverseStream)."""
    wire = request.wire()
    if (wire.get("n") or 1) > 1:
        raise UnsupportedParamsError(
            "Bedrock returns one choice per call: remove n, or make n separate calls",
            param="n",
            provider=deployment.provider,
            model=deployment.model,
        )
    extras = {k: v for k, v in wire.items() if k not in _CONSUMED}
    if wire.get("parallel_tool_calls") is False:
        extras["parallel_tool_calls"] = False  # Bedrock cannot turn parallel calls off
    drop_or_reject(
        extras, _UNSUPPORTED | deployment.unsupported_params | {"parallel_tool_calls"}, deployment
    )
    system, turns = _messages(request)
    body: Json = {"messages": turns}
    if system:
        body["system"] = system
    if inference := _inference_config(wire, request):
        body["inferenceConfig"] = inference
    if (tool_config := _tool_config(request, turns, deployment)) is not None:
        body["toolConfig"] = tool_config
    if request.metadata:
        body["requestMetadata"] = dict(request.metadata)
    model_fields: Json = {}
    for key, value in extras.items():
        if value is None:
            continue
        if key == "additionalModelRequestFields" and isinstance(value, dict):
            model_fields.update(value)
        elif key in _CONVERSE_FIELDS:
            body[key] = value
        else:
            model_fields[key] = value  # e.g. top_k, thinking: the model's own parameters
    if model_fields:
        body["additionalModelRequestFields"] = model_fields
    if not request_marked(request):
        if deployment.options.get(OPTION):
            bedrock_cache_points(body, deployment.model)
    elif not caches(deployment.model):
        drop_cache_points(body)  # the client's marks, for a model Bedrock caches nothing for
    return body


class _SigV4At(SigV4Auth):
    """SigV4Auth signing at a given time instead of reading the clock (tests pin it)."""

    def add_auth_at(self, request: AWSRequest, now: datetime.datetime) -> None:
        request.context["timestamp"] = now.strftime(SIGV4_TIMESTAMP)
        # botocore's own add_auth steps; the stubs omit these long-stable private methods.
        self._modify_request_before_signing(request)  # type: ignore[attr-defined]
        canonical = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, signature)  # type: ignore[attr-defined]


def sign(
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: ReadOnlyCredentials,
    region: str,
    now: datetime.datetime,
) -> dict[str, str]:
    """The headers with SigV4's X-Amz-Date, X-Amz-Security-Token and Authorization added."""
    aws = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    _SigV4At(credentials, SERVICE, region).add_auth_at(aws, now.astimezone(datetime.UTC))
    return {k: str(v) for k, v in aws.headers.items()}


def _model_path(model: str) -> str:
    # '/' inside an ARN is encoded; ':' is a legal path character and left as is, because
    # HTTP clients (yarl, under aiohttp) normalise %3A back to ':' and the signature must
    # cover exactly the path that goes on the wire. AWS canonicalises either form the same.
    return quote(model, safe=":")


def build_request(
    request: ChatRequest, deployment: Deployment, now: datetime.datetime
) -> HttpRequest:
    options = deployment.options
    credentials = options.get("credentials")
    region = options.get("region")
    if not isinstance(credentials, ReadOnlyCredentials) or not isinstance(region, str):
        raise InvalidRequestError(
            "this Bedrock deployment has no resolved AWS credentials and region: it must go "
            "through chatgate.providers.bedrock.auth.prepare first",
            param="options",
        )
    body = orjson.dumps(converse_body(request, deployment))
    action = "converse-stream" if request.stream else "converse"
    url = f"{deployment.api_base}/model/{_model_path(deployment.model)}/{action}"
    headers = {
        **deployment.headers,
        "Content-Type": "application/json",
        "Accept": _EVENT_STREAM if request.stream else "application/json",
    }
    signed = sign(url, headers, body, credentials, region, now)
    return HttpRequest("POST", url, signed, body)
