"""``@chatgate.tool``: a typed function (sync or async) as a tool the model may call.

The name is the function's, the description its docstring's text (without the ``Args:``
section, whose lines describe the parameters), the JSON schema comes from the signature
through pydantic. A parameter typed ``ToolContext`` is not shown to the model: chatgate
passes the call's context there.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints, overload

import pydantic

from chatgate.errors import InvalidRequestError
from chatgate.structured.schema import output_schema
from chatgate.types import FunctionDefinition
from chatgate.types import Tool as WireTool

__all__ = ["Tool", "ToolContext", "ToolDenied", "ToolResult", "tool"]

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?\s*:\s*(.+)$")


@dataclass(frozen=True)
class ToolContext:
    """What a tool and ``authorize`` know about the call: whose conversation, which round,
    the model's call id, the side-effect idempotency key, and the app's own ``data``."""

    conversation_id: str | None
    round: int
    call_id: str
    idempotency_key: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    """Return this from a tool to set the status yourself, e.g. ``partial`` for one page of
    many, with a ``note`` the model sees."""

    content: Any
    status: Literal["ok", "empty", "partial", "error"] | None = None
    note: str | None = None


class ToolDenied(Exception):
    """Raise from ``authorize`` to refuse a call; the model sees the reason."""


def _split_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    if not doc:
        return None, {}
    text = inspect.cleandoc(doc)
    head, sep, rest = text.partition("\nArgs:\n")
    params: dict[str, str] = {}
    if sep:
        for line in rest.splitlines():
            if match := _ARG_LINE.match(line):
                params[match.group(1)] = match.group(2).strip()
            elif line and not line[0].isspace():
                break
    return head.strip() or None, params


@dataclass(frozen=True)
class Tool:
    """A registered tool. Calling it calls the function itself."""

    fn: Callable[..., Any]
    name: str
    description: str | None
    args_model: type[pydantic.BaseModel]
    context_param: str | None
    side_effect: bool = False
    timeout: float | None = None
    strict: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def parameters(self) -> dict[str, Any]:
        if self.strict:
            strict = output_schema(self.args_model).strict
            assert strict is not None  # checked when the tool was made
            schema = dict(strict)
        else:  # unknown arguments are refused by validation (extra="forbid")
            schema = dict(output_schema(self.args_model).portable)
        schema.pop("title", None)
        return schema

    def definition(self) -> WireTool:
        function = FunctionDefinition(
            name=self.name, description=self.description, parameters=self.parameters()
        )
        if self.strict:
            function.strict = True
        return WireTool(function=function)


def _field(name: str, param: inspect.Parameter, hint: Any, docs: dict[str, str]) -> Any:
    default = ... if param.default is inspect.Parameter.empty else param.default
    description = docs.get(name)
    return (hint, pydantic.Field(default, description=description))


def make_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    timeout: float | None = None,
    strict: bool = False,
) -> Tool:
    tool_name = name or fn.__name__
    where = f"tool {tool_name!r}"
    if not _NAME.match(tool_name):
        raise InvalidRequestError(
            f"{where}: a tool name must be 1-64 letters, digits, '_' or '-'", param="name"
        )
    hints = get_type_hints(fn, include_extras=True)
    summary, docs = _split_docstring(fn.__doc__)
    fields: dict[str, Any] = {}
    context_param = None
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise InvalidRequestError(
                f"{where}: *{pname} cannot be described to a model; name every parameter",
                param=pname,
            )
        if hints.get(pname) is ToolContext:
            context_param = pname
            continue
        if pname not in hints:
            raise InvalidRequestError(
                f"{where}: parameter {pname!r} needs a type annotation (it becomes the schema)",
                param=pname,
            )
        fields[pname] = _field(pname, param, hints[pname], docs)
    model = pydantic.create_model(
        f"{tool_name}_arguments",
        __config__=pydantic.ConfigDict(extra="forbid"),
        **fields,
    )
    if strict and output_schema(model).strict is None:
        raise InvalidRequestError(
            f"{where}: strict=True cannot express it: {output_schema(model).strict_problem}",
            param="strict",
        )
    return Tool(
        fn=fn,
        name=tool_name,
        description=description or summary,
        args_model=model,
        context_param=context_param,
        side_effect=side_effect,
        timeout=timeout,
        strict=strict,
    )


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    timeout: float | None = None,
    strict: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    side_effect: bool = False,
    timeout: float | None = None,
    strict: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """``@tool`` or ``@tool(side_effect=True, timeout=5)``: the function as a Tool.

    ``side_effect=True`` marks a write: it runs at most once per (conversation id, tool,
    canonical arguments), across retries and restarts. ``timeout`` overrides run_tools'
    per-tool timeout; ``strict`` sends the schema in OpenAI's strict form."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return make_tool(
            f,
            name=name,
            description=description,
            side_effect=side_effect,
            timeout=timeout,
            strict=strict,
        )

    return wrap(fn) if fn is not None else wrap
