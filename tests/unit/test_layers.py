"""Layers import downward only: server -> router -> client -> providers -> transport, types."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "chatgate"

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
    ),
    "types.py": ("chatgate.",),
    "meta.py": ("chatgate.",),
    "embedding_types.py": ("chatgate.server", "chatgate.client", "chatgate.providers"),
    "errors.py": ("chatgate.",),
    "redact.py": ("chatgate.",),  # below everything that raises: providers, transport, client
    "client.py": ("chatgate.server", "chatgate.router"),
    "cache": ("chatgate.server", "chatgate.router", "chatgate.client", "chatgate.cli"),
    "router": ("chatgate.server",),
    "responses_api": (
        "chatgate.server",
        "chatgate.router",
        "chatgate.stream",
        "chatgate.cost",
        "chatgate.cache",
    ),
    "persistence": (
        "chatgate.server",
        "chatgate.router",
        "chatgate.client",
        "chatgate.memory",
        "chatgate.tools",
        "chatgate.structured",
    ),
    "structured": ("chatgate.server", "chatgate.router", "chatgate.memory", "chatgate.tools"),
    "tools": ("chatgate.server", "chatgate.router"),
    "memory": ("chatgate.server", "chatgate.router", "chatgate.tools"),
    "batching": ("chatgate.server",),
    "tiering": ("chatgate.server", "chatgate.router"),  # below the router that calls it
}


# The canonical types sit at the bottom with one sibling, the answer's metadata.
ALLOWED = {"types.py": {"chatgate.meta"}}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


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
