"""OTLP/HTTP to a collector: where it is (``HttpTarget``, from ``general_settings.otel`` first,
then the standard variables, as the SDK's exporters read them: ``OTEL_EXPORTER_OTLP_{TRACES,
METRICS}_ENDPOINT`` used as is, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``/v1/traces`` or
``/v1/metrics`` appended; ``..._HEADERS``, ``..._COMPRESSION`` (gzip), ``..._CERTIFICATE`` /
``..._CLIENT_CERTIFICATE`` / ``..._CLIENT_KEY``, each the signal's own first), and a
``Poster`` that sends protobuf bodies there: one attempt per body, over a kept-alive
connection.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = ["HttpTarget", "Poster"]

log = logging.getLogger("chatgate.telemetry")

_DEFAULT_BASE = "http://localhost:4318"


def _env(env: Mapping[str, str], signal: str, name: str) -> str | None:
    own = f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name}"
    return env.get(own) or env.get(f"OTEL_EXPORTER_OTLP_{name}")


def _parse_headers(text: str) -> dict[str, str]:
    """The variables' ``key=value,key2=value2`` (URL-encoded values)."""
    headers = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


@dataclass(frozen=True)
class HttpTarget:
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = 10.0
    gzip: bool = False
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    @classmethod
    def resolve(
        cls,
        endpoint: str | None,
        headers: Mapping[str, str],
        timeout_s: float,
        env: Mapping[str, str],
        signal: str = "traces",
    ) -> HttpTarget:
        """``signal``: "traces" or "metrics", the path and the variables' infix."""
        own = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        if endpoint:
            url = f"{endpoint.rstrip('/')}/v1/{signal}"
        elif own:
            url = own
        else:
            base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or _DEFAULT_BASE
            url = f"{base.rstrip('/')}/v1/{signal}"
        return cls(
            url=url,
            headers=dict(headers)
            if headers
            else _parse_headers(_env(env, signal, "HEADERS") or ""),
            timeout_s=timeout_s,
            gzip=(_env(env, signal, "COMPRESSION") or "").strip().lower() == "gzip",
            ca_file=_env(env, signal, "CERTIFICATE"),
            client_cert=_env(env, signal, "CLIENT_CERTIFICATE"),
            client_key=_env(env, signal, "CLIENT_KEY"),
        )

    def connect(self) -> tuple[http.client.HTTPConnection, str]:
        """A connection to the collector, and the path to POST to."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"OTLP endpoint {self.url!r}: an http:// or https:// URL is needed")
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        if parts.scheme == "http":
            return http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=self.timeout_s
            ), path
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=self.timeout_s, context=context
        )
        return connection, path


class Poster:
    """POSTs protobuf bodies to ``target`` over one kept-alive connection (a new one after a
    failure); only the thread that owns it calls it."""

    def __init__(self, target: HttpTarget) -> None:
        self._target = target
        target.connect()[0].close()  # a malformed endpoint fails start-up, not every export
        self._connection: http.client.HTTPConnection | None = None
        self._path = "/"
        self._headers = {
            **target.headers,
            "content-type": "application/x-protobuf",
            "user-agent": "chatgate-otlp",
        }
        if target.gzip:
            self._headers["content-encoding"] = "gzip"

    def post(self, body: bytes) -> bool:
        """True when the collector took it (2xx)."""
        if self._target.gzip:
            body = gzip.compress(body, compresslevel=6)
        try:
            if self._connection is None:
                self._connection, self._path = self._target.connect()
            self._connection.request("POST", self._path, body, self._headers)
            response = self._connection.getresponse()
            response.read()  # the connection is kept for the next body only once it is read
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            log.debug("OTLP export failed: %s", type(exc).__name__)
            self.close()
            return False
        return 200 <= response.status < 300

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
