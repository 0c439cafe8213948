"""A copy of this tree's ``src`` with issue 14's request-path fixes taken out, to measure what
they cost: ``bench/gateway.py --ref "$(python bench/without_issue14.py /tmp/no14)"``.

Issue 14 allows its fixes 5 % of throughput on one core. Measured against a commit from before
them (2ade53e), the difference also holds what other issues added to the request path since
(tags, savings, tiers, attempt logs); this copy differs from the tree only by the fixes a
successful request passes through:

- the spend log's write-ahead file (records are no longer appended to it: the database write
  alone, as before the fix);
- the connection limits: header and body read timeouts and the open-connection cap (uvicorn's
  own protocol, keeping only the disconnect hook streams used before);
- the whole-answer client watch (a client that goes away no longer cancels the call);
- the ``n`` ceiling check.

Each change is a text replacement that must apply exactly once: a refactor that moves the code
makes this script fail instead of measuring something else.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

_PLAIN_PROTOCOL = '''

class _PlainWithHook(HttpToolsProtocol):
    """uvicorn's protocol with only the disconnect hook (bench/without_issue14.py)."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hook: DisconnectHook | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._hook is not None:
            self._hook.fire()

    def on_headers_complete(self) -> None:
        _Base.on_headers_complete(self)
        self._hook = self.cycle.scope[DISCONNECT_HOOK] = DisconnectHook()


def protocol(limits: ConnectionLimits) -> Any:
    return functools.partial(_PlainWithHook, limits=limits)
'''

PATCHES: list[tuple[str, str, str]] = [
    (
        "chatgate/cost/usage_sql.py",
        "        self._unlogged.records.append(record)\n"
        "        if self._log_idle:  # the WAL loop sleeps until there is something to write\n"
        "            self._log_idle = False\n"
        "            self._log_wake.set()\n",
        "",
    ),
    ("chatgate/server/serving.py", "    check_n(state, chat)\n", ""),
    (
        "chatgate/server/serving.py",
        "    task = cancel_when_gone(watch)\n",
        "    task = cancel_when_gone(None)\n",
    ),
]


def build(out: Path) -> Path:
    """``out``/src: the copy, patched; returns its path."""
    target = out / "src"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(SRC, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name, old, new in PATCHES:
        path = target / name
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{name}: the code this script removes has moved; update PATCHES")
        path.write_text(text.replace(old, new))
    connections = target / "chatgate/server/connections.py"
    connections.write_text(connections.read_text() + _PLAIN_PROTOCOL)
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/chatgate-without-issue14")))
