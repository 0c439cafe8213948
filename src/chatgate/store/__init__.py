"""chatgate's one SQL store: virtual keys, the spend log, budgets, conversations and the
idempotency keys of side-effect tool calls, on SQLite (the embedded default) or PostgreSQL.

One async engine per database URL (``engine``), table definitions a module per concern
(``schema/``), versioned migrations (``migrations``); the conversation and idempotency
stores (``conversations``, ``idempotency``) implement the protocols in ``records``, which
is all ``memory`` and ``tools`` import until something persists. PostgreSQL needs the
``postgres`` extra (asyncpg).
"""
