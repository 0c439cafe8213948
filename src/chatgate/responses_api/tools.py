"""Responses tools -> Chat Completions function tools, and the model's calls back to the item
each tool's kind answers with.

- ``function``: as it is. ``namespace``: its function tools, flattened to ``<namespace>__<name>``
  (a namespace only groups tools), answered as ``function_call`` items carrying ``namespace``.
- ``custom`` (freeform, e.g. Codex's ``apply_patch``): a function taking one string ``input``
  (the grammar, if any, goes in its description), answered as ``custom_tool_call`` items.
- ``local_shell``: a function taking ``command`` (argv), answered as ``local_shell_call`` items.
- hosted tools (``web_search``, ``file_search``, ``code_interpreter``, ``image_generation``, ...)
  run on OpenAI's servers, which no backend here has: dropped and named in ``dropped`` (the
  route's ``x-chatgate-dropped-tools`` header), or a 400 naming the tool under ``strict``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from chatgate.errors import InvalidRequestError

__all__ = ["CallTarget", "ToolMap", "custom_arguments", "shell_arguments", "tools_to_chat"]

Wire = dict[str, Any]
Kind = Literal["function", "custom", "local_shell"]

LOCAL_SHELL = "local_shell"
_MAX_NAME = 64  # OpenAI's and Anthropic's limit on a function name
_CUSTOM_INPUT = "input"
_LOCAL_SHELL_PARAMETERS: Wire = {
    "type": "object",
    "properties": {
        "command": {
            "type": "array",
            "items": {"type": "string"},
            "description": 'The command to run, as argv (e.g. ["bash", "-lc", "ls"]).',
        },
        "workdir": {"type": "string", "description": "The working directory."},
        "timeout_ms": {"type": "integer", "description": "A time limit in milliseconds."},
    },
    "required": ["command"],
}
_LOCAL_SHELL_DESCRIPTION = "Run a command on the user's machine and get its output."


def _bad(where: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: {message}", param=where)


@dataclass(frozen=True, slots=True)
class CallTarget:
    """What the upstream function name stands for in the caller's tool list."""

    kind: Kind
    name: str
    namespace: str | None = None


def _flat_name(namespace: str, name: str) -> str:
    flat = f"{namespace}__{name}"
    if len(flat) <= _MAX_NAME:
        return flat
    digest = hashlib.sha256(flat.encode()).hexdigest()[:8]
    return f"{flat[: _MAX_NAME - 9]}_{digest}"


def _custom_parameters(tool: Mapping[str, Any]) -> Wire:
    fmt = tool.get("format")
    about = "The tool's whole input, as plain text (not JSON)."
    if isinstance(fmt, Mapping) and fmt.get("type") == "grammar":
        about += (
            f" It must match this {fmt.get('syntax', '')} grammar:\n{fmt.get('definition', '')}"
        )
    return {
        "type": "object",
        "properties": {_CUSTOM_INPUT: {"type": "string", "description": about}},
        "required": [_CUSTOM_INPUT],
        "additionalProperties": False,
    }


@dataclass(slots=True)
class ToolMap:
    """Upstream function name -> CallTarget, for the tools of one request."""

    targets: dict[str, CallTarget] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def wire_name(self, target: CallTarget) -> str:
        if target.kind == "local_shell":
            return LOCAL_SHELL
        if target.namespace:
            return _flat_name(target.namespace, target.name)
        return target.name

    def target(self, wire_name: str) -> CallTarget:
        return self.targets.get(wire_name) or CallTarget("function", wire_name)

    def _add(self, target: CallTarget, function: Wire, where: str, out: list[Wire]) -> None:
        name = self.wire_name(target)
        if name in self.targets:
            raise _bad(where, f"two tools are both named {name!r} once flattened: rename one")
        self.targets[name] = target
        out.append({"type": "function", "function": {**function, "name": name}})

    def _function(
        self, tool: Mapping[str, Any], where: str, ns: str | None, out: list[Wire]
    ) -> None:
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{where}.name", "a function tool needs a name")
        function = {
            k: tool[k] for k in ("description", "parameters", "strict") if tool.get(k) is not None
        }
        self._add(CallTarget("function", name, ns), function, where, out)

    def add(self, tool: Any, where: str, out: list[Wire], *, strict: bool) -> None:
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind == "function":
            self._function(tool, where, None, out)
        elif kind == "namespace":
            ns = tool.get("name")
            if not isinstance(ns, str) or not ns:
                raise _bad(f"{where}.name", "a namespace tool needs a name")
            for j, inner in enumerate(tool.get("tools") or ()):
                here = f"{where}.tools[{j}]"
                if not isinstance(inner, Mapping) or inner.get("type") != "function":
                    raise _bad(f"{here}.type", "a namespace holds function tools")
                self._function(inner, here, ns, out)
        elif kind == "custom":
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise _bad(f"{where}.name", "a custom tool needs a name")
            function: Wire = {"parameters": _custom_parameters(tool)}
            if tool.get("description"):
                function["description"] = tool["description"]
            self._add(CallTarget("custom", name), function, where, out)
        elif kind == LOCAL_SHELL:
            function = {
                "description": _LOCAL_SHELL_DESCRIPTION,
                "parameters": _LOCAL_SHELL_PARAMETERS,
            }
            self._add(CallTarget("local_shell", LOCAL_SHELL), function, where, out)
        elif not isinstance(kind, str):
            raise _bad(f"{where}.type", "each tool must be an object with a 'type'")
        elif not strict:
            self.dropped.append(kind)
        else:
            raise _bad(
                f"{where}.type",
                f"the built-in tool {kind!r} runs on OpenAI's servers and no backend here can "
                "run it: declare a 'function' tool and run it yourself, or leave "
                "strict_tools off to have it dropped",
            )

    # -- calls back to items ------------------------------------------------------------------

    def item(self, item_id: str, call_id: str, wire_name: str, arguments: str, status: str) -> Wire:
        """The output item for one call the model made, in its tool's own kind."""
        target = self.target(wire_name)
        if target.kind == "custom":
            return {
                "id": item_id,
                "type": "custom_tool_call",
                "call_id": call_id,
                "name": target.name,
                "input": _custom_input(arguments),
                "status": status,
            }
        if target.kind == "local_shell":
            return {
                "id": item_id,
                "type": "local_shell_call",
                "call_id": call_id,
                "action": _shell_action(arguments),
                "status": status,
            }
        item = {
            "id": item_id,
            "type": "function_call",
            "call_id": call_id,
            "name": target.name,
            "arguments": arguments,
            "status": status,
        }
        if target.namespace:
            item["namespace"] = target.namespace
        return item


def _json_object(arguments: str) -> dict[str, Any]:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _custom_input(arguments: str) -> str:
    """The custom tool's text; a model that answered with bare text (no JSON) keeps it."""
    value = _json_object(arguments).get(_CUSTOM_INPUT)
    if isinstance(value, str):
        return value
    return arguments if arguments and not arguments.lstrip().startswith("{") else ""


def _shell_action(arguments: str) -> Wire:
    args = _json_object(arguments)
    command = args.get("command")
    if isinstance(command, str):
        command = ["bash", "-lc", command]
    action: Wire = {
        "type": "exec",
        "command": command if isinstance(command, list) else [],
        "env": {},
    }
    if isinstance(args.get("workdir"), str):
        action["working_directory"] = args["workdir"]
    if isinstance(args.get("timeout_ms"), int):
        action["timeout_ms"] = args["timeout_ms"]
    return action


def custom_arguments(text: str) -> str:
    """A custom tool call's input as the arguments of its function (for replayed calls)."""
    return orjson.dumps({_CUSTOM_INPUT: text}).decode()


def shell_arguments(action: Mapping[str, Any]) -> str:
    args: Wire = {"command": action.get("command") or []}
    if action.get("working_directory"):
        args["workdir"] = action["working_directory"]
    if action.get("timeout_ms"):
        args["timeout_ms"] = action["timeout_ms"]
    return orjson.dumps(args).decode()


def _choice(choice: Any, tools: ToolMap) -> Any:
    if isinstance(choice, str) and choice in ("none", "auto", "required"):
        return choice
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        target = CallTarget(kind, choice["name"], choice.get("namespace"))
        return {"type": "function", "function": {"name": tools.wire_name(target)}}
    if kind == LOCAL_SHELL:
        return {"type": "function", "function": {"name": LOCAL_SHELL}}
    if kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        return choice["mode"]
    raise _bad(
        "tool_choice",
        "only 'none', 'auto', 'required', {'type': 'function' | 'custom', 'name': ...} or "
        "allowed_tools are supported (a built-in tool cannot be forced here)",
    )


def _allowed(choice: Any) -> set[str] | None:
    if not isinstance(choice, Mapping) or choice.get("type") != "allowed_tools":
        return None
    tools = [t for t in choice.get("tools") or () if isinstance(t, Mapping)]
    return {str(t.get("name") or t.get("type")) for t in tools}


def tools_to_chat(body: Mapping[str, Any], wire: Wire, *, strict: bool) -> ToolMap:
    """Fill ``wire`` (the Chat Completions request) with ``tools`` and ``tool_choice``."""
    tools = ToolMap()
    raw = body.get("tools")
    raw = [] if raw is None else raw
    if not isinstance(raw, list):
        raise _bad("tools", "must be a list of tools")
    out: list[Wire] = []
    for i, tool in enumerate(raw):
        tools.add(tool, f"tools[{i}]", out, strict=strict)
    choice = body.get("tool_choice")
    allowed = _allowed(choice)
    if allowed is not None:
        out = [t for t in out if tools.target(t["function"]["name"]).name in allowed]
    if out:
        wire["tools"] = out
    if choice is None:
        return tools
    mapped = _choice(choice, tools)
    if out:
        wire["tool_choice"] = mapped
    elif mapped not in ("auto", "none"):  # no tools left: "auto" and "none" mean the same
        raise _bad("tool_choice", "no tool this gateway can run is left to choose")
    return tools
