"""The fields of a virtual key, checked by one schema before anything is written: what
``POST /admin/keys``, ``PATCH /admin/keys/{key_id}``, ``chatgate keys`` and ``KeyStore`` accept.

Every bound here is a column's: a value the database cannot hold, or that a record cannot be
shown with (an expiry past year 9999), is refused with a 400 naming the field, never inserted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    StringConstraints,
    ValidationError,
)

from chatgate.cost.budget_tags import MAX_TAG_CHARS, MAX_TAGS
from chatgate.errors import InvalidRequestError

__all__ = ["FIELDS", "MAX_EXPIRES_S", "KeyFields", "key_fields", "parse_duration"]

MAX_EXPIRES_S = 100 * 365 * 86400
_MAX_LIMIT = 2**31 - 1  # rpm and tpm are 32-bit integer columns on PostgreSQL
_MAX_BUDGET = Decimal(10) ** 9  # budget_usd is Numeric(20, 10)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}

_HINTS = {
    "name": "a string of at most 200 characters",
    "models": 'a list of model names, e.g. ["gpt-4o-mini", "smart"]',
    "budget": 'a non-negative amount in USD up to 1000000000, e.g. 10 or "2.50"',
    "budget_period": "one of daily, monthly, lifetime",
    "rpm": f"a positive integer up to {_MAX_LIMIT}",
    "tpm": f"a positive integer up to {_MAX_LIMIT}",
    "expires": "seconds from now (a positive number) or a duration such as 30d, 12h, 90m; "
    "at most 100 years",
    "team": "a string of at most 200 characters",
    "user": "a string of at most 200 characters",
    "metadata": 'a JSON object, e.g. {"env": "prod"}',
    "tags": f"a list of at most {MAX_TAGS} tags of 1 to {MAX_TAG_CHARS} characters, without "
    'commas or spaces around them, e.g. ["team-search"]',
}
FIELDS = frozenset(_HINTS)


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '2w', '1y' or '3600' -> seconds (positive and finite)."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _DURATION_UNITS else ""
    try:
        amount = float(value[: -1 if unit else None]) * _DURATION_UNITS[unit or "s"]
    except ValueError:
        amount = math.nan
    if not (0 < amount < math.inf):
        raise InvalidRequestError(
            f"expires: {text!r} is not a duration; use a number and a unit, e.g. 30d, 12h, 90m",
            param="expires",
        )
    return amount


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # JSON true is not 1
        raise ValueError("a boolean is not a number")
    return value


def _seconds(value: Any) -> Any:
    value = _not_bool(value)
    if not isinstance(value, str):
        return value
    try:
        return parse_duration(value)
    except InvalidRequestError:
        raise ValueError(f"{value[:40]!r} is not a duration") from None


def _no_nul(text: str) -> str:
    # PostgreSQL's text and jsonb cannot hold one (SQLite can): refused everywhere alike
    if "\x00" in text:
        raise ValueError("a NUL character (\\u0000) cannot be stored")
    return text


def _no_nul_inside(value: JsonValue) -> JsonValue:
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, list):
        for item in value:
            _no_nul_inside(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul_inside(item)
    return value


Text = Annotated[str, StringConstraints(max_length=200), AfterValidator(_no_nul)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_nul)]
Limit = Annotated[StrictInt, Field(gt=0, le=_MAX_LIMIT)]


def _plain_tag(tag: str) -> str:
    # the spend log joins a request's tags with commas; a request's own tags are stripped
    if "," in tag or tag != tag.strip():
        raise ValueError(f"{tag[:80]!r} has a comma or spaces around it")
    return _no_nul(tag)


Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TAG_CHARS), AfterValidator(_plain_tag)
]
Budget = Annotated[
    Decimal, BeforeValidator(_not_bool), Field(ge=0, le=_MAX_BUDGET, allow_inf_nan=False)
]
Seconds = Annotated[
    float, BeforeValidator(_seconds), Field(gt=0, le=MAX_EXPIRES_S, allow_inf_nan=False)
]


class KeyFields(BaseModel):
    """The settable fields; which ones a request gave is ``model_fields_set``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text | None = None
    models: list[ModelName] | None = None
    budget: Budget | None = None
    budget_period: Literal["daily", "monthly", "lifetime"] | None = None
    rpm: Limit | None = None
    tpm: Limit | None = None
    expires: Seconds | None = None
    team: Text | None = None
    user: Text | None = None
    metadata: Annotated[dict[str, JsonValue], AfterValidator(_no_nul_inside)] | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None

    def columns(self, now: float) -> dict[str, Any]:
        """The virtual_keys columns for the fields given; a null clears a field."""
        given = self.model_fields_set
        out: dict[str, Any] = {}
        for name, column in (
            ("name", "name"),
            ("budget", "budget_usd"),
            ("budget_period", "budget_period"),
            ("rpm", "rpm"),
            ("tpm", "tpm"),
            ("team", "team"),
            ("user", "user_id"),
        ):
            if name in given:
                out[column] = getattr(self, name)
        if "models" in given:
            out["models"] = list(self.models or ())
        if "metadata" in given:
            out["metadata"] = dict(self.metadata or {})
        if "tags" in given:  # in order, once each; NULL for none
            out["tags"] = list(dict.fromkeys(self.tags or ())) or None
        if "expires" in given:
            out["expires_at"] = None if self.expires is None else now + self.expires
        return out


def key_fields(data: Mapping[str, Any]) -> KeyFields:
    """Validate ``data``; InvalidRequestError names the first wrong field and what it takes."""
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field {unknown[0]!r}; fields: {', '.join(sorted(FIELDS))}",
            param=unknown[0],
        )
    try:
        return KeyFields.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = str(first["loc"][0]) if first["loc"] else "body"
        where = ".".join(str(p) for p in first["loc"]) or field
        hint = _HINTS.get(field, "")
        msg = first["msg"].removeprefix("Value error, ")
        raise InvalidRequestError(
            f"{where}: {hint} ({msg})" if hint else f"{where}: {msg}",
            param=field,
        ) from None
