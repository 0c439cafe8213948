"""Where the gateway keeps batch files and batch jobs: a directory on disk, shared by the
workers of one host.

``files/<id>.jsonl`` holds a file's bytes and ``files/<id>.json`` its OpenAI File object plus
its owner; ``batches/<id>/batch.json`` holds a Batch object plus its owner and, beside it, the
run's input, output and provider-batch state files (chatgate.batching). Every JSON record is
replaced atomically. The directory is ``CHATGATE_BATCH_DIR``, else ``chatgate-batches`` beside
an SQLite database, else in the working directory. The owner is the virtual key's id (or
``admin`` / ``open``): a key sees only its own files and batches; the master key sees all.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import orjson

from chatgate.batching.output import write_atomically
from chatgate.server.context import RequestContext
from chatgate.server.errors import GatewayError

__all__ = [
    "BATCH_DIR_ENV",
    "KEY_FIELD",
    "OWNER_FIELD",
    "TRACE_FIELD",
    "BatchStore",
    "batch_dir",
    "new_id",
    "owner_of",
    "public",
]

BATCH_DIR_ENV = "CHATGATE_BATCH_DIR"
OWNER_FIELD = "chatgate_owner"  # stored records only, never in answers: who may see it
KEY_FIELD = "chatgate_key"  # the key's id, user and team, for the spend rows
TRACE_FIELD = "chatgate_trace"  # the submitting request's span (traceparent): lines link it


def batch_dir(database_url: str) -> Path:
    if os.environ.get(BATCH_DIR_ENV):
        return Path(os.environ[BATCH_DIR_ENV])
    if database_url.startswith("sqlite") and ":///" in database_url:
        db = database_url.split(":///", 1)[1]
        if db and db != ":memory:":
            return Path(db).parent / "chatgate-batches"
    return Path("chatgate-batches")


def owner_of(ctx: RequestContext) -> str:
    return ctx.key_id or ("admin" if ctx.admin else "open")


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("chatgate_")}


class BatchStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    # -- files ---------------------------------------------------------------------------------

    def _file_paths(self, file_id: str) -> tuple[Path, Path]:
        if not file_id.startswith("file-") or not file_id[5:].isalnum():
            raise GatewayError(404, f"no file {file_id!r}", code="not_found")
        folder = self.root / "files"
        return folder / f"{file_id}.json", folder / f"{file_id}.jsonl"

    def add_file(self, owner: str, filename: str, purpose: str, data: bytes) -> dict[str, Any]:
        file_id = new_id("file-")
        meta_path, data_path = self._file_paths(file_id)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(data_path, data)
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            OWNER_FIELD: owner,
        }
        try:
            write_atomically(meta_path, orjson.dumps(record))
        except BaseException:  # no record, no file: an input nobody could name stays no more
            data_path.unlink(missing_ok=True)
            raise
        return record

    def file(self, file_id: str, ctx: RequestContext) -> dict[str, Any]:
        meta_path, _ = self._file_paths(file_id)
        return self._owned(meta_path, ctx, f"no file {file_id!r}")

    def file_path(self, file_id: str, ctx: RequestContext) -> Path:
        self.file(file_id, ctx)
        return self._file_paths(file_id)[1]

    def file_bytes(self, file_id: str, ctx: RequestContext) -> bytes:
        return self.file_path(file_id, ctx).read_bytes()

    # -- batches -------------------------------------------------------------------------------

    def batch_folder(self, batch_id: str) -> Path:
        if not batch_id.startswith("batch_") or not batch_id[6:].isalnum():
            raise GatewayError(404, f"no batch {batch_id!r}", code="not_found")
        return self.root / "batches" / batch_id

    def save_batch(self, record: dict[str, Any]) -> None:
        folder = self.batch_folder(record["id"])
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / "batch.json", orjson.dumps(record))

    def batch(self, batch_id: str, ctx: RequestContext | None) -> dict[str, Any]:
        path = self.batch_folder(batch_id) / "batch.json"
        if ctx is None:
            data: dict[str, Any] = orjson.loads(path.read_bytes())
            return data
        return self._owned(path, ctx, f"no batch {batch_id!r}")

    def batches(self, ctx: RequestContext) -> list[dict[str, Any]]:
        folder = self.root / "batches"
        found = []
        for path in folder.glob("batch_*/batch.json") if folder.exists() else ():
            record = orjson.loads(path.read_bytes())
            if ctx.admin or record.get(OWNER_FIELD) == owner_of(ctx):
                found.append(record)
        return sorted(found, key=lambda r: r["created_at"], reverse=True)

    def _owned(self, path: Path, ctx: RequestContext, missing: str) -> dict[str, Any]:
        try:
            record: dict[str, Any] = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise GatewayError(404, missing, code="not_found") from None
        if not ctx.admin and record.get(OWNER_FIELD) != owner_of(ctx):
            raise GatewayError(404, missing, code="not_found")  # another key's: not shown
        return record
