"""The state file beside a provider-batch output: which batches were submitted, with which
lines, so that Ctrl-C and a rerun keep polling them instead of submitting (and paying) twice.

``OUTPUT.batches.json`` holds ``{"version": 1, "jobs": [{"provider", "batch_id", "ids":
{wire id: custom_id}, "worst_case", "submitted_at", "tags"}]}``: never a key or a request
body. ``tags``: the run's routing tags, which chose the deployment the job was sent to (a job
saved before they were kept has none). It is replaced atomically (a temporary file, fsync,
rename) after every submission and every collected job, and removed once no job is left.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from chatgate.batching.output import write_atomically
from chatgate.errors import InvalidRequestError

__all__ = ["Job", "StateFile", "state_path"]

VERSION = 1


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".batches.json")


@dataclass
class Job:
    provider: str
    batch_id: str
    ids: dict[str, str]  # wire id -> custom_id
    worst_case: str = "0"  # USD held for it under a cost cap (a Decimal string)
    submitted_at: float = field(default_factory=time.time)
    tags: list[str] = field(default_factory=list)  # the run's routing tags, sorted

    @property
    def worst(self) -> Decimal:
        return Decimal(self.worst_case)


def _job(raw: Any, where: Path) -> Job:
    try:
        ids = raw["ids"]
        if not isinstance(ids, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in ids.items()
        ):
            raise TypeError("ids")
        tags = raw.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise TypeError("tags")
        return Job(
            provider=str(raw["provider"]),
            batch_id=str(raw["batch_id"]),
            ids=ids,
            worst_case=str(raw.get("worst_case", "0")),
            submitted_at=float(raw.get("submitted_at", 0.0)),
            tags=tags,
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidRequestError(
            f"{where} is not a chatgate batch state file (a job lacks provider, batch_id or "
            "ids); move it away only if no batch it names is still running",
            param="output",
        ) from None


class StateFile:
    """The jobs of one output file, saved atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jobs: list[Job] = []

    @classmethod
    def load(cls, output: Path) -> StateFile:
        state = cls(state_path(output))
        if not state.path.exists():
            return state
        try:
            raw = orjson.loads(state.path.read_bytes())
        except orjson.JSONDecodeError:
            raw = None
        if not isinstance(raw, dict) or raw.get("version") != VERSION:
            raise InvalidRequestError(
                f"{state.path} is not a chatgate batch state file (version {VERSION})",
                param="output",
            )
        state.jobs = [_job(job, state.path) for job in raw.get("jobs") or []]
        return state

    def custom_ids(self) -> set[str]:
        return {custom_id for job in self.jobs for custom_id in job.ids.values()}

    def add(self, job: Job) -> None:
        self.jobs.append(job)
        self.save()

    def remove(self, job: Job) -> None:
        self.jobs.remove(job)
        self.save()

    def save(self) -> None:
        if not self.jobs:
            self.path.unlink(missing_ok=True)
            return
        data = orjson.dumps(
            {"version": VERSION, "jobs": [asdict(job) for job in self.jobs]},
            option=orjson.OPT_INDENT_2,
        )
        write_atomically(self.path, data)
