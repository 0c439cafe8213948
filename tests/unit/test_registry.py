from __future__ import annotations

import orjson
import pytest

from chatgate.errors import InvalidRequestError, MissingAPIKeyError
from chatgate.providers.registry import PROVIDERS, resolve_deployment, split_model


def test_bare_name_means_openai_and_prefix_is_split_once() -> None:
    assert split_model("gpt-4o")[0].name == "openai"
    spec, model = split_model("together_ai/meta-llama/Llama-3-8b")
    assert (spec.name, model) == ("together_ai", "meta-llama/Llama-3-8b")
    assert split_model("openai/org/model")[1] == "org/model"


@pytest.mark.parametrize("bad", ["", "  ", "groq/", "nosuch/x"])
def test_bad_model_strings(bad: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        split_model(bad)
    assert info.value.param == "model"


def test_resolution_uses_env_and_hides_key_in_repr() -> None:
    env = {"DEEPSEEK_API_KEY": "sk-secret-value"}
    d = resolve_deployment("deepseek/deepseek-chat", env=env)
    assert d.api_base == "https://api.deepseek.com/v1"
    assert d.api_key == "sk-secret-value"
    assert "sk-secret-value" not in repr(d)


def test_explicit_arguments_win_over_env() -> None:
    env = {"OPENAI_API_KEY": "env-key", "OPENAI_BASE_URL": "http://env/v1"}
    d = resolve_deployment("gpt-4o", api_key="arg-key", api_base="http://arg/v1/", env=env)
    assert (d.api_key, d.api_base) == ("arg-key", "http://arg/v1")


def test_every_hosted_openai_compatible_row_names_its_key_env() -> None:
    for spec in PROVIDERS.values():
        if spec.key_required:
            assert spec.key_env is not None, spec.name
            assert spec.key_env.endswith("_API_KEY"), spec.name
            with pytest.raises(MissingAPIKeyError, match=spec.key_env):
                resolve_deployment(f"{spec.name}/m", env={})


def _sent_messages(model: str, messages: list[dict[str, object]]) -> list[dict[str, object]]:
    from chatgate.providers.registry import get_adapter
    from chatgate.types import ChatRequest

    d = resolve_deployment(model, api_key="k", api_base="http://127.0.0.1:1/v1")
    request = ChatRequest.model_validate({"model": d.model, "messages": messages})
    body = orjson.loads(get_adapter(d.provider).build_request(request, d).body)
    sent: list[dict[str, object]] = body["messages"]
    return sent


TEXT_PARTS = [
    {"type": "text", "text": "one", "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "two"},
]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def test_deepseek_takes_content_as_a_string_for_every_role() -> None:
    sent = _sent_messages(
        "deepseek/deepseek-chat",
        [
            {"role": "system", "content": TEXT_PARTS},
            {"role": "user", "content": TEXT_PARTS},
            {"role": "user", "content": [{"type": "text", "text": "see"}, IMAGE]},
        ],
    )
    assert sent[0]["content"] == sent[1]["content"] == "one\n\ntwo"
    assert sent[2]["content"] == [{"type": "text", "text": "see"}, IMAGE]  # not text only: as is


@pytest.mark.parametrize("model", ["openai/gpt-4o", "groq/llama-3.1-8b-instant", "vllm/m"])
def test_servers_that_take_part_lists_get_them_unchanged(model: str) -> None:
    sent = _sent_messages(model, [{"role": "system", "content": TEXT_PARTS}])
    assert sent[0]["content"] == TEXT_PARTS
