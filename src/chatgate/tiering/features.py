"""The cheap half of the tier classifier: what a request looks like, in microseconds.

``Prompt`` is the part of a request the classifier reads (the last user turn's text, how deep
the conversation is, tools, a JSON schema); ``feature_score`` maps it to a complexity score in
[0, 1] (0: a greeting, 1: a multi-step coding or maths task) with a logistic over a handful of
hand-set weights. The weights are data-free on purpose: they are the prior that the
nearest-neighbour vote over labelled examples (knn.py) corrects where it is unsure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from chatgate.types import ChatRequest

__all__ = ["Features", "Prompt", "extract", "feature_score", "prompt_of"]

# Regular expressions rather than a parser: they run in a few microseconds on a prompt and
# only need to say "looks like code / maths", not understand it.
_CODE = re.compile(
    r"```|^\s*(def|class|import|from|return|function|const|let|var|public|private|#include)\b"
    r"|[{};]\s*$|=>|\(\)\s*[:{]|>>>",
    re.MULTILINE,
)
_CODE_WORDS = re.compile(
    r"\b(code|coding|function|method|implement\w*|algorithm|python|javascript|typescript|java|"
    r"rust|golang|c\+\+|sql|query|regex|compile\w*|refactor|debug|bug|stack ?trace|traceback|"
    r"exception|unit tests?|api|rest|graphql|crud|endpoint|class|inheritance|interface|"
    r"recursi\w+|complexity|big-?o|sort\w*|linked list|binary tree|hash ?map|array|"
    r"script|parser|database|schema|flask|django|react|docker|async|thread\w*)\b",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\\(frac|sum|int|sqrt|begin)|\$[^$]+\$|\b\d+\s*[-+*/^=<>]\s*\d+|\b(prove|proof|theorem|"
    r"lemma|integral|derivative|equation|matrix|eigen\w*|probability|polynomial|optimi[sz]e|"
    r"solve|induction|generali[sz]e)\b",
    re.IGNORECASE,
)
_STEPS = re.compile(
    r"^\s*(\d+[.)]|[-*•]|step \d+)\s+|\bstep[- ]by[- ]step\b|\b(then|finally|after that)\b"
    r"|\bshow (all )?(your )?work\b",
    re.IGNORECASE | re.MULTILINE,
)
_ASKS = re.compile(
    r"\b(write|explain|compare|analy[sz]e|design|evaluate|summari[sz]e|translate|plan|"
    r"derive|critique|review|architect|optimi[sz]e|justify|argue)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str  # the last user turn
    turns: int = 1  # user turns so far, this one included
    tools: int = 0  # tool definitions sent with the request
    structured: bool = False  # a json_schema response format


@dataclass(frozen=True, slots=True)
class Features:
    length: float  # log2 of the characters, 0 at 32 and below
    code: int  # code-looking lines and fences
    code_words: int
    math: int
    steps: int  # numbered or bulleted lines, "first ... then"
    asks: int  # demanding verbs: write, analyse, design ...
    questions: int
    turns: int
    tools: int
    structured: bool


def prompt_of(request: ChatRequest) -> Prompt:
    """The classifier's view of a request (only text parts of user turns are read)."""
    text = ""
    turns = 0
    for message in request.messages:
        if message.role != "user":
            continue
        turns += 1
        content = message.content
        if isinstance(content, str):
            text = content
        else:
            text = "\n".join(p.text for p in content if p.type == "text")
    fmt = request.response_format
    return Prompt(
        text=text,
        turns=max(turns, 1),
        tools=len(request.tools or ()),
        structured=fmt is not None and fmt.type == "json_schema",
    )


def extract(prompt: Prompt) -> Features:
    text = prompt.text
    return Features(
        length=max(0.0, math.log2(max(len(text), 1)) - 5.0),
        code=len(_CODE.findall(text)),
        code_words=len(_CODE_WORDS.findall(text)),
        math=len(_MATH.findall(text)),
        steps=len(_STEPS.findall(text)),
        asks=len(_ASKS.findall(text)),
        questions=text.count("?"),
        turns=prompt.turns,
        tools=prompt.tools,
        structured=prompt.structured,
    )


# Weights on saturated counts, set by hand on the built-in examples (never on the evaluation
# set): a short chat line scores ~0.1, a one-line coding ask ~0.45, a page of code ~0.95.
_BIAS = -2.6


def feature_score(f: Features) -> float:
    z = (
        _BIAS
        + 0.45 * f.length
        + 0.9 * min(f.code, 4)
        + 0.6 * min(f.code_words, 3)
        + 0.6 * min(f.math, 3)
        + 0.4 * min(f.steps, 4)
        + 0.55 * min(f.asks, 3)
        + 0.15 * min(max(f.questions - 1, 0), 3)
        + 0.2 * min(f.turns - 1, 5)
        + 0.5 * min(f.tools, 2)
        + 0.6 * f.structured
    )
    return 1.0 / (1.0 + math.exp(-z))
