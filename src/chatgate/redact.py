"""Scrubbing secrets out of error text: the one place it is done.

An upstream may echo the credential it was sent (a 401 body quoting the key, a request-id
header holding it, a proxy's error page printing the Authorization header). Every such text
enters chatgate as a ``ChatgateError`` raised by a provider's error mapper, stream translator
or the transport, and leaves chatgate only through that exception: a library caller's
``except``, the gateway's error JSON and SSE error events (built from ``exc.message`` and
``exc.body``), log lines (``%s`` of the exception) and the spend log (the class name only).
So it is scrubbed once, where it crosses from the provider layer into the core and the
deployment's credentials are known: ``client.attributed`` (a refused request, stream or
embedding), ``ChatStream._attach`` (an error mid-stream) and ``count_tokens(use_api=True)``
(the one call that sends its own request) all end in ``scrub_error``. Nothing downstream
ever holds the raw text, and nothing downstream scrubs again. ``RedactingFilter`` is the
second line for log records, in case a future log call formats something else.

What is removed: every literal credential of the deployment (``credentials``), and anything
shaped like a well-known key (``KEY_SHAPES``), whoever's it is. It runs on error paths only;
an answer that succeeds pays nothing.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

__all__ = [
    "KEY_SHAPES",
    "LOGGERS",
    "MASK",
    "RedactingFilter",
    "Redactor",
    "credentials",
    "install_log_filter",
    "scrub_error",
]

MASK = "***"

# Shapes of keys and tokens that are secret whoever owns them. Deliberately specific: a shape
# that also matches ordinary text would eat error messages people need.
KEY_SHAPES = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{16,}"  # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), chatgate (sk-cg-)
    r"|\bAIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bya29\.[0-9A-Za-z_\-.]{16,}"  # Google OAuth access tokens (Vertex)
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"  # JWTs (Entra ID)
    r"|\b(?:gsk|hf|xai|pplx|r8)[_-][A-Za-z0-9]{20,}"  # Groq, HF, xAI, Perplexity, Replicate
    r"|(?<=[Bb]earer )[A-Za-z0-9._~+/=\-]{8,}"  # whatever follows "Bearer "
)
# A secret shorter than this is not scrubbed by value: replacing "abc" everywhere would
# mangle messages, and no real credential is that short.
_MIN_SECRET = 8
# How much of a secret's beginning, left at the very end of a text that was cut to a length
# before it got here, still counts as the secret.
_MIN_TAIL = 4
_AUTH_HEADER = re.compile(r"auth|key|token|secret|cookie|signature|credential", re.IGNORECASE)
_SECRET_OPTIONS = ("azure_ad_token", "aws_secret_access_key", "aws_session_token", "api_key")


class _Credentialed(Protocol):
    """What ``credentials`` reads: a providers.base.Deployment (typed loosely: this module sits
    below the providers)."""

    @property
    def api_key(self) -> str | None: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def options(self) -> Mapping[str, Any]: ...


def credentials(deployment: _Credentialed) -> tuple[str, ...]:
    """Every secret a (prepared) deployment sends upstream: the API key (a Vertex access token
    is one), the value of each header that looks like auth, the Azure Entra ID token, AWS
    secret and session token (given as options, or resolved into ``credentials``)."""
    found: list[str] = [deployment.api_key or ""]
    for name, value in deployment.headers.items():
        if _AUTH_HEADER.search(name):
            found += [value, value.partition(" ")[2]]  # "Bearer x": x alone may be echoed
    options = deployment.options
    found += [str(options.get(name) or "") for name in _SECRET_OPTIONS]
    resolved = options.get("credentials")  # botocore ReadOnlyCredentials, after prepare
    found += [str(getattr(resolved, name, None) or "") for name in ("secret_key", "token")]
    return tuple(s for s in dict.fromkeys(found) if len(s) >= _MIN_SECRET)


class Redactor:
    """Replaces the given secrets and every ``KEY_SHAPES`` match with ``MASK``. With
    ``cut_tails``, also a secret's beginning left at the very end of a text (error messages
    are cut to a maximum length before they get here; log lines are not)."""

    __slots__ = ("_cut_tails", "_literal", "_secrets")

    def __init__(self, secrets: Iterable[str] = (), *, cut_tails: bool = True) -> None:
        # Longest first: a secret that contains another is replaced whole.
        unique = {s for s in secrets if len(s) >= _MIN_SECRET}
        self._secrets = sorted(unique, key=len, reverse=True)
        # One pass for all of them (a gateway's log filter may know hundreds); re caches it.
        joined = "|".join(re.escape(s) for s in self._secrets)
        self._literal = re.compile(joined) if joined else None
        self._cut_tails = cut_tails

    def text(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
            if self._cut_tails:
                # "Bearer x": x is a secret of its own; "Bear" at the end of a text is not.
                for secret in (s for s in self._secrets if " " not in s):
                    text = _cut_tail(text, secret)
        return KEY_SHAPES.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A JSON-like value (an error body) with every string in it scrubbed, keys too."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes | bytearray):
            return self.text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if type(value) in (list, tuple):
            return type(value)(self.value(v) for v in value)
        if isinstance(value, tuple) and hasattr(value, "_make"):  # a namedtuple
            return value._make(self.value(v) for v in value)
        return value

    def error(self, exc: BaseException) -> None:
        """Scrub an exception in place: its args, every attribute, and the exceptions it was
        raised from or during."""
        seen: set[int] = set()
        todo: list[BaseException | None] = [exc]
        while todo:
            current = todo.pop()
            if current is None or id(current) in seen:
                continue
            seen.add(id(current))
            self._one(current)
            todo += [current.__cause__, current.__context__]

    def _one(self, exc: BaseException) -> None:
        args = self.value(exc.args)
        if args != exc.args:
            with contextlib.suppress(AttributeError, TypeError):  # read-only args (C types)
                exc.args = args
        for name, value in list(getattr(exc, "__dict__", {}).items()):
            # Only what changed is replaced: a foreign exception keeps its attributes' types.
            if isinstance(value, str | bytes | bytearray | Mapping | list | tuple):
                scrubbed = self.value(value)
                if scrubbed != value:
                    setattr(exc, name, scrubbed)


def _cut_tail(text: str, secret: str) -> str:
    """A text cut to a maximum length may end in the first characters of a secret."""
    # Only where the secret's first character appears in the last len(secret) characters:
    # usually nowhere or once, so this costs a find or two, not a comparison per length.
    at = text.find(secret[0], max(0, len(text) - len(secret) + 1))
    while at != -1 and len(text) - at >= _MIN_TAIL:
        if secret.startswith(text[at:]):
            return text[:at] + MASK
        at = text.find(secret[0], at + 1)
    return text


def scrub_error(exc: BaseException, deployment: _Credentialed | None = None) -> None:
    """Remove the deployment's credentials and every key-shaped string from ``exc``."""
    Redactor(credentials(deployment) if deployment is not None else ()).error(exc)


class RedactingFilter(logging.Filter):
    """Scrubs each record's message (its format and arguments, rendered once) before any
    handler sees it. Errors reach log lines already scrubbed; this catches what is not an
    error: a future ``log.warning("... %s", something_from_upstream)``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._redactor = Redactor(secrets, cut_tails=False)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format: logging reports it when it emits
            return True
        scrubbed = self._redactor.text(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info is not None and record.exc_info[1] is not None:
            self._redactor.error(record.exc_info[1])
            record.exc_text = None  # formatted again, from the scrubbed exception
        return True


# Every logger chatgate writes to, but the access log: its lines are built from fields the
# gateway owns (ids, numbers, class names), never from upstream text, and a filter there would
# cost every request (it bypasses LogRecord when no filter is attached: server/access_log.py).
# A logger's filter applies to its own records only, not its children's, hence the list;
# tests/faults/test_secrets_library.py checks it names every logger in the source.
LOGGERS = (
    "chatgate",
    "chatgate.batch",
    "chatgate.budget",
    "chatgate.cache",
    "chatgate.cost",
    "chatgate.router",
    "chatgate.server",
    "chatgate.spend",
    "chatgate.telemetry",
    "chatgate.tiering",
)


def install_log_filter(secrets: Iterable[str] = ()) -> RedactingFilter:
    """Attach a RedactingFilter to every chatgate logger (once: a second call replaces it)."""
    new = RedactingFilter(secrets)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
            logger.removeFilter(old)
        logger.addFilter(new)
    return new


# Installed on import (chatgate.client imports this module): chatgate's loggers never write a
# key-shaped string, however the application configured logging.
install_log_filter()
