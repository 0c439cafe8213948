"""Azure OpenAI: the OpenAI adapter with Azure's URL, auth headers and content-filter errors.

``azure/<deployment>`` posts to
``{api_base}/openai/deployments/{deployment}/chat/completions?api-version={api_version}``,
where ``api_base`` is ``https://{resource}.openai.azure.com`` (``AZURE_API_BASE``) and the
version comes from the caller, ``AZURE_API_VERSION`` or the registry row's default.

Auth, first match wins: ``Deployment.options["azure_ad_token"]`` (``Authorization: Bearer``),
then ``api_key`` / ``AZURE_API_KEY`` (``api-key`` header), then the ``AZURE_AD_TOKEN`` env var
(Bearer). ``prepare`` reads the env var and checks that one of them is there; the adapter
itself stays pure.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from chatgate.errors import (
    APIError,
    ContentPolicyViolationError,
    InvalidRequestError,
    MissingAPIKeyError,
    error_for_status,
)
from chatgate.providers.base import Deployment, HttpRequest
from chatgate.providers.openai import OpenAIAdapter, error_from_body
from chatgate.types import ChatRequest

__all__ = ["ADAPTER", "AzureOpenAIAdapter", "azure_request", "prepare"]

AD_TOKEN_OPTION = "azure_ad_token"
AD_TOKEN_ENV = "AZURE_AD_TOKEN"
# Azure's code for a prompt blocked by its Responsible-AI filters (in error.innererror.code).
_POLICY_INNER_CODES = frozenset({"ResponsibleAIPolicyViolation"})


async def prepare(deployment: Deployment) -> Deployment:
    """Check the address and credentials; pick up ``AZURE_AD_TOKEN`` when no key is given."""
    if not deployment.api_base:
        raise InvalidRequestError(
            "no Azure endpoint: pass api_base='https://<resource>.openai.azure.com' "
            "or set AZURE_API_BASE",
            param="api_base",
            provider=deployment.provider,
            model=deployment.model,
        )
    if deployment.options.get(AD_TOKEN_OPTION) or deployment.api_key:
        return deployment
    token = os.environ.get(AD_TOKEN_ENV)
    if not token:
        raise MissingAPIKeyError(
            "no Azure credentials: pass api_key=... or set AZURE_API_KEY, or give a Microsoft "
            f"Entra ID token in options['{AD_TOKEN_OPTION}'] or {AD_TOKEN_ENV}",
            param="api_key",
            provider=deployment.provider,
            model=deployment.model,
        )
    options = {**deployment.options, AD_TOKEN_OPTION: token}
    return dataclasses.replace(deployment, options=options)


def _policy_violation(body: bytes) -> bool:
    """Azure marks filtered prompts in ``error.innererror.code`` even when ``error.code``
    differs (older api-versions send ``error.code: "400"``)."""
    try:
        parsed: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return False
    error = parsed.get("error") if isinstance(parsed, dict) else None
    inner = error.get("innererror") if isinstance(error, dict) else None
    return isinstance(inner, dict) and inner.get("code") in _POLICY_INNER_CODES


def azure_request(base: HttpRequest, deployment: Deployment, operation: str) -> HttpRequest:
    """An OpenAI-format request (built without a key) sent Azure's way: the deployment URL
    with api-version, and Azure's auth header. ``operation``: "chat/completions", ...)."""
    if not deployment.api_version:
        raise InvalidRequestError(
            "Azure needs an api-version: pass api_version='2024-10-21' or set AZURE_API_VERSION",
            param="api_version",
        )
    headers = dict(base.headers)
    token = deployment.options.get(AD_TOKEN_OPTION)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif deployment.api_key:
        headers["api-key"] = deployment.api_key
    path = f"/openai/deployments/{quote(deployment.model, safe='')}/{operation}"
    query = urlencode({"api-version": deployment.api_version})
    return HttpRequest("POST", f"{deployment.api_base}{path}?{query}", headers, base.body)


class AzureOpenAIAdapter(OpenAIAdapter):
    name = "azure"
    # OpenAIAdapter annotates this as tuple[str] (inferred); Azure sends two id headers.
    request_id_headers = ("apim-request-id", "x-request-id")

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        # The OpenAI adapter builds the body; Azure differs only in URL and auth header.
        base = super().build_request(request, dataclasses.replace(deployment, api_key=None))
        return azure_request(base, deployment, "chat/completions")

    def map_error(
        self, status: int, headers: Mapping[str, str], body: bytes, deployment: Deployment
    ) -> APIError:
        error = error_from_body(status, headers, body, deployment)
        if status == 400 and _policy_violation(body):
            return error_for_status(
                status,
                error.message,
                headers,
                cls=ContentPolicyViolationError,
                provider=deployment.provider,
                model=deployment.model,
                body=error.body,
            )
        return error


ADAPTER = AzureOpenAIAdapter()
