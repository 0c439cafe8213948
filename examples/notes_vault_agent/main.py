"""The notes-vault agent: a model answers from a folder of Markdown notes with two read tools
(``search_notes``, ``get_note``) and one write tool (``save_draft``), inside a safe tool loop:
only the tools given are run, arguments are validated, rounds are capped, and a save is done
once however often the model (or a rerun of the task) asks for it. See README.md.

    OPENAI_API_KEY=sk-... python examples/notes_vault_agent/main.py VAULT_DIR "task..."
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

import chatgate
from chatgate.tools import Tool, ToolContext, ToolRun

NoteId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="A note's id.")]
SYSTEM = (
    "You help the user with their notes vault. Search before you read; read before you "
    "write. Save at most one draft per task with save_draft, then answer briefly."
)


def _vault(ctx: ToolContext) -> Path:
    return Path(ctx.data["vault"])


def _title(text: str, fallback: str) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    return first.lstrip("# ").strip() or fallback


@chatgate.tool
def search_notes(
    query: Annotated[str, Field(min_length=2, max_length=200)],
    ctx: ToolContext,
    limit: Annotated[int, Field(ge=1, le=20)] = 5,
) -> list[dict[str, str]]:
    """Find notes containing every word of the query (case-insensitive).

    Args:
        query: Words to look for.
        limit: How many notes to return at most.
    """
    words = query.lower().split()
    found = []
    for path in sorted(_vault(ctx).glob("*.md")):
        text = path.read_text(encoding="utf-8")
        if all(word in text.lower() for word in words):
            found.append({"id": path.stem, "title": _title(text, path.stem)})
        if len(found) == limit:
            break
    return found


@chatgate.tool
def get_note(note_id: NoteId, ctx: ToolContext) -> str:
    """The whole text of one note.

    Args:
        note_id: The id search_notes returned.
    """
    path = _vault(ctx) / f"{note_id}.md"  # the id's pattern keeps it inside the vault
    if not path.is_file():
        raise FileNotFoundError(f"no note {note_id!r}")
    return path.read_text(encoding="utf-8")


@chatgate.tool(side_effect=True)
def save_draft(
    title: Annotated[str, Field(min_length=1, max_length=120)],
    body: Annotated[str, Field(min_length=1, max_length=20_000)],
    ctx: ToolContext,
) -> dict[str, str]:
    """Save a new draft note in the vault's drafts/ folder.

    Args:
        title: The draft's title.
        body: The draft's Markdown text.
    """
    drafts = _vault(ctx) / "drafts"
    drafts.mkdir(exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "draft"
    path = drafts / f"{slug}.md"
    number = 2
    while path.exists():  # never overwrite: a second, different draft gets its own file
        path, number = drafts / f"{slug}-{number}.md", number + 1
    path.write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
    return {"saved": str(path.relative_to(_vault(ctx)))}


@chatgate.tool
def delete_note(note_id: NoteId, ctx: ToolContext) -> str:
    """Delete a note. Defined by the vault, but never given to the agent: not on the allowlist."""
    (_vault(ctx) / f"{note_id}.md").unlink()
    return "deleted"


READ_TOOLS: tuple[Tool, ...] = (search_notes, get_note)
WRITE_TOOLS: tuple[Tool, ...] = (save_draft,)


@dataclass(frozen=True)
class Settings:
    vault: Path
    task_id: str  # one task, one conversation id: a rerun of the task saves nothing twice
    model: str = "openai/gpt-4o-mini"
    max_rounds: int = 6
    read_only: bool = False
    store: str | None = None  # idempotency records; default: <vault>/.agent.db
    api_base: str | None = None
    api_key: str | None = None


def allowlist(settings: Settings) -> list[Tool]:
    """The only tools the model may have run; anything else it asks for is denied."""
    return [*READ_TOOLS, *(() if settings.read_only else WRITE_TOOLS)]


def run(settings: Settings, task: str) -> ToolRun:
    store = settings.store or f"sqlite:///{settings.vault / '.agent.db'}"
    connection: dict[str, Any] = {"api_base": settings.api_base, "api_key": settings.api_key}
    return chatgate.run_tools(
        settings.model,
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}],
        tools=allowlist(settings),
        max_rounds=settings.max_rounds,
        conversation_id=settings.task_id,
        store=store,
        context={"vault": str(settings.vault)},
        tool_timeout=10,
        **{k: v for k, v in connection.items() if v is not None},
    )


def describe(result: ToolRun) -> list[str]:
    lines = []
    for n, round_ in enumerate(result.rounds, 1):
        for d in round_.decisions:
            note = " (replayed: already done)" if d.replayed else ""
            reason = f": {d.error}" if d.error and d.status != "ok" else ""
            lines.append(f"round {n}: {d.tool} -> {d.status}{note}{reason}")
    lines.append(f"stop: {result.stop_reason}")
    if result.pending_calls:
        names = ", ".join(c.function.name for c in result.pending_calls)
        lines.append(f"not run (round cap reached): {names}")
    if result.content:
        lines.append(f"answer: {result.content}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ask an agent to work on a notes vault.")
    parser.add_argument("vault", type=Path, help="a folder of .md notes")
    parser.add_argument("task", help="what to do, e.g. 'draft a summary of my travel notes'")
    parser.add_argument("--task-id", default=None, help="default: the task's text")
    parser.add_argument("--model", default=Settings.model)
    parser.add_argument("--max-rounds", type=int, default=Settings.max_rounds)
    parser.add_argument("--read-only", action="store_true", help="no save_draft")
    args = parser.parse_args(argv)
    task_id = args.task_id or re.sub(r"\W+", "-", args.task.lower()).strip("-")[:80]
    settings = Settings(
        vault=args.vault,
        task_id=task_id,
        model=args.model,
        max_rounds=args.max_rounds,
        read_only=args.read_only,
    )
    print("\n".join(describe(run(settings, args.task))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
