"""The public surface: the lazy ``__init__``'s three name lists agree, every public name has a
docstring of its own, the version has one home, and the package ships ``py.typed``."""

from __future__ import annotations

import ast
import importlib
import inspect
from decimal import Decimal
from importlib import metadata
from pathlib import Path

import pytest

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


def test_every_request_field_is_a_typed_parameter() -> None:
    from chatgate.chat_request import CHAT_FIELDS
    from chatgate.types import ChatRequest

    assert set(ChatRequest.model_fields) - {"model", "messages", "stream"} <= CHAT_FIELDS


def test_a_router_refuses_a_misspelt_parameter_before_routing() -> None:
    entry = {"model": "openai/x", "api_key": "k", "api_base": "http://127.0.0.1:9/v1"}
    router = chatgate.Router(model_list=[{"model_name": "m", "params": entry}])
    with pytest.raises(chatgate.InvalidRequestError) as caught:
        router.completion("m", [{"role": "user", "content": "hi"}], temprature=0.5)  # type: ignore[call-arg]
    assert caught.value.param == "temprature"
    assert "did you mean 'temperature'" in str(caught.value)


def test_route_options_and_request_fields_do_not_share_a_name() -> None:
    from chatgate.chat_request import CALL_ARGS, CHAT_FIELDS
    from chatgate.router.options import GUARD_ARGS, ROUTE_ARGS

    assert not (ROUTE_ARGS & CHAT_FIELDS)
    assert not (GUARD_ARGS & CHAT_FIELDS)
    assert not (GUARD_ARGS & ROUTE_ARGS)
    assert not (CALL_ARGS & CHAT_FIELDS)


def test_the_cost_functions_to_precheck_a_call_are_public() -> None:
    price = chatgate.lookup_price("openai/gpt-4o")
    assert price is not None
    assert chatgate.upper_bound(price, 1000, 100) == Decimal("0.0035")  # $2.50/M in, $10/M out
