"""Tags as budgets see them: a tag budget's subject, and the tags a call is charged to.

Tags are the caller's own words (the gateway's ``x-chatgate-tags``, the Router's
``spend_tags=``), so they are bounded in count and length, and only a configured tag budget
(one tag, named) ever creates a counter: 10,000 distinct tags create none.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatgate.errors import InvalidRequestError

__all__ = ["MAX_TAGS", "MAX_TAG_CHARS", "check_tag_subject", "spend_tags"]

MAX_TAGS = 16  # also what the gateway keeps of x-chatgate-tags (server/context.py)
MAX_TAG_CHARS = 64


def check_tag_subject(subject: str) -> None:
    """A tag budget's subject: one tag, as a client can send it."""
    if subject == "*" or not subject or subject != subject.strip():
        raise InvalidRequestError(
            f"a tag budget names its tag (subject: feature-x), not {subject!r}: '*' would give "
            "every tag a client invents a budget of its own",
            param="subject",
        )
    if len(subject) > MAX_TAG_CHARS or "," in subject:
        raise InvalidRequestError(
            f"a tag is at most {MAX_TAG_CHARS} characters, without commas: a budget on "
            f"{subject[:80]!r} could never apply",
            param="subject",
        )


def spend_tags(value: object) -> tuple[str, ...]:
    """A Router call's ``spend_tags=``: at most 16 non-empty strings of at most 64 characters
    (refused rather than cut, unlike the gateway's header: a library caller can fix its call)."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidRequestError(
            f"spend_tags takes a list of tags like ['feature-x'], not {type(value).__name__}",
            param="spend_tags",
        )
    if len(value) > MAX_TAGS:
        raise InvalidRequestError(
            f"spend_tags holds at most {MAX_TAGS} tags, got {len(value)}", param="spend_tags"
        )
    for tag in value:
        if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_CHARS:
            raise InvalidRequestError(
                f"each of spend_tags is a string of 1 to {MAX_TAG_CHARS} characters, "
                f"got {str(tag)[:80]!r}",
                param="spend_tags",
            )
    return tuple(value)
