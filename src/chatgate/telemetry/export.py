"""The export thread of the lean recorder: takes ended spans off the SpanQueue in batches,
encodes them (telemetry/otlp.py) and POSTs them to the collector over OTLP/HTTP protobuf.

It wakes on its schedule, or as soon as a whole batch is waiting. One attempt per batch, over
one kept-alive connection: a batch the collector refused or could not take in
``timeout_s`` is dropped and counted (``on_drop``), and the next batch tries again on a new
connection. The request path never waits on any of it.

Where the collector is comes from ``general_settings.otel`` first, then the standard
variables, as the SDK's exporter reads them: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as
is) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` appended), ``..._HEADERS``,
``..._COMPRESSION`` (gzip), ``..._CERTIFICATE`` / ``..._CLIENT_CERTIFICATE`` /
``..._CLIENT_KEY`` (each the ``TRACES_`` one first).
"""

from __future__ import annotations

import gzip
import http.client
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from chatgate.telemetry import otlp
from chatgate.telemetry.recorder import SpanQueue

__all__ = ["Exporter", "HttpTarget"]

log = logging.getLogger("chatgate.telemetry")

_DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"


def _env(env: Mapping[str, str], name: str) -> str | None:
    return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}")


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
    ) -> HttpTarget:
        if endpoint:
            url = f"{endpoint.rstrip('/')}/v1/traces"
        elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            url = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            url = f"{env['OTEL_EXPORTER_OTLP_ENDPOINT'].rstrip('/')}/v1/traces"
        else:
            url = _DEFAULT_ENDPOINT
        return cls(
            url=url,
            headers=dict(headers) if headers else _parse_headers(_env(env, "HEADERS") or ""),
            timeout_s=timeout_s,
            gzip=(_env(env, "COMPRESSION") or "").strip().lower() == "gzip",
            ca_file=_env(env, "CERTIFICATE"),
            client_cert=_env(env, "CLIENT_CERTIFICATE"),
            client_key=_env(env, "CLIENT_KEY"),
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


class Exporter:
    """Drains ``queue`` on a thread of its own until ``shutdown``."""

    def __init__(
        self,
        queue: SpanQueue,
        target: HttpTarget,
        resource: Mapping[str, Any],
        on_drop: Callable[[int], None],
        *,
        schedule_s: float = 1.0,
        batch_size: int = 512,
    ) -> None:
        self._queue = queue
        self._target = target
        target.connect()[0].close()  # a malformed endpoint fails start-up, not every export
        self._resource = otlp.encode_resource(resource)
        self._on_drop = on_drop
        self._schedule_s = schedule_s
        self._batch_size = batch_size
        self._connection: http.client.HTTPConnection | None = None
        self._path = "/"
        self._headers = {
            **target.headers,
            "content-type": "application/x-protobuf",
            "user-agent": "chatgate-otlp",
        }
        if target.gzip:
            self._headers["content-encoding"] = "gzip"
        self._stopping = False
        self._drains = 0  # whole drains done: force_flush waits for one begun after its call
        self._flushed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="chatgate-otlp-spans", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._queue.wake.wait(self._schedule_s)
            self._queue.wake.clear()
            self._drain()
        self._drain()
        self._close()

    def _drain(self) -> None:
        while len(self._queue):
            self._send(self._queue.take(self._batch_size))
        with self._flushed:
            self._drains += 1
            self._flushed.notify_all()

    def _send(self, spans: list[Any]) -> None:
        body = otlp.encode_request(self._resource, spans)
        if self._target.gzip:
            body = gzip.compress(body, compresslevel=6)
        try:
            status = self._post(body)
        except (OSError, http.client.HTTPException) as exc:
            log.debug("span export failed: %s", type(exc).__name__)
            self._close()
            status = 0
        if not 200 <= status < 300:
            self._on_drop(len(spans))

    def _post(self, body: bytes) -> int:
        if self._connection is None:
            self._connection, self._path = self._target.connect()
        self._connection.request("POST", self._path, body, self._headers)
        response = self._connection.getresponse()
        response.read()  # the connection is kept for the next batch only once it is read
        if response.will_close:
            self._close()
        return response.status

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def force_flush(self, timeout_ms: int) -> bool:
        """Wait (at most ``timeout_ms``) until what is queued now has been sent or dropped."""
        deadline = time.monotonic() + timeout_ms / 1000
        with self._flushed:
            # The drain under way may have taken its batch before our call: wait for the next.
            wanted = self._drains + 2
            while self._drains < wanted and self._thread.is_alive():
                self._queue.wake.set()
                left = deadline - time.monotonic()
                if left <= 0 or not self._flushed.wait(left):
                    return False
        return True

    def shutdown(self, timeout_ms: int) -> None:
        """Send what is queued (bounded in time) and stop the thread."""
        self._stopping = True
        self._queue.wake.set()
        self._thread.join(timeout_ms / 1000)
