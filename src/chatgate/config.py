"""The config file shape shared by the router and the gateway (YAML; see docs/configuration.md).

    model_list:
      - model_name: smart                # the name clients ask for
        params:                          # `litellm_params` is accepted as an alias
          model: openai/gpt-4o
          api_key: os.environ/OPENAI_API_KEY
    general_settings: {master_key: os.environ/CHATGATE_MASTER_KEY}

A value ``os.environ/NAME`` is read from the environment when the config is loaded. Unknown
keys are errors that name the key and where it is, never silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from chatgate.errors import InvalidRequestError

if TYPE_CHECKING:
    from chatgate.yaml_lines import LineFinder

__all__ = ["Config", "ConfigError", "DeploymentParams", "GeneralSettings", "ModelEntry", "load"]


class ConfigError(InvalidRequestError):
    """The config file is wrong; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DeploymentParams(_Strict):
    model: str
    api_key: str | None = Field(default=None, repr=False)
    api_base: str | None = None
    api_version: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    drop_params: bool = False
    extra_headers: dict[str, str] | None = Field(default=None, repr=False)


class ModelEntry(_Strict):
    model_name: str = Field(min_length=1)
    params: DeploymentParams = Field(
        validation_alias=pydantic.AliasChoices("params", "litellm_params")
    )


class GeneralSettings(_Strict):
    master_key: str | None = Field(default=None, repr=False)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    log_content: bool = False  # put message content in the access log
    shutdown_grace_s: float = Field(default=30.0, ge=0)  # in-flight time allowed on SIGTERM


class Config(_Strict):
    model_list: list[ModelEntry] = Field(default_factory=list)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)


Path_ = tuple[str | int, ...]


def _resolve_env(
    value: Any, env: Mapping[str, str], where: str, path: Path_, lines: LineFinder | None
) -> Any:
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value.removeprefix("os.environ/")
        if name not in env:
            raise ConfigError(
                f"{_at(lines, path)}{where}: environment variable {name} is not set", param=where
            )
        return env[name]
    if isinstance(value, dict):
        return {
            k: _resolve_env(v, env, f"{where}.{k}", (*path, k), lines) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _resolve_env(v, env, f"{where}[{i}]", (*path, i), lines) for i, v in enumerate(value)
        ]
    return value


def _at(lines: LineFinder | None, path: Path_) -> str:
    line = lines.line(path) if lines is not None else None
    return f"line {line}: " if line is not None else ""


def parse(
    data: Any,
    env: Mapping[str, str] | None = None,
    source: str = "config",
    lines: LineFinder | None = None,
) -> Config:
    """Validate config data; ``lines`` (from ``load``) lets errors name the file's line."""
    environ = os.environ if env is None else env
    resolved = _resolve_env(data or {}, environ, source, (), lines)
    try:
        return Config.model_validate(resolved)
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{_at(lines, error['loc'])}{where}: {problem}")
        raise ConfigError(f"{source}: " + "; ".join(problems), param=problems[0]) from None


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    import yaml

    from chatgate.yaml_lines import LineFinder

    text = Path(path).read_text()
    try:
        data = yaml.safe_load(text)
        lines = LineFinder(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(data, env, str(path), lines)
