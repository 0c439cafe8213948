"""Layers import downward only: server -> router -> api -> structured, tools, memory ->
client -> cache, stream, cost -> providers -> transport -> types, errors. Imports inside
functions count (they hide a dependency, they do not remove it), and ``from chatgate import x``
counts as importing ``chatgate.x``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "chatgate"

_ABOVE_CLIENT = (
    "chatgate.server",
    "chatgate.router",
    "chatgate.api",
    "chatgate.routed",
    "chatgate.structured",
    "chatgate.tools",
    "chatgate.memory",
    "chatgate.batching",
    "chatgate.cli",
    "chatgate.chat_cli",
    "chatgate.spend_cli",
)

# A module in the key's layer may not import any of these.
FORBIDDEN = {
    "providers": (
        "chatgate.server",
        "chatgate.router",
        "chatgate.client",
        "chatgate.stream",
        "chatgate.cost",
        "chatgate.cache",
        "chatgate.cli",
    ),
    "transport": (
        "chatgate.server",
        "chatgate.router",
        "chatgate.client",
        "chatgate.stream",
        "chatgate.cost",
        "chatgate.cache",
        "chatgate.providers",
    ),
    "chat_request.py": (*_ABOVE_CLIENT, "chatgate.client", "chatgate.providers"),
    "cost": (
        *_ABOVE_CLIENT,
        "chatgate.client",
        "chatgate.stream",
        "chatgate.cache",
        "chatgate.config",
    ),
    "stream.py": (*_ABOVE_CLIENT, "chatgate.client", "chatgate.cache", "chatgate.config"),
    "stream_source.py": (*_ABOVE_CLIENT, "chatgate.client", "chatgate.cache", "chatgate.config"),
    "accumulator.py": (*_ABOVE_CLIENT, "chatgate.client", "chatgate.cache", "chatgate.stream"),
    "config.py": (*_ABOVE_CLIENT, "chatgate.client", "chatgate.stream", "chatgate.cache"),
    "types": ("chatgate.",),
    "meta.py": ("chatgate.",),
    "embedding_types.py": ("chatgate.server", "chatgate.client", "chatgate.providers"),
    "errors.py": ("chatgate.",),
    "retry_after.py": ("chatgate.",),
    "redact.py": ("chatgate.",),  # below everything that raises: providers, transport, client
    "client.py": _ABOVE_CLIENT,
    "routed.py": ("chatgate.server", "chatgate.router", "chatgate.api"),
    "cache": ("chatgate.server", "chatgate.router", "chatgate.client", "chatgate.cli"),
    "router": ("chatgate.server",),
    "responses_api": (
        "chatgate.server",
        "chatgate.router",
        "chatgate.stream",
        "chatgate.cost",
        "chatgate.cache",
    ),
    "store": (  # conversations and tool calls persist here: below memory and tools
        "chatgate.server",
        "chatgate.router",
        "chatgate.client",
        "chatgate.memory",
        "chatgate.tools",
        "chatgate.structured",
        "chatgate.cost",
    ),
    "persistence": ("chatgate.server", "chatgate.memory", "chatgate.tools"),
    "structured": (
        "chatgate.server",
        "chatgate.router",
        "chatgate.api",
        "chatgate.memory",
        "chatgate.tools",
    ),
    "tools": ("chatgate.server", "chatgate.router", "chatgate.api"),
    "memory": ("chatgate.server", "chatgate.router", "chatgate.api", "chatgate.tools"),
    "batching": ("chatgate.server",),
    # Below the client (which emits the spans): nothing above it.
    "telemetry": (
        "chatgate.server",
        "chatgate.router",
        "chatgate.client",
        "chatgate.stream",
        "chatgate.cache",
    ),
    "tiering": ("chatgate.server", "chatgate.router"),  # below the router that calls it
}


# The bottom modules import one sibling each (the answer's metadata, the Retry-After parser)
# and their own parts.
ALLOWED = {
    "types": {
        "chatgate.meta",
        "chatgate.types.wire",
        "chatgate.types.messages",
        "chatgate.types.responses",
    },
    "errors.py": {"chatgate.retry_after"},
}


def _nodes(tree: ast.AST, *, runtime: bool) -> Iterator[ast.AST]:
    """Every node; with ``runtime``, none inside an ``if TYPE_CHECKING:`` block."""
    for node in ast.iter_child_nodes(tree):
        if runtime and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for stmt in node.orelse for n in _nodes(stmt, runtime=runtime))
            continue
        yield node
        yield from _nodes(node, runtime=runtime)


def imports_of(path: Path, *, runtime: bool = False) -> set[str]:
    """The chatgate modules (and packages) ``path`` imports; ``from chatgate.a import b`` is
    ``chatgate.a.b`` when that is a module, else ``chatgate.a``."""
    names: set[str] = set()
    for node in _nodes(ast.parse(path.read_text()), runtime=runtime):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if _module_path(full) is not None else node.module)
    return names


def _module_path(name: str) -> Path | None:
    if not name.startswith("chatgate."):
        return None
    base = SRC.joinpath(*name.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_imports_point_inward() -> None:
    problems = []
    for layer, banned in FORBIDDEN.items():
        target = SRC / layer
        files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
        for path in files:
            for name in imports_of(path) - ALLOWED.get(layer, set()):
                if name.startswith(banned):
                    problems.append(f"{path.relative_to(SRC)} imports {name}")
    assert problems == []


def test_adapters_hold_no_http_client_or_logger() -> None:
    """providers/local is the exception: it manages a child process and probes it."""
    problems = []
    for path in sorted((SRC / "providers").rglob("*.py")):
        if path.parent.name == "local":
            continue
        for name in imports_of(path):
            if name.split(".")[0] in ("aiohttp", "httpx", "requests", "logging"):
                problems.append(f"{path.relative_to(SRC)} imports {name}")
    assert problems == []


def test_the_import_graph_has_no_cycle() -> None:
    """Runtime imports only (``if TYPE_CHECKING:`` blocks are not run); a package's
    ``__init__`` importing its own submodules is not a cycle unless a submodule imports the
    package back."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        deps = set()
        for name in imports_of(path, runtime=True):
            while name.startswith("chatgate.") and _module_path(name) is None:
                name = name.rsplit(".", 1)[0]
            if name.startswith("chatgate."):
                deps.add(name)
        graph[_module_name(path)] = deps - {_module_name(path)}
    cycles = _cycles(graph)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in graph), None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found
