"""tiktoken encodings built from files shipped inside chatgate: nothing is ever downloaded.

tiktoken fetches its BPE files from the network on first use and caches them in a temp
directory. chatgate carries ``cl100k_base`` and ``o200k_base`` (gzip) as package data, checks
each against the SHA-256 tiktoken itself expects, and builds ``tiktoken.Encoding`` objects
from them directly, so token counting works on a machine with no network at all.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from importlib import resources

try:
    import tiktoken
    import tiktoken.model
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError("token counting needs tiktoken: pip install 'chatgate[cost]'") from exc

__all__ = ["ENCODINGS", "encoding_for_model", "get_encoding"]

# name -> (file under chatgate/cost/encodings, sha256 of the uncompressed file as tiktoken pins it)
_FILES = {
    "cl100k_base": (
        "cl100k_base.tiktoken.gz",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "o200k_base.tiktoken.gz",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# The split patterns and special tokens of tiktoken_ext.openai_public (tiktoken 0.14).
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECIAL = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}
_HARMONY_SPECIAL = {
    "<|startoftext|>": 199998,
    "<|return|>": 200002,
    "<|constrain|>": 200003,
    "<|channel|>": 200005,
    "<|start|>": 200006,
    "<|end|>": 200007,
    "<|message|>": 200008,
    "<|call|>": 200012,
}

ENCODINGS = ("cl100k_base", "o200k_base", "o200k_harmony")


def _ranks(name: str) -> dict[bytes, int]:
    filename, expected = _FILES[name]
    packed = resources.files("chatgate.cost").joinpath(f"encodings/{filename}").read_bytes()
    data = gzip.decompress(packed)
    if hashlib.sha256(data).hexdigest() != expected:
        raise RuntimeError(
            f"chatgate's bundled {filename} is damaged (checksum mismatch); reinstall chatgate"
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """One of ENCODINGS, built once per process from the bundled files."""
    if name == "o200k_harmony":
        base = get_encoding("o200k_base")
        return tiktoken.Encoding(
            name=name,
            pat_str=_O200K_PAT,
            mergeable_ranks=base._mergeable_ranks,
            special_tokens={**_SPECIAL["o200k_base"], **_HARMONY_SPECIAL},
        )
    if name not in _FILES:
        raise ValueError(f"unknown encoding {name!r}; chatgate ships {', '.join(ENCODINGS)}")
    pattern = _O200K_PAT if name == "o200k_base" else _CL100K_PAT
    return tiktoken.Encoding(
        name=name, pat_str=pattern, mergeable_ranks=_ranks(name), special_tokens=_SPECIAL[name]
    )


@functools.cache
def encoding_for_model(model: str) -> tuple[str, bool]:
    """(encoding name, known): the encoding OpenAI uses for ``model``. Unknown names get
    o200k_base, the encoding of every OpenAI model since gpt-4o, with known=False."""
    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return "o200k_base", False
    if name not in ENCODINGS:  # pre-2023 completion models (p50k/r50k): not chat models
        return "cl100k_base", False
    return name, True
