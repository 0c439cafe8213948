"""Provider batch APIs: a batch run submitted to OpenAI's Batch API, Anthropic's Message
Batches API or Gemini's Batch Mode (half price, results within 24 h) instead of being sent
live.

``api`` is what a provider's batch API offers the run (submit, status, results);
``openai``, ``anthropic`` and ``gemini`` speak the wire formats through the existing adapters;
``state`` keeps the submitted batch ids beside the output so a rerun resumes instead of
paying twice; ``plan`` resolves, checks and prices every line before anything is sent;
``run`` submits, polls with backoff and writes the results in the usual output format.
"""

from __future__ import annotations

__all__: list[str] = []
