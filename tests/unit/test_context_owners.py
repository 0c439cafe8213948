"""Every field of RequestContext has one writer: an assignment to ``ctx.<field>`` (or
``<anything>.ctx.<field>``) anywhere but the field's owner module (context.OWNERS) fails here."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from chatgate.server.context import OWNERS, RequestContext

SRC = Path(__file__).resolve().parents[2] / "src"
FIELDS = {f.name for f in dataclasses.fields(RequestContext)}


def _targets(node: ast.AST) -> Iterator[ast.expr]:
    if isinstance(node, ast.Assign):
        pending = list(node.targets)
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        pending = [node.target]
    else:
        return
    while pending:
        target = pending.pop()
        if isinstance(target, ast.Tuple | ast.List):
            pending.extend(target.elts)
        else:
            yield target


def _is_ctx(value: ast.expr) -> bool:
    return (isinstance(value, ast.Name) and value.id == "ctx") or (
        isinstance(value, ast.Attribute) and value.attr == "ctx"
    )


def writes(source: str) -> list[tuple[str, int]]:
    """(field, line) of every write to a context field in ``source``: assignments and
    ``setattr(ctx, "<field>", ...)``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for target in _targets(node):
            if isinstance(target, ast.Attribute) and _is_ctx(target.value):
                found.append((target.attr, target.lineno))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and node.args
            and _is_ctx(node.args[0])
        ):
            name = node.args[1]
            field = name.value if isinstance(name, ast.Constant) else "<dynamic>"
            found.append((str(field), node.lineno))
    return found


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted((SRC / "chatgate").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_every_field_has_an_owner() -> None:
    assert set(OWNERS) == FIELDS


def test_each_field_is_written_only_by_its_owner() -> None:
    wrong = [
        f"{path.relative_to(SRC)}:{line}: ctx.{field} (owner: {OWNERS.get(field)})"
        for module, path in _modules()
        for field, line in writes(path.read_text())
        if field in FIELDS | {"<dynamic>"} and OWNERS.get(field) != module
    ]
    assert wrong == []


def test_the_context_writes_nothing_itself() -> None:
    """No mutating methods: a method writing ``self.<field>`` would be a writer callable from
    anywhere, which the rule above could not see."""
    source = (SRC / "chatgate" / "server" / "context.py").read_text()
    tree = ast.parse(source)
    assigned = [
        target.lineno
        for node in ast.walk(tree)
        for target in _targets(node)
        if isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
    ]
    assert assigned == []


def test_the_check_sees_every_kind_of_write() -> None:
    source = (
        "ctx.status = 200\n"
        "hold, ctx.hold = ctx.hold, None\n"
        "request.ctx.cost += 1\n"
        "setattr(ctx, 'usage', None)\n"
        "other.status = 1\n"
    )
    assert writes(source) == [("status", 1), ("hold", 2), ("cost", 3), ("usage", 4)]
