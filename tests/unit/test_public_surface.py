"""The public surface: the lazy ``__init__``'s three name lists agree, every public name has a
docstring of its own, the version has one home, and the package ships ``py.typed``."""

from __future__ import annotations

import ast
import importlib
import inspect
from importlib import metadata
from pathlib import Path

import chatgate

INIT = Path(chatgate.__file__)


def _type_checking_names() -> set[str]:
    tree = ast.parse(INIT.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return {
                alias.asname or alias.name
                for stmt in node.body
                if isinstance(stmt, ast.ImportFrom)
                for alias in stmt.names
            }
    raise AssertionError("no TYPE_CHECKING block in chatgate/__init__.py")


def _eager_names() -> set[str]:
    tree = ast.parse(INIT.read_text())
    return {
        alias.asname or alias.name
        for stmt in tree.body
        if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.module.startswith("chatgate")
        for alias in stmt.names
    }


def test_lazy_names_match_the_type_checking_imports() -> None:
    assert set(chatgate._LAZY) == _type_checking_names()


def test_all_is_the_eager_and_the_lazy_names() -> None:
    assert sorted(chatgate.__all__) == sorted(set(chatgate._LAZY) | _eager_names())
    assert len(chatgate.__all__) == len(set(chatgate.__all__))


def test_every_lazy_name_resolves_from_its_module() -> None:
    for name, module in chatgate._LAZY.items():
        assert getattr(importlib.import_module(module), name) is getattr(chatgate, name), name


def test_every_public_name_has_its_own_docstring() -> None:
    missing = []
    for name in chatgate.__all__:
        obj = getattr(chatgate, name)
        doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        if not (doc and doc.strip()):
            missing.append(name)
    assert missing == []


def test_the_version_has_one_home() -> None:
    assert metadata.version("chatgate") == chatgate.__version__
    pyproject = (INIT.parents[2] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert "\nversion =" not in pyproject


def test_the_package_ships_py_typed() -> None:
    assert (INIT.parent / "py.typed").is_file()
