"""The Bedrock prepare step: credentials and region from options, env vars and profiles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from botocore.credentials import ReadOnlyCredentials

from chatgate.errors import InvalidRequestError, MissingAPIKeyError
from chatgate.providers.bedrock.auth import prepare
from chatgate.providers.registry import resolve_deployment


@pytest.fixture(autouse=True)
def _clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def unprepared() -> object:
    return resolve_deployment("bedrock/amazon.nova-lite-v1:0", env={})


async def test_env_credentials_and_region_fill_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tok")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    d = await prepare(resolve_deployment("bedrock/amazon.nova-lite-v1:0"))
    assert d.api_base == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    assert d.options["region"] == "eu-central-1"
    assert d.options["credentials"] == ReadOnlyCredentials("AKIDENV", "s3cret", "tok")


async def test_profile_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "credentials").write_text(
        "[work]\naws_access_key_id = AKIDPROF\naws_secret_access_key = p\n"
    )
    (tmp_path / "config").write_text("[profile work]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_PROFILE", "work")
    d = await prepare(resolve_deployment("bedrock/m"))
    assert d.options["credentials"].access_key == "AKIDPROF"
    assert d.options["region"] == "ap-south-1"


async def test_explicit_options_and_api_base_win(monkeypatch: pytest.MonkeyPatch) -> None:
    base = resolve_deployment("bedrock/m", api_base="http://127.0.0.1:9")
    d = dataclasses.replace(
        base,
        options={"aws_access_key_id": "A", "aws_secret_access_key": "B", "region": "us-west-2"},
    )
    prepared = await prepare(d)
    assert prepared.api_base == "http://127.0.0.1:9"
    assert prepared.options["credentials"] == ReadOnlyCredentials("A", "B", None)
    assert prepared.options["region"] == "us-west-2"


async def test_missing_credentials_region_and_profile_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(MissingAPIKeyError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        await prepare(resolve_deployment("bedrock/m"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "A")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "B")
    with pytest.raises(InvalidRequestError, match="AWS_REGION") as info:
        await prepare(resolve_deployment("bedrock/m"))
    assert info.value.param == "region"
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(MissingAPIKeyError, match="could not load AWS credentials"):
        await prepare(resolve_deployment("bedrock/m"))
