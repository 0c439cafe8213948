"""Compare chatgate's price table with a LiteLLM model_prices_and_context_window.json.

    python scripts/check_prices.py path/to/model_prices_and_context_window.json

Prints every row whose input, output, cache read or cache write (5-minute, 1-hour) price
differs (per million tokens), and rows LiteLLM does not have. Use it when updating
src/chatgate/cost/data/prices.json; a difference is a question to settle against the
provider's pricing page, not an answer.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

TABLE = Path(__file__).resolve().parents[1] / "src/chatgate/cost/data/prices.json"
FIELDS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cached_input": "cache_read_input_token_cost",
    "cache_write": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
}


def litellm_key(name: str, litellm: dict[str, dict[str, object]]) -> str | None:
    model = name.partition("/")[2]
    for key in (name, model, model.removeprefix("openai/")):
        if key in litellm:
            return key
    return None


def main(path: str) -> int:
    ours = json.loads(TABLE.read_text())["models"]
    theirs = json.loads(Path(path).read_text())
    problems = 0
    for name, row in sorted(ours.items()):
        key = litellm_key(name, theirs)
        if key is None:
            print(f"{name}: not in the LiteLLM file")
            continue
        for field, their_field in FIELDS.items():
            value = theirs[key].get(their_field)
            if field not in row or value is None:
                continue
            their_mtok = (Decimal(repr(value)) * 1_000_000).normalize()
            if Decimal(row[field]).normalize() != their_mtok:
                problems += 1
                print(f"{name}.{field}: ours {row[field]} / M, LiteLLM {their_mtok:f} / M")
    print(f"{problems} price differences")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
