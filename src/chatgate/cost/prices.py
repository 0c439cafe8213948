"""The price table: what a token costs on each model, from a bundled, dated data file.

``data/prices.json`` lists list prices in USD per million tokens (as providers publish them)
with context window, max output and capabilities; rows are loaded once into ``ModelPrice``
records holding exact per-token Decimals. Lookups go: exact ``provider/model`` -> alias ->
the name without a date suffix (``-2025-04-14``, ``-20250514``) -> free provider (``local``)
-> None. Prices can be added or replaced at run time (``register_price``) or per deployment
from config (``DeploymentParams``: LiteLLM's ``input_cost_per_token`` names, ``free``,
``base_model``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from importlib import resources
from typing import Any

import orjson

__all__ = [
    "FREE",
    "MissingPriceError",
    "ModelPrice",
    "PriceTable",
    "Tier",
    "default_table",
    "layer_price",
    "lookup_price",
    "register_price",
]

_MILLION = Decimal(1_000_000)
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(frozen=True, slots=True)
class Tier:
    """Prices that apply instead when a prompt is longer than ``above`` tokens."""

    above: int
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token. ``cached_input``/``cache_write`` None: billed as plain input;
    ``cache_write`` is Anthropic's 5-minute cache write, ``cache_write_1h`` its 1-hour one
    (None: billed at ``cache_write``, and without that at ``input``); ``reasoning`` None:
    billed as output; ``batch_discount``: the fraction of the price a batch job pays (0.5 =
    half price)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    batch_discount: Decimal | None = None
    long_context: Tier | None = None
    context_window: int | None = None
    max_output: int | None = None
    tools: bool = False
    vision: bool = False
    json_schema: bool = False
    source: str = ""

    @property
    def free(self) -> bool:
        return not (
            self.input
            or self.output
            or self.cached_input
            or self.cache_write
            or self.cache_write_1h
        )


FREE = ModelPrice(Decimal(0), Decimal(0), source="free")


def _per_token(value: Any, where: str) -> Decimal:
    if not isinstance(value, str):  # strings only: a float would carry binary noise
        raise ValueError(f"{where}: price must be a decimal string, got {value!r}")
    return Decimal(value) / _MILLION


def _optional(row: dict[str, Any], key: str, where: str) -> Decimal | None:
    return _per_token(row[key], f"{where}.{key}") if key in row else None


def _row(row: dict[str, Any], where: str) -> ModelPrice:
    tier = row.get("long_context")
    return ModelPrice(
        input=_per_token(row["input"], f"{where}.input"),
        output=_per_token(row["output"], f"{where}.output"),
        cached_input=_optional(row, "cached_input", where),
        cache_write=_optional(row, "cache_write", where),
        cache_write_1h=_optional(row, "cache_write_1h", where),
        reasoning=_optional(row, "reasoning", where),
        batch_discount=Decimal(row["batch_discount"]) if "batch_discount" in row else None,
        long_context=None
        if tier is None
        else Tier(
            above=int(tier["above"]),
            input=_per_token(tier["input"], f"{where}.long_context.input"),
            output=_per_token(tier["output"], f"{where}.long_context.output"),
            cached_input=_optional(tier, "cached_input", f"{where}.long_context"),
            cache_write=_optional(tier, "cache_write", f"{where}.long_context"),
            cache_write_1h=_optional(tier, "cache_write_1h", f"{where}.long_context"),
        ),
        context_window=row.get("context_window"),
        max_output=row.get("max_output"),
        tools=bool(row.get("tools")),
        vision=bool(row.get("vision")),
        json_schema=bool(row.get("json_schema")),
        source=str(row.get("source", "")),
    )


class PriceTable:
    """Prices by ``provider/model``. Built from the bundled file by ``default_table()``."""

    def __init__(
        self,
        models: dict[str, ModelPrice],
        aliases: dict[str, str] | None = None,
        free_providers: frozenset[str] = frozenset({"local"}),
        updated: str = "",
    ) -> None:
        self._models = dict(models)
        self._aliases = dict(aliases or {})
        self._free = free_providers
        self.updated = updated
        self._cache: dict[str, ModelPrice | None] = {}

    @classmethod
    def from_json(cls, data: bytes) -> PriceTable:
        raw = orjson.loads(data)
        models = {name: _row(row, name) for name, row in raw["models"].items()}
        return cls(
            models,
            raw.get("aliases"),
            frozenset(raw.get("free_providers", ())),
            raw.get("updated", ""),
        )

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.lookup(name) is not None

    def names(self) -> list[str]:
        return sorted(self._models)

    def register(self, name: str, price: ModelPrice) -> None:
        """Add or replace the price of ``provider/model`` (a bare name means openai/)."""
        self._models[_qualified(name)] = price
        self._cache.clear()

    def lookup(self, name: str) -> ModelPrice | None:
        """The price of ``provider/model``, or None when unknown (never a guess)."""
        try:
            return self._cache[name]
        except KeyError:
            found = self._cache[name] = self._find(_qualified(name))
            return found

    def _find(self, name: str) -> ModelPrice | None:
        for candidate in (name, _DATE_SUFFIX.sub("", name)):
            candidate = self._aliases.get(candidate, candidate)
            if candidate in self._models:
                return self._models[candidate]
        provider = name.partition("/")[0]
        return FREE if provider in self._free else None


def _qualified(name: str) -> str:
    return name if "/" in name else f"openai/{name}"


@functools.cache
def default_table() -> PriceTable:
    """The bundled table (loaded once per process)."""
    data = resources.files("chatgate.cost").joinpath("data/prices.json").read_bytes()
    return PriceTable.from_json(data)


def lookup_price(model: str) -> ModelPrice | None:
    """The bundled table's price for ``provider/model`` (plus run-time registrations)."""
    return default_table().lookup(model)


_PRICE_FIELDS = frozenset(
    {"input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning"}
)


class MissingPriceError(ValueError):
    """A custom price for a model the table does not know lacks input or output."""

    def __init__(self, model: str, missing: list[str]) -> None:
        super().__init__(f"{model} has no bundled price: give {' and '.join(missing)}")
        self.missing = missing


def layer_price(
    model: str, base: ModelPrice | None, given: dict[str, Decimal], source: str
) -> ModelPrice:
    """``given`` per-token prices (input, output, cached_input, cache_write, cache_write_1h,
    reasoning) over ``base``; without a base, input and output are required."""
    unknown = set(given) - _PRICE_FIELDS
    if unknown:
        raise ValueError(f"unknown price fields {sorted(unknown)}; known: {sorted(_PRICE_FIELDS)}")
    if base is None:
        missing = [name for name in ("input", "output") if name not in given]
        if missing:
            raise MissingPriceError(model, missing)
        base = ModelPrice(given["input"], given["output"])
    return replace(
        base,
        input=given.get("input", base.input),
        output=given.get("output", base.output),
        cached_input=given.get("cached_input", base.cached_input),
        cache_write=given.get("cache_write", base.cache_write),
        cache_write_1h=given.get("cache_write_1h", base.cache_write_1h),
        reasoning=given.get("reasoning", base.reasoning),
        source=source,
    )


def register_price(model: str, price: ModelPrice | None = None, **per_token: Any) -> ModelPrice:
    """Set the price of ``model`` for this process: a ModelPrice, or fields in USD per token
    (``input=..., output=...``), layered over the bundled row when there is one."""
    if price is None:
        given = {k: Decimal(str(v)) for k, v in per_token.items()}
        price = layer_price(model, default_table().lookup(model), given, "registered")
    default_table().register(model, price)
    return price
