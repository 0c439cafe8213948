"""Tools and safe tool loops (see docs/tools.md).

@chatgate.tool
def get_weather(city: str) -> dict: ...

run = chatgate.run_tools("openai/gpt-4o-mini", messages, tools=[get_weather])
run.content, run.stop_reason, run.rounds, run.usage, run.cost
"""

from __future__ import annotations

from chatgate.tools.definition import Tool, ToolContext, ToolDenied, ToolResult, tool
from chatgate.tools.execute import Status, ToolDecision, idempotency_key
from chatgate.tools.loop import Round, ToolRun, arun_tools, run_tools

__all__ = [
    "Round",
    "Status",
    "Tool",
    "ToolContext",
    "ToolDecision",
    "ToolDenied",
    "ToolResult",
    "ToolRun",
    "arun_tools",
    "idempotency_key",
    "run_tools",
    "tool",
]
