from __future__ import annotations

from pathlib import Path

import pytest

from chatgate.cli import main
from chatgate.config import ConfigError, load, parse


def test_litellm_params_alias_and_env_references() -> None:
    config = parse(
        {
            "model_list": [
                {
                    "model_name": "m",
                    "litellm_params": {"model": "groq/llama", "api_key": "os.environ/K"},
                }
            ],
            "general_settings": {"master_key": "os.environ/MK"},
        },
        env={"K": "key-1", "MK": "master-1"},
    )
    assert config.model_list[0].params.model == "groq/llama"
    assert config.model_list[0].params.api_key == "key-1"
    assert config.general_settings.master_key == "master-1"
    assert "key-1" not in repr(config)


def test_missing_env_var_is_named() -> None:
    with pytest.raises(ConfigError, match="NOPE is not set") as info:
        parse(
            {
                "model_list": [
                    {"model_name": "m", "params": {"model": "x", "api_key": "os.environ/NOPE"}}
                ]
            },
            env={},
        )
    assert info.value.param == "config.model_list[0].params.api_key"


def test_unknown_keys_are_named_with_their_place() -> None:
    with pytest.raises(ConfigError) as info:
        parse(
            {"model_list": [{"model_name": "m", "params": {"modle": "x"}}], "extra_thing": 1},
            env={},
        )
    message = info.value.message
    assert "model_list.0.params.modle: unknown key" in message
    assert "extra_thing: unknown key" in message
    assert "model_list.0.params.model: Field required" in message


def test_config_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("model_list:\n  - model_name: a\n    params: {model: openai/gpt-4o}\n")
    assert main(["config", "check", str(good)]) == 0
    assert "1 model entries" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list:\n  - model_name: a\n    params: {model: x, rpmm: 5}\n")
    assert main(["config", "check", str(bad)]) == 1
    assert "model_list.0.params.rpmm: unknown key" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(broken)


def test_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: a\n"
        "    params:\n"
        "      model: openai/gpt-4o\n"
        "      rpmm: 5\n"
        "  - model_name: b\n"
        "    params: {api_key: os.environ/CG_TEST_NOPE_VAR}\n"
        "general_settings:\n"
        "  shutdown_grace_s: -1\n"
    )
    with pytest.raises(ConfigError) as env_error:
        load(path, env={})
    assert "line 7: " in env_error.value.message
    assert "CG_TEST_NOPE_VAR is not set" in env_error.value.message
    with pytest.raises(ConfigError) as info:
        load(path, env={"CG_TEST_NOPE_VAR": "x"})
    message = info.value.message
    assert "line 5: model_list.0.params.rpmm: unknown key" in message
    assert "line 7: model_list.1.params.model: Field required" in message
    assert "line 9: general_settings.shutdown_grace_s: Input should be greater" in message


def test_shared_state_redis_as_litellm_spells_it() -> None:
    routing = {
        "redis_host": "os.environ/REDIS_HOST",
        "redis_port": "os.environ/REDIS_PORT",
        "redis_password": "os.environ/REDIS_PASSWORD",
    }
    env = {"REDIS_HOST": "cache.internal", "REDIS_PORT": "6380", "REDIS_PASSWORD": "p@ss/w:rd"}
    settings = parse({"router_settings": routing}, env=env).router_settings
    assert settings.shared_state_url() == "redis://:p%40ss%2Fw%3Ard@cache.internal:6380/0"
    assert "p@ss" not in repr(settings)
    url = parse({"router_settings": {"redis_url": "redis://:s3cret@h:1/2"}}, env={})
    assert url.router_settings.shared_state_url() == "redis://:s3cret@h:1/2"
    assert "s3cret" not in repr(url)
    assert parse({}, env={}).router_settings.shared_state_url() is None
    ipv6 = parse({"router_settings": {"redis_host": "::1"}}, env={}).router_settings
    assert ipv6.shared_state_url() == "redis://[::1]:6379/0"


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"redis_url": "redis://h", "redis_host": "h"}, "give redis_url or redis_host"),
        ({"redis_password": "x"}, "redis_password needs redis_host"),
        ({"redis_host": "h", "redis_port": 0}, "redis_port: Input should be greater than 0"),
        ({"redis_url": "redis://h", "redis_namespace": "a b"}, "redis_namespace: String should"),
    ],
)
def test_shared_state_settings_that_cannot_work_are_named(
    routing: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse({"router_settings": routing}, env={})
    assert "router_settings" in info.value.message


def test_shared_state_failure_is_open_or_closed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse({}, env={}).router_settings.shared_state_failure == "open"
    closed = parse({"router_settings": {"shared_state_failure": "closed"}}, env={})
    assert closed.router_settings.shared_state_failure == "closed"
    path = tmp_path / "c.yaml"
    path.write_text(
        "router_settings:\n  redis_url: redis://127.0.0.1:6379/0\n  shared_state_failure: shut\n"
    )
    assert main(["config", "check", str(path)]) == 1
    assert (
        "line 3: router_settings.shared_state_failure: Input should be 'open' or 'closed'"
        in capsys.readouterr().err
    )
