"""`chatgate route-eval DATA.jsonl`: how a tiered model's classifier does on a labelled set.

Each line is ``{"prompt": ..., "tier": ...}`` where ``tier`` is the cheapest tier that
suffices. The report: accuracy, the share of prompts sent to each tier, what they would cost
against sending everything to the premium tier (at the prompt's tokens plus an assumed
answer length), and the prompts sent to a tier below their label. The tiers, classifier and
prices come from ``--config``'s tiered model, or are the built-in classifier over
``--tiers`` priced as ``--models`` from the price table.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from chatgate.cost.calc import cost_of
from chatgate.cost.prices import ModelPrice, lookup_price
from chatgate.errors import InvalidRequestError
from chatgate.tiering.classifier import TierClassifier
from chatgate.tiering.features import Prompt
from chatgate.types import Usage

__all__ = ["EvalReport", "add_parser", "evaluate", "run"]

DEFAULT_TIERS = "cheap,standard,premium"
DEFAULT_MODELS = "openai/gpt-4o-mini,openai/gpt-4.1-mini,openai/gpt-4o"


@dataclass(slots=True)
class EvalReport:
    tiers: list[str]
    total: int = 0
    correct: int = 0
    sent: dict[str, int] = field(default_factory=dict)  # predicted tier -> prompts
    labelled: dict[str, int] = field(default_factory=dict)
    too_low: list[tuple[str, str, str]] = field(default_factory=list)  # prompt, label, sent
    cost: Decimal = Decimal(0)
    premium_cost: Decimal = Decimal(0)
    micros: list[float] = field(default_factory=list)  # classifier time per prompt

    def share(self, tier: str) -> float:
        return self.sent.get(tier, 0) / max(self.total, 1)

    def premium_sent_lower(self) -> float:
        top = self.tiers[-1]
        low = sum(1 for _, label, _ in self.too_low if label == top)
        return low / max(self.labelled.get(top, 0), 1)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.micros)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "prompts": self.total,
            "accuracy": self.correct / max(self.total, 1),
            "share": {t: self.share(t) for t in self.tiers},
            "labelled": {t: self.labelled.get(t, 0) for t in self.tiers},
            "premium_sent_lower": self.premium_sent_lower(),
            "too_low": len(self.too_low),
            "cost_usd": str(self.cost),
            "premium_only_usd": str(self.premium_cost),
            "saving": float(1 - self.cost / self.premium_cost) if self.premium_cost else None,
            "classifier_us": {"p50": self.percentile(0.5), "p99": self.percentile(0.99)},
        }


def _rows(path: Path, tiers: list[str]) -> list[tuple[str, str]]:
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            prompt, tier = row["prompt"], row["tier"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise InvalidRequestError(
                f"{path}:{number}: want a JSON object with 'prompt' and 'tier'", param="data"
            ) from None
        if tier not in tiers:
            raise InvalidRequestError(
                f"{path}:{number}: tier {tier!r} is not one of {', '.join(tiers)}", param="tier"
            )
        out.append((str(prompt), tier))
    return out


def evaluate(
    rows: list[tuple[str, str]],
    classifier: TierClassifier,
    prices: list[ModelPrice | None],
    output_tokens: int = 300,
) -> EvalReport:
    tiers = classifier.tiers
    report = EvalReport(tiers)
    classifier.warm()
    for prompt, label in rows:
        started = time.perf_counter()
        index = classifier.classify(Prompt(prompt)).tier
        report.micros.append((time.perf_counter() - started) * 1e6)
        sent = tiers[index]
        report.total += 1
        report.correct += sent == label
        report.sent[sent] = report.sent.get(sent, 0) + 1
        report.labelled[label] = report.labelled.get(label, 0) + 1
        if index < tiers.index(label):
            report.too_low.append((prompt, label, sent))
        # ~4 characters a token: the same estimate for every tier, so the ratio is fair
        usage = Usage(prompt_tokens=len(prompt) // 4 + 8, completion_tokens=output_tokens)
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        chosen, premium = prices[index], prices[-1]
        if chosen is not None and premium is not None:
            report.cost += cost_of(usage, chosen)
            report.premium_cost += cost_of(usage, premium)
    return report


def _setup(args: argparse.Namespace) -> tuple[TierClassifier, list[ModelPrice | None]]:
    if args.config:
        from chatgate.cost.calc import price_of
        from chatgate.router import Router

        router = Router.from_config(args.config)
        tiered = router.tiered.get(args.model)
        if tiered is None:
            names = ", ".join(router.tiered) or "none"
            raise InvalidRequestError(
                f"{args.config} has no tiered model {args.model!r} (router_settings.tiers: "
                f"{names}); pass --model",
                param="model",
            )
        prices = [price_of(router.groups[t][0].deployment) for t in tiered.tiers]
        return tiered.classifier, prices
    tiers = args.tiers.split(",")
    models = args.models.split(",")
    if len(models) != len(tiers):
        raise InvalidRequestError(
            f"--models names {len(models)} models for {len(tiers)} tiers: give one per tier",
            param="models",
        )
    return TierClassifier(tiers), [lookup_price(m) for m in models]


def _print(report: EvalReport, show: int) -> None:
    data = report.to_json()
    print(f"prompts: {report.total}   accuracy: {data['accuracy']:.1%}")
    for tier in report.tiers:
        labelled = report.labelled.get(tier, 0)
        print(f"  {tier:<12} sent {report.share(tier):6.1%}   labelled {labelled}")
    print(f"needs-{report.tiers[-1]} sent lower: {report.premium_sent_lower():.1%}")
    saving = data["saving"]
    print(
        f"cost: ${report.cost:.4f} against ${report.premium_cost:.4f} premium-only"
        + (f" ({saving:.1%} saved)" if saving is not None else " (prices unknown)")
    )
    p50, p99 = data["classifier_us"]["p50"], data["classifier_us"]["p99"]
    print(f"classifier: p50 {p50:.0f} µs, p99 {p99:.0f} µs (embedding cache cold)")
    if report.too_low:
        print(f"sent too low ({len(report.too_low)}; first {min(show, len(report.too_low))}):")
        for prompt, label, sent in report.too_low[:show]:
            line = " ".join(prompt.split())[:90]
            print(f"  {label} -> {sent}: {line}")


def run(args: argparse.Namespace) -> int:
    try:
        classifier, prices = _setup(args)
        report = evaluate(_rows(Path(args.data), classifier.tiers), classifier, prices, args.output)
    except (InvalidRequestError, OSError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    if args.json:
        print(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print(report, args.show)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("route-eval", help="measure a tier classifier on a labelled JSONL set")
    p.add_argument("data", help='JSON lines: {"prompt": ..., "tier": <cheapest that suffices>}')
    p.add_argument("--config", help="YAML config holding the tiered model")
    p.add_argument("--model", default="auto", help="the tiered model's name (default: auto)")
    p.add_argument("--tiers", default=DEFAULT_TIERS, help="without --config: cheapest first")
    p.add_argument("--models", default=DEFAULT_MODELS, help="without --config: price per tier")
    p.add_argument("--output", type=int, default=300, help="assumed answer tokens (300)")
    p.add_argument("--show", type=int, default=20, help="prompts sent too low to list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)
