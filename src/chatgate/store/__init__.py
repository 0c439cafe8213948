"""SQL storage shared by cost, memory and the server: one async engine per database URL,
schema modules per concern (``schema/``), and versioned migrations (``migrations``).

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) is for scale. Everything
here needs the ``sql`` extra (``postgres`` for PostgreSQL).
"""
