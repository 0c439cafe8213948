"""End-to-end runs of real client programs (Claude Code, Codex CLI) against `chatgate serve`.

Run by `make e2e-clients`, which installs the CLIs from npm and runs this folder inside a network
namespace that has loopback only, so the CLIs reach nothing but the gateway and the fakes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def e2e_bin() -> Path:
    """The folder holding the installed CLIs (`codex`, `claude`)."""
    found = os.environ.get("CHATGATE_E2E_BIN")
    if not found:
        raise RuntimeError("CHATGATE_E2E_BIN is not set: run these through `make e2e-clients`")
    return Path(found)
