"""The Bedrock row's ``prepare`` step: find the region and AWS credentials (I/O: env vars,
~/.aws files, SSO caches, the container / instance metadata endpoints), freeze them into
``Deployment.options`` and fill in the regional endpoint. The adapter then signs with them
without any I/O.

Options read (all optional): ``region``; ``aws_access_key_id`` + ``aws_secret_access_key``
(+ ``aws_session_token``) to skip the chain; ``aws_profile`` for a named profile.
Otherwise botocore's standard chain runs (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, config files, SSO, container and instance roles), and the region comes from
AWS_REGION, AWS_DEFAULT_REGION or the profile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

import botocore.session
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import BotoCoreError

from chatgate.errors import InvalidRequestError, MissingAPIKeyError
from chatgate.providers.base import Deployment

__all__ = ["prepare"]

_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or pass "
    "options aws_access_key_id / aws_secret_access_key / aws_profile"
)
# Credentials that refresh themselves (roles, SSO) are kept per profile: resolving them again
# for every request would mean a metadata-endpoint or STS round trip each time. Static keys
# are read afresh, so a changed environment takes effect at once.
_REFRESHABLE: dict[str | None, RefreshableCredentials] = {}


def _resolve(profile: str | None) -> tuple[ReadOnlyCredentials | None, str | None]:
    cached = _REFRESHABLE.get(profile)
    session = botocore.session.Session(profile=profile)
    region = session.get_config_variable("region")
    credentials: Credentials | None = cached or session.get_credentials()
    if credentials is None:
        return None, region
    if isinstance(credentials, RefreshableCredentials):
        _REFRESHABLE[profile] = credentials
    return credentials.get_frozen_credentials(), region


async def prepare(deployment: Deployment) -> Deployment:
    options = deployment.options
    where = {"provider": deployment.provider, "model": deployment.model}
    region: str | None = options.get("region")
    key_id, secret = options.get("aws_access_key_id"), options.get("aws_secret_access_key")
    if key_id and secret:
        credentials: ReadOnlyCredentials | None = ReadOnlyCredentials(
            key_id, secret, options.get("aws_session_token")
        )
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    else:
        try:
            credentials, found = await asyncio.to_thread(_resolve, options.get("aws_profile"))
        except BotoCoreError as exc:  # unknown profile, expired SSO session, broken config
            raise MissingAPIKeyError(
                f"could not load AWS credentials: {exc}; {_FIX}", param="api_key", **where
            ) from exc
        region = region or os.environ.get("AWS_REGION") or found
    if credentials is None:
        raise MissingAPIKeyError(f"no AWS credentials found: {_FIX}", param="api_key", **where)
    if not region:
        raise InvalidRequestError(
            "no AWS region for Bedrock: set AWS_REGION (or AWS_DEFAULT_REGION), or pass "
            "options region='us-east-1'",
            param="region",
            **where,
        )
    api_base = deployment.api_base or f"https://bedrock-runtime.{region}.amazonaws.com"
    options = {**options, "region": region, "credentials": credentials}
    return dataclasses.replace(deployment, api_base=api_base, options=options)
