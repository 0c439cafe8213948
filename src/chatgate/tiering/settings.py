"""The config shape of a tiered model (``router_settings.tiers``; see docs/routing.md):

router_settings:
  tiers:
    - model_name: auto                     # the name clients ask for
      tiers: [cheap, standard, premium]    # model_list names, cheapest first
      classifier: {thresholds: [0.35, 0.7], examples_file: my-traffic.jsonl}
      escalate_on: [length, invalid_json, empty, error]
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["TierClassifierSettings", "TierExample", "TieredModelSettings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TierExample(_Strict):
    text: str = Field(min_length=1)
    tier: str = Field(min_length=1)  # one of the model's tiers: the cheapest that suffices


class TierClassifierSettings(_Strict):
    # One cut point per tier boundary, ascending in (0, 1): a score at or above the i-th
    # sends the request past tier i. None: spread from 0.2 to 0.45 (two tiers: 0.35).
    thresholds: list[float] | None = None
    examples: list[TierExample] = Field(default_factory=list)
    examples_file: str | None = None  # JSON lines: {"prompt" (or "text"): ..., "tier": ...}
    builtin_examples: bool = True  # the starting set shipped in chatgate/tiering/examples.jsonl
    k: int = Field(default=7, ge=1, le=100)
    # auto: embed (MiniLM) only when the request's features leave the score within
    # ``unsure_margin`` of a threshold; always; never (features only, no model loaded)
    embeddings: Literal["auto", "always", "never"] = "auto"
    unsure_margin: float = Field(default=0.04, ge=0, le=1)
    knn_weight: float = Field(default=0.6, ge=0, le=1)  # the vote's share of the blended score


class TieredModelSettings(_Strict):
    model_name: str = Field(min_length=1)
    tiers: list[str] = Field(min_length=2)
    classifier: TierClassifierSettings = Field(default_factory=TierClassifierSettings)
    # retry on the next tier when a cheaper one's answer stopped at max tokens ("length"),
    # its structured output did not parse or match the schema ("invalid_json"), it was empty
    # or refused ("empty"), or the tier failed: outage, 5xx, rate limit ("error"). A stream
    # only until the caller has seen any of its answer (docs/routing.md).
    escalate_on: list[Literal["length", "invalid_json", "empty", "error"]] = Field(
        default_factory=list
    )
    session_ttl_s: float = Field(default=3600.0, gt=0)  # a session's tier is kept this long
    max_sessions: int = Field(default=10_000, gt=0)  # least recently seen ones forgotten past it

    @model_validator(mode="after")
    def _consistent(self) -> TieredModelSettings:
        if len(set(self.tiers)) != len(self.tiers):
            raise ValueError(f"tiers of {self.model_name!r} name a model twice: {self.tiers}")
        cuts = self.classifier.thresholds
        if cuts is not None:
            if len(cuts) != len(self.tiers) - 1:
                raise ValueError(
                    f"classifier.thresholds: give {len(self.tiers) - 1} (one per boundary "
                    f"between the {len(self.tiers)} tiers), got {len(cuts)}"
                )
            if any(not 0 < c < 1 for c in cuts) or cuts != sorted(cuts):
                raise ValueError("classifier.thresholds: ascending numbers between 0 and 1")
        unknown = sorted({e.tier for e in self.classifier.examples} - set(self.tiers))
        if unknown:
            raise ValueError(
                f"classifier.examples name tiers {unknown} that are not in tiers {self.tiers}"
            )
        return self
