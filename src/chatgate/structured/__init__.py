"""Structured outputs: a validated pydantic instance instead of text.

    person = chatgate.completion(model, messages, response_model=Person)
    result = chatgate.completion_structured(model, messages, Person, max_retries=2)
    result.value, result.raw, result.attempts, result.usage, result.cost
    for partial in chatgate.stream_structured(model, messages, Person): partial.fields

See docs/structured-outputs.md.
"""

from __future__ import annotations

from chatgate.errors import StructuredOutputError
from chatgate.structured.modes import Mode
from chatgate.structured.partial import StructuredPartial, astream_structured, stream_structured
from chatgate.structured.run import (
    Structured,
    StructuredAttempt,
    acompletion_structured,
    completion_structured,
)
from chatgate.structured.schema import OutputSchema, output_schema

__all__ = [
    "Mode",
    "OutputSchema",
    "Structured",
    "StructuredAttempt",
    "StructuredOutputError",
    "StructuredPartial",
    "acompletion_structured",
    "astream_structured",
    "completion_structured",
    "output_schema",
    "stream_structured",
]
