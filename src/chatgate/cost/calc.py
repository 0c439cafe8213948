"""What a call cost, in exact Decimal USD: a pure function of Usage and ModelPrice.

Usage follows OpenAI: ``prompt_tokens`` counts every input token, cache reads
(``prompt_tokens_details.cached_tokens``) and cache writes (``cache_creation_tokens``;
Anthropic's ``cache_creation_input_tokens``) included; ``completion_tokens`` counts reasoning
tokens (``completion_tokens_details.reasoning_tokens``) too. So

    cost = fresh x input + cache reads x cached_input
         + 5-minute cache writes x cache_write + 1-hour cache writes x cache_write_1h
         + (completion - reasoning) x output + reasoning x reasoning price

The 1-hour writes are the part of the writes in ``cache_creation_1h_tokens`` (Anthropic's
``cache_creation.ephemeral_1h_input_tokens``, Bedrock's ``cacheDetails``); a model with no
``cache_write_1h`` price bills them at ``cache_write``, and without that at ``input``. The
long-context tier's prices apply when the prompt is longer than its threshold, and the
batch discount for batch jobs. A model with no known price costs None, never a guess: one
warning per model and process says how to give it a price.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chatgate.cost.prices import ModelPrice, lookup_price
from chatgate.types import ChatResponse, Usage

if TYPE_CHECKING:
    from chatgate.providers.base import Deployment

__all__ = [
    "cache_writes_1h",
    "completion_cost",
    "cost_of",
    "estimate_cost",
    "partial_usage",
    "price_of",
    "response_cost",
    "token_parts",
    "upper_bound",
]

log = logging.getLogger("chatgate.cost")
_warned: set[str] = set()


def token_parts(usage: Usage) -> tuple[int, int, int, int, int]:
    """(fresh input, cache reads, cache writes, visible output, reasoning) of a Usage."""
    prompt = usage.prompt_tokens
    details = usage.prompt_tokens_details
    extra = usage.model_extra or {}
    cached = (details.cached_tokens if details else None) or int(
        extra.get("prompt_cache_hit_tokens") or extra.get("cache_read_input_tokens") or 0
    )
    written = (details.cache_creation_tokens if details else None) or int(
        extra.get("cache_creation_input_tokens") or 0
    )
    out_details = usage.completion_tokens_details
    reasoning = (out_details.reasoning_tokens if out_details else None) or 0
    fresh = max(prompt - cached - written, 0)
    return fresh, cached, written, max(usage.completion_tokens - reasoning, 0), reasoning


def cache_writes_1h(usage: Usage) -> int:
    """How many of the cache writes were written with a 1-hour TTL (0 when not reported)."""
    details = usage.prompt_tokens_details
    if details is not None and details.cache_creation_1h_tokens is not None:
        return details.cache_creation_1h_tokens
    split = (usage.model_extra or {}).get("cache_creation")  # a raw Anthropic usage object
    return int(split.get("ephemeral_1h_input_tokens") or 0) if isinstance(split, dict) else 0


def cost_of(usage: Usage, price: ModelPrice, *, batch: bool = False) -> Decimal:
    """Exact USD cost of ``usage`` at ``price``."""
    fresh, cached, written, visible, reasoning = token_parts(usage)
    written_1h = min(cache_writes_1h(usage), written)
    input_price, output_price = price.input, price.output
    cached_price, write_price = price.cached_input, price.cache_write
    write_1h_price = price.cache_write_1h
    tier = price.long_context
    if tier is not None and usage.prompt_tokens > tier.above:
        input_price, output_price = tier.input, tier.output
        cached_price = tier.cached_input if tier.cached_input is not None else cached_price
        write_price = tier.cache_write if tier.cache_write is not None else write_price
        write_1h_price = tier.cache_write_1h if tier.cache_write_1h is not None else write_1h_price
    write_price = input_price if write_price is None else write_price
    reasoning_price = price.reasoning if price.reasoning is not None else output_price
    total = (
        fresh * input_price
        + cached * (input_price if cached_price is None else cached_price)
        + (written - written_1h) * write_price
        + written_1h * (write_price if write_1h_price is None else write_1h_price)
        + visible * output_price
        + reasoning * reasoning_price
    )
    if batch and price.batch_discount is not None:
        total *= price.batch_discount
    return total


# Providers whose model names are the operator's deployment names: without a configured price
# an answer is priced by the model it says served it, at the list price of this provider.
_PRICED_BY_ANSWER = {"azure": "openai"}


def price_of(deployment: Deployment, served: str | None = None) -> ModelPrice | None:
    """The deployment's configured price, else the price table's; warns once when unknown.

    An Azure deployment is named by its operator (``azure/my-4o``), so without a configured
    price (``base_model``, ``*_cost_per_token``) its answers are priced by ``served``, the
    answer's ``model`` (``gpt-4o-2024-08-06``): the table's ``azure/`` row for it if one is
    registered, else OpenAI's list price (a dated name falls back to the undated row, as
    every lookup does). Before the answer (``served`` None) such a deployment has no price
    yet, and no warning is given."""
    if isinstance(deployment.price, ModelPrice):
        return deployment.price
    name = f"{deployment.provider}/{deployment.model}"
    price = lookup_price(name)
    if price is not None:
        return price
    if deployment.provider not in _PRICED_BY_ANSWER:
        _warn_unpriced(name, name, "base_model, or free: true", name)
    elif served is not None:
        price = _served_price(deployment.provider, served)
        if price is None:
            _warn_unpriced(
                f"{name} (answering as model {served!r})" if served else name,
                f"{name}|{served}",
                "or base_model: the price table's model it is billed as",
                f"{deployment.provider}/{served}" if served else name,
            )
    return price


def _served_price(provider: str, served: str) -> ModelPrice | None:
    if not served:
        return None
    return lookup_price(f"{provider}/{served}") or lookup_price(
        f"{_PRICED_BY_ANSWER[provider]}/{served}"
    )


def _warn_unpriced(name: str, key: str, options: str, row: str) -> None:
    """One warning per model and process, saying how to give it a price."""
    if key in _warned:
        return
    _warned.add(key)
    log.warning(
        "no price known for %s: its cost is None. Give it one in the config "
        "(input_cost_per_token / output_cost_per_token, %s) or with "
        "chatgate.register_price(%r, input=..., output=...)",
        name,
        options,
        row,
    )


def response_cost(response: ChatResponse, deployment: Deployment) -> Decimal | None:
    """The cost of an answer from ``deployment``; None without usage or price."""
    if response.usage is None:
        return None
    price = price_of(deployment, response.model)
    return None if price is None else cost_of(response.usage, price)


def completion_cost(response: ChatResponse) -> Decimal | None:
    """The cost of a ChatResponse (from its meta's provider and model), for answers that did
    not come through chatgate's client, e.g. rebuilt from a log."""
    if response.meta.cost is not None:
        return response.meta.cost
    provider = response.meta.provider
    if response.usage is None or not provider:
        return None
    model = response.meta.model or response.model
    price = lookup_price(f"{provider}/{model}")
    if price is None and provider in _PRICED_BY_ANSWER:
        price = _served_price(provider, model)
    return None if price is None else cost_of(response.usage, price)


def upper_bound(
    price: ModelPrice, prompt_tokens: int, max_output_tokens: int, *, cache_writes: bool = True
) -> Decimal:
    """The most a call can cost: every prompt token at the highest (tiered) input price and
    every allowed output token at the highest output price. A prompt may be written to the
    provider's cache, which costs more than plain input (Anthropic: 1.25x for 5 minutes, 2x
    for an hour), so a budget hold counts that rate unless ``cache_writes`` is False."""
    input_price, output_price = price.input, price.output
    writes = (price.cache_write, price.cache_write_1h)
    tier = price.long_context
    if tier is not None and prompt_tokens > tier.above:
        input_price, output_price = tier.input, tier.output
        writes = (tier.cache_write or writes[0], tier.cache_write_1h or writes[1])
    if cache_writes:
        input_price = max([input_price, *(w for w in writes if w is not None)])
    if price.reasoning is not None:
        output_price = max(output_price, price.reasoning)
    return prompt_tokens * input_price + max_output_tokens * output_price


def estimate_cost(
    model: str,
    messages: Sequence[Any],
    max_output_tokens: int | None = None,
    *,
    tools: Sequence[Any] | None = None,
    price: ModelPrice | None = None,
) -> Decimal | None:
    """Before sending: the prompt counted for ``model`` at the input price, plus
    ``max_output_tokens`` (default: the model's max output) at the output price. None when the
    price, or the output limit, is unknown."""
    from chatgate.cost.tokens import count_tokens

    price = price or lookup_price(model)
    if price is None:
        return None
    limit = max_output_tokens if max_output_tokens is not None else price.max_output
    if limit is None:
        return None
    prompt = count_tokens(model, messages, tools).tokens
    return upper_bound(price, prompt, limit, cache_writes=False)


def partial_usage(model: str, messages: Sequence[Any], response: ChatResponse) -> Usage:
    """Usage of a stream cut off early (client disconnect): the provider's own figures when
    it sent any, else the prompt and the text produced so far counted here. Pass
    ``stream.snapshot()`` as ``response``; bill with ``cost_of(partial_usage(...), price)``."""
    if response.usage is not None:
        return response.usage
    from chatgate.cost.tokens import count_tokens

    prompt = count_tokens(model, messages).tokens
    produced = []
    for choice in response.choices:
        message = choice.message
        produced += [message.reasoning_content or "", message.content or ""]
        produced += [c.function.name + c.function.arguments for c in message.tool_calls or ()]
    text = "".join(produced)
    completion = count_tokens(model, text=text).tokens if text else 0
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )
