"""A library batch run with ``tags=`` is answered only by deployments carrying every tag,
as a routed call with ``tags=`` is: live lines through the Router, provider-batch lines on a
batch-capable deployment that carries them (two fake upstreams each, the second one tagged
``eu``). A tag the model's deployments do not carry is refused before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatgate.batching import BatchInputError, BatchRun, ProviderBatchRun, abatch
from chatgate.batching.provider.poll import PollPolicy
from chatgate.errors import InvalidRequestError
from chatgate.router import Router
from tests.batching.support import LLAMA, MINI, Fakes, chats
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.test_batch import line, read_output


async def no_wait(seconds: float) -> None:
    """The poll's sleep: the fake batches end at their first status read."""


def entry(name: str, upstream: FakeOpenAI, model: str, **params: Any) -> dict[str, Any]:
    base = {"model": model, "api_key": "sk-upstream", "api_base": upstream.base_url, "free": True}
    return {"model_name": name, "params": {**base, **params}}


@pytest.fixture
def router(
    fakes: Fakes,
) -> Router:
    us, eu, us_batch, eu_batch = fakes
    return Router(
        [
            entry("chat", us, LLAMA),  # the untagged one first: what an untagged pick takes
            entry("chat", eu, LLAMA, tags=["eu"]),
            entry("mini", us_batch, MINI),
            entry("mini", eu_batch, MINI, tags=["eu", "gold"]),
            entry("plain", us, LLAMA),  # no tags in the group: any tags are served
            entry("bulk", us_batch, MINI),  # the same, with a batch API
        ]
    )


async def test_live_lines_go_only_to_the_tagged_deployment(
    fakes: Fakes,
    router: Router,
    tmp_path: Path,
) -> None:
    us, eu, _, _ = fakes
    lines = [line(f"c{i}", "chat") for i in range(12)] + [line("p", "plain")]
    summary = await abatch(lines, tmp_path / "out.jsonl", router=router, tags=["eu"])
    assert (summary.done, summary.failed) == (13, 0)
    assert (chats(us), chats(eu)) == (1, 12)  # the untagged group's line: where it is served
    untagged = await abatch(
        [line(f"c{i}", "chat") for i in range(12)], tmp_path / "any.jsonl", router=router
    )
    assert untagged.done == 12
    assert chats(us) > 1  # without tags: either deployment
    assert chats(eu) > 12


async def test_provider_batch_lines_go_only_to_the_tagged_batch_deployment(
    fakes: Fakes,
    router: Router,
    tmp_path: Path,
) -> None:
    _, _, us_batch, eu_batch = fakes
    lines = [line(f"m{i}", "mini") for i in range(3)]
    out = tmp_path / "out.jsonl"
    summary = await abatch(
        lines, out, router=router, provider_batch=True, poll=PollPolicy(sleep=no_wait),
        tags=("gold", "eu"),
    )  # fmt: skip
    assert (summary.done, summary.failed) == (3, 0), read_output(out)
    assert (us_batch.submissions, eu_batch.submissions) == (0, 1)
    assert sorted(r["custom_id"] for r in read_output(out)) == ["m0", "m1", "m2"]
    await abatch(
        lines, tmp_path / "any.jsonl", router=router, provider_batch=True,
        poll=PollPolicy(sleep=no_wait),
    )  # fmt: skip
    assert (us_batch.submissions, eu_batch.submissions) == (1, 1)  # untagged: the first


@pytest.mark.parametrize("provider_batch", [False, True])
async def test_a_tag_no_deployment_carries_is_a_line_problem_and_nothing_is_sent(
    fakes: Fakes,
    router: Router,
    tmp_path: Path,
    provider_batch: bool,
) -> None:
    plain, model = ("bulk", "mini") if provider_batch else ("plain", "chat")
    run_type = ProviderBatchRun if provider_batch else BatchRun
    run = run_type([line("a", plain), line("b", model)], tmp_path / "o.jsonl", router=router,
                   tags=["eu", "us-west"])  # fmt: skip
    with pytest.raises(BatchInputError) as refused:
        run.prepare()
    [problem] = refused.value.problems
    assert problem.startswith(f"line 2: body.model '{model}'")
    assert "(eu, us-west)" in problem
    assert "params.tags" in problem
    assert all(not fake.requests for fake in fakes)


async def test_provider_batch_without_a_tagged_batch_deployment_says_run_it_live(
    fakes: Fakes,
    tmp_path: Path,
) -> None:
    _, eu, us_batch, _ = fakes
    router = Router([entry("mixed", us_batch, MINI), entry("mixed", eu, LLAMA, tags=["eu"])])
    run = ProviderBatchRun([line("a", "mixed")], tmp_path / "o.jsonl", router=router, tags=["eu"])
    with pytest.raises(BatchInputError, match=r"line 1: .*carries every requested tag \(eu\)"):
        run.prepare()
    summary = await abatch([line("a", "mixed")], tmp_path / "live.jsonl", router=router,
                           tags=["eu"])  # fmt: skip
    assert summary.done == 1
    assert (chats(eu), us_batch.submissions) == (1, 0)


@pytest.mark.parametrize(
    ("tags", "said"),
    [
        ("eu", r"a list of tags like \['eu'\], not str"),
        (["eu", ""], "each tag is a string of 1 to 64 characters"),
        (["x" * 65], "each tag is a string of 1 to 64 characters"),
        ([f"t{i}" for i in range(17)], "at most 16"),
        ([1], "each tag is a string"),
    ],
)
def test_malformed_tags_are_refused_naming_tags(
    tags: Any, said: str, router: Router, tmp_path: Path
) -> None:
    for run_type in (BatchRun, ProviderBatchRun):
        with pytest.raises(InvalidRequestError, match=said) as refused:
            run_type([line("a", "chat")], tmp_path / "o.jsonl", router=router, tags=tags)
        assert refused.value.param == "tags"


async def test_a_rerun_collects_by_the_tags_it_submitted_with(
    fakes: Fakes, router: Router, tmp_path: Path
) -> None:
    """A rerun with other tags would poll a deployment that never saw the batch: refused,
    naming the tags to give; with the same tags it collects from the eu batch API."""
    _, _, us_batch, eu_batch = fakes
    eu_batch.batch_script.polls = 10_000
    lines, out = [line("m0", "mini"), line("m1", "mini")], tmp_path / "out.jsonl"
    leave = PollPolicy(sleep=no_wait, max_wait_s=0)
    first = await abatch(lines, out, router=router, provider_batch=True, poll=leave, tags=["eu"])
    assert (first.waiting, eu_batch.submissions) == (2, 1)
    for tags in (None, ["eu", "gold"]):
        run = ProviderBatchRun(lines, out, router=router, tags=tags)
        with pytest.raises(BatchInputError, match=r"submitted with routing tags \(eu\): rerun"):
            run.prepare()
    eu_batch.batch_script.polls = 0
    done = await abatch(
        lines, out, router=router, provider_batch=True, poll=PollPolicy(sleep=no_wait),
        tags=["eu"],
    )  # fmt: skip
    assert (done.done, done.failed, eu_batch.submissions) == (2, 0, 1)
    assert us_batch.requests == []
