"""Conversation memory (see docs/memory.md)."""
