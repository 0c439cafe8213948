"""The tags a gateway request carries, from its three sources: its virtual key's (set by an
operator), then its own (``x-chatgate-tags``, then the body's ``metadata.tags``).

The key's come first, so that no tags a client sends can push them past ``MAX_TAGS`` and out
of a tag budget; they only count (budgets, the spend log, the access log, the Overview), while
the request's own tags also pick deployments (``RequestContext.tags``).
"""

from __future__ import annotations

from chatgate.cost.budget_tags import MAX_TAGS
from chatgate.server.keys import KeyRecord

__all__ = ["TAGS_COLUMN_CHARS", "charged", "fitting", "merge_tags", "row_tags"]

TAGS_COLUMN_CHARS = 512  # spend_log.tags (store/schema/spend.py)


def merge_tags(*sources: tuple[str, ...]) -> tuple[str, ...]:
    """Each tag once, in the order of ``sources``; the first MAX_TAGS are kept."""
    return tuple(dict.fromkeys(t for tags in sources for t in tags))[:MAX_TAGS]


def charged(key: KeyRecord | None, own: tuple[str, ...]) -> tuple[str, ...]:
    """What a request with ``own`` tags, made with ``key``, is charged to."""
    return own if key is None or not key.tags else merge_tags(key.tags, own)


def row_tags(key: KeyRecord | None, own: tuple[str, ...]) -> tuple[str, ...]:
    """``charged`` as the spend-log row keeps them (``fitting``); one call for the usual
    request, which has none."""
    if key is None or not key.tags:
        return own if len(own) < 8 else fitting(own)
    return fitting(merge_tags(key.tags, own))


def fitting(tags: tuple[str, ...]) -> tuple[str, ...]:
    """The first tags whose comma-joined text fits the spend log's column: 16 tags of 64
    characters do not, and a row too long for PostgreSQL would hold back its whole batch."""
    if len(tags) < 8 or sum(map(len, tags)) + len(tags) - 1 <= TAGS_COLUMN_CHARS:
        return tags  # 7 tags of 64 characters always fit
    kept: list[str] = []
    used = -1
    for tag in tags:
        used += len(tag) + 1
        if used > TAGS_COLUMN_CHARS:
            break
        kept.append(tag)
    return tuple(kept)
