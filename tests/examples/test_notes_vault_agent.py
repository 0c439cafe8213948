"""examples/notes_vault_agent: the fake model's tool calls are scripted (a disallowed tool, an
invalid argument, a retried round, a rerun of the task, a model that never stops) and the
vault on disk is checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.examples.conftest import load_example, run_script
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.test_tools import answer, asks, call, results

example = load_example("notes_vault_agent")
DRAFT = {"title": "Lisbon trip summary", "body": "Tram 28, pasteis de nata, Belem tower."}


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    (root / "lisbon-trip.md").write_text("# Lisbon trip\n\nTram 28 at dawn. Belem tower.\n")
    (root / "groceries.md").write_text("# Groceries\n\nEggs, rice.\n")
    (root / "secrets.md").write_text("# Secrets\n\nnot for the agent\n")
    return root


def settings(vault: Path, fake: FakeOpenAI, **more: Any) -> Any:
    return example.Settings(vault=vault, task_id="lisbon-summary", api_base=fake.base_url,
                            api_key="sk-test", **more)  # fmt: skip


def test_allowlist_validation_and_a_retried_round_save_once(fake: FakeOpenAI, vault: Path) -> None:
    fake.script(
        asks(call("c1", "search_notes", {"query": "lisbon"}),
             call("c2", "delete_note", {"note_id": "lisbon-trip"})),
        asks(call("c3", "get_note", {"note_id": "../secrets"}),
             call("c4", "get_note", {"note_id": "lisbon-trip"})),
        asks(call("c5", "save_draft", DRAFT)),
        asks(call("c6", "save_draft", DRAFT)),  # the model retries the round that saved
        answer("Saved your Lisbon summary."),
    )  # fmt: skip
    run = example.run(settings(vault, fake), "Draft a summary of my Lisbon trip.")

    assert run.stop_reason == "answered"
    assert run.content == "Saved your Lisbon summary."
    by_id = {d.call_id: d for d in run.decisions}
    # only the allowlisted tools were offered, and the one asked for outside it was not run
    offered = {t["function"]["name"] for t in fake.requests[0].body["tools"]}
    assert offered == {"search_notes", "get_note", "save_draft"}
    assert by_id["c2"].status == "denied"
    assert (vault / "lisbon-trip.md").exists()
    # the invalid id was refused with a reason the model can act on, and nothing was read
    assert by_id["c3"].status == "error"
    assert "note_id" in (by_id["c3"].error or "")
    assert "not for the agent" not in by_id["c3"].content
    assert by_id["c4"].status == "ok"
    assert "Tram 28" in by_id["c4"].content
    # saved exactly once; the retry got the first save's result back
    drafts = list((vault / "drafts").iterdir())
    assert [p.name for p in drafts] == ["lisbon-trip-summary.md"]
    assert by_id["c5"].replayed is False
    assert by_id["c6"].replayed is True
    final_request = results(fake.requests[-1].body)
    assert final_request["c6"] == final_request["c5"]
    assert final_request["c5"]["result"] == {"saved": "drafts/lisbon-trip-summary.md"}


def test_a_rerun_of_the_task_does_not_save_again(fake: FakeOpenAI, vault: Path) -> None:
    for _ in range(2):  # the same task twice, as after a crash: two runs, one conversation id
        fake.script(asks(call("s", "save_draft", DRAFT)), answer("Saved."))
        run = example.run(settings(vault, fake), "Draft a summary of my Lisbon trip.")
        assert run.stop_reason == "answered"
    assert [d.replayed for d in run.decisions] == [True]
    assert len(list((vault / "drafts").iterdir())) == 1
    # a different draft is a different call, and is saved
    fake.script(asks(call("t", "save_draft", {**DRAFT, "body": "Another."})), answer("ok"))
    example.run(settings(vault, fake), "Draft a summary of my Lisbon trip.")
    assert len(list((vault / "drafts").iterdir())) == 2


def test_the_round_cap_holds(fake: FakeOpenAI, vault: Path) -> None:
    fake.script(*[asks(call(f"r{n}", "search_notes", {"query": "trip"})) for n in range(10)])
    run = example.run(settings(vault, fake, max_rounds=3), "Search forever.")

    assert run.stop_reason == "max_rounds"
    assert len(fake.requests) == 3
    assert len(run.rounds) == 3
    assert [c.function.name for c in run.pending_calls] == ["search_notes"]  # asked, not run
    assert sum(d.status == "ok" for d in run.decisions) == 2


def test_read_only_offers_no_write_tool(fake: FakeOpenAI, vault: Path) -> None:
    fake.script(asks(call("w", "save_draft", DRAFT)), answer("I may not save."))
    run = example.run(settings(vault, fake, read_only=True), "Save a draft.")

    assert {t["function"]["name"] for t in fake.requests[0].body["tools"]} == {
        "search_notes",
        "get_note",
    }
    assert [d.status for d in run.decisions] == ["denied"]
    assert not (vault / "drafts").exists()


def test_runs_as_a_script(fake: FakeOpenAI, vault: Path) -> None:
    fake.script(
        asks(call("a", "get_note", {"note_id": "groceries"})),
        asks(call("b", "save_draft", {"title": "Shopping", "body": "Eggs, rice, milk."})),
        answer("Done."),
    )
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url}
    done = run_script("notes_vault_agent", env, str(vault), "Add milk to a shopping draft.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "round 1: get_note -> ok",
        "round 2: save_draft -> ok",
        "stop: answered",
        "answer: Done.",
    ]
    assert (vault / "drafts" / "shopping.md").read_text() == "# Shopping\n\nEggs, rice, milk.\n"
