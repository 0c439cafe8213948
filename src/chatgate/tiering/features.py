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

# Word sets and a few C-speed regular expressions rather than a parser: they only need to say
# "looks like code / maths / a multi-part task", not understand it. Python's re walks a long
# alternation of \b-bounded words slowly (200 µs on a page); one word split and set lookups
# do the same in a pass.
_WORD = re.compile(r"[a-z][a-z0-9+#]*")
_CODE = re.compile(
    r"```|^\s*(?:def|class|import|from|return|function|const|let|var|public|private|#include)\b"
    r"|[{};]\s*$|=>|\(\)\s*[:{]|>>>",
    re.MULTILINE,
)
_MATH = re.compile(r"\\(?:frac|sum|int|sqrt|begin)|\$[^$\n]+\$|\d\s*[-+*/^=<>]\s*\d")
_LIST = re.compile(r"^\s*(?:\d+[.)]|[-*•]|step \d+)\s", re.MULTILINE)
_CODE_WORDS = frozenset(
    [
        "code",
        "coding",
        "function",
        "functions",
        "method",
        "implement",
        "implementation",
        "implementing",
        "algorithm",
        "algorithms",
        "python",
        "javascript",
        "typescript",
        "java",
        "rust",
        "golang",
        "c++",
        "sql",
        "query",
        "queries",
        "regex",
        "compile",
        "compiler",
        "refactor",
        "debug",
        "bug",
        "bugs",
        "stacktrace",
        "traceback",
        "exception",
        "unittest",
        "api",
        "rest",
        "graphql",
        "crud",
        "endpoint",
        "class",
        "classes",
        "inheritance",
        "interface",
        "recursion",
        "recursive",
        "complexity",
        "sort",
        "sorting",
        "linked",
        "tree",
        "hashmap",
        "array",
        "script",
        "parser",
        "database",
        "schema",
        "flask",
        "django",
        "react",
        "docker",
        "async",
        "thread",
        "threads",
        "threading",
        "lambda",
        "dockerfile",
        "kubernetes",
        "pipeline",
    ]
)
_MATH_WORDS = frozenset(
    [
        "prove",
        "proof",
        "theorem",
        "lemma",
        "integral",
        "derivative",
        "equation",
        "equations",
        "matrix",
        "eigenvalue",
        "eigenvalues",
        "probability",
        "polynomial",
        "optimize",
        "optimise",
        "solve",
        "induction",
        "generalize",
        "generalise",
    ]
)
_STEP_WORDS = frozenset(("then", "finally"))
_STEP_PHRASES = ("step by step", "step-by-step", "after that", "show your work", "show all work")
_ASK_WORDS = frozenset(
    [
        "write",
        "explain",
        "compare",
        "analyze",
        "analyse",
        "design",
        "evaluate",
        "summarize",
        "summarise",
        "translate",
        "plan",
        "derive",
        "critique",
        "review",
        "architect",
        "optimize",
        "optimise",
        "justify",
        "argue",
    ]
)
_READ = 4000  # characters read for the counts; a longer prompt scores on its length as well


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
    head = text[:_READ]
    lower = head.lower()
    code_words = maths = steps = asks = 0
    for word in _WORD.findall(lower):
        code_words += word in _CODE_WORDS
        maths += word in _MATH_WORDS
        steps += word in _STEP_WORDS
        asks += word in _ASK_WORDS
    return Features(
        length=max(0.0, math.log2(max(len(text), 1)) - 5.0),
        code=len(_CODE.findall(head)),
        code_words=code_words,
        math=maths + len(_MATH.findall(head)),
        steps=steps + len(_LIST.findall(head)) + sum(p in lower for p in _STEP_PHRASES),
        asks=asks,
        questions=head.count("?"),
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
