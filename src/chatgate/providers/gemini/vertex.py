"""``vertex_ai/<model>``: Gemini on Google Cloud Vertex AI, through the Gemini adapter.

Same request and response bodies as Google AI Studio; what differs is found here at run
time, so the adapter stays pure:

- the address: ``https://{location}-aiplatform.googleapis.com/v1/projects/{project}/
  locations/{location}`` (``aiplatform.googleapis.com`` for ``global``), from
  ``provider_options={"project": ..., "location": ...}`` or ``VERTEXAI_PROJECT`` /
  ``VERTEXAI_LOCATION`` (``GOOGLE_CLOUD_PROJECT`` also works; the location defaults to
  ``us-central1``), unless ``api_base`` is given;
- the credential: an OAuth access token sent as ``Authorization: Bearer``: ``api_key=`` (or
  ``VERTEXAI_ACCESS_TOKEN``), else Application Default Credentials through google-auth when
  it is installed (refreshed before they expire, in a worker thread: it does network I/O).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import replace
from typing import Any

from chatgate.errors import InvalidRequestError, MissingAPIKeyError
from chatgate.providers.base import Deployment

__all__ = ["prepare", "vertex_base"]

PROJECT_ENVS = ("VERTEXAI_PROJECT", "GOOGLE_CLOUD_PROJECT")
LOCATION_ENV = "VERTEXAI_LOCATION"
DEFAULT_LOCATION = "us-central1"
_SCOPE = "https://www.googleapis.com/auth/cloud-platform"

_credentials: Any = None
_lock = threading.Lock()


def vertex_base(project: str, location: str) -> str:
    host = (
        "aiplatform.googleapis.com"
        if location == "global"
        else f"{location}-aiplatform.googleapis.com"
    )
    return f"https://{host}/v1/projects/{project}/locations/{location}"


def _address(deployment: Deployment) -> str:
    options = deployment.options
    project = options.get("project") or next(
        (os.environ[name] for name in PROJECT_ENVS if os.environ.get(name)), None
    )
    if not project:
        raise InvalidRequestError(
            "no Google Cloud project for vertex_ai: pass provider_options={'project': ...} "
            "or set VERTEXAI_PROJECT (or pass api_base)",
            param="project",
            provider=deployment.provider,
            model=deployment.model,
        )
    location = options.get("location") or os.environ.get(LOCATION_ENV) or DEFAULT_LOCATION
    return vertex_base(str(project), str(location))


def _adc_token() -> str | None:
    """An access token from Application Default Credentials, or None without google-auth."""
    global _credentials
    try:
        import google.auth
        import google.auth.transport.requests
    except ImportError:
        return None
    with _lock:
        if _credentials is None:
            _credentials, _ = google.auth.default(scopes=[_SCOPE])
        expiry = getattr(_credentials, "expiry", None)
        fresh = _credentials.token and (expiry is None or expiry.timestamp() > time.time() + 60)
        if not fresh:
            _credentials.refresh(google.auth.transport.requests.Request())
        return str(_credentials.token)


async def prepare(deployment: Deployment) -> Deployment:
    base = deployment.api_base or _address(deployment)
    token = deployment.api_key or os.environ.get("VERTEXAI_ACCESS_TOKEN")
    if not token:
        try:
            token = await asyncio.to_thread(_adc_token)
        except Exception as exc:  # google-auth raises its own tree; any failure means no token
            raise MissingAPIKeyError(
                f"no Google Cloud credentials for vertex_ai ({type(exc).__name__}): pass an "
                "access token as api_key, set VERTEXAI_ACCESS_TOKEN, or configure Application "
                "Default Credentials (gcloud auth application-default login)",
                param="api_key",
                provider=deployment.provider,
                model=deployment.model,
            ) from None
    if not token:
        raise MissingAPIKeyError(
            "no Google Cloud credentials for vertex_ai: pass an access token as api_key, set "
            "VERTEXAI_ACCESS_TOKEN, or install google-auth for Application Default Credentials",
            param="api_key",
            provider=deployment.provider,
            model=deployment.model,
        )
    return replace(deployment, api_base=base.rstrip("/"), api_key=token)
