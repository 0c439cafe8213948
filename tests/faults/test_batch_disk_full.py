"""The batch store on a full disk: uploading a batch input (the OpenAI SDK, unchanged) while
the gateway's disk is full is a 507 that says so, never a 500, and leaves no half-written
file; once the disk is freed the same upload works and the file reads back whole."""

from __future__ import annotations

import io
from pathlib import Path

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.faults.spend_load import MASTER, fill, gateway_config, tmpfs
from tests.gateway_harness import serve

LINE = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}\n'  # noqa: E501


def test_a_full_disk_is_a_507_naming_it_and_nothing_half_written(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    disk = tmpfs(tmp_path / "disk", "4m")
    with disk as folder:
        database = f"sqlite:///{folder / 'gateway.db'}"
        (tmp_path / "gw").mkdir()
        with serve(gateway_config(fake, database), tmp_path / "gw") as gateway:
            client = gateway.openai_client(MASTER)
            first = client.files.create(file=("in.jsonl", io.BytesIO(LINE)), purpose="batch")
            filler = fill(folder)
            with pytest.raises(openai.APIStatusError) as refused:
                client.files.create(file=("in.jsonl", io.BytesIO(LINE * 2000)), purpose="batch")
            assert refused.value.status_code == 507
            error = refused.value.body  # the SDK gives the "error" object
            assert error["code"] == "insufficient_storage"
            assert "disk" in error["message"]
            assert not list(folder.rglob("*.tmp"))  # no half-written file left behind
            filler.unlink()
            again = client.files.create(file=("in.jsonl", io.BytesIO(LINE * 2)), purpose="batch")
            assert client.files.content(again.id).content == LINE * 2
            assert client.files.content(first.id).content == LINE
