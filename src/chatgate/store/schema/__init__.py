"""Table definitions, a module per concern, all on one MetaData (``METADATA``).

A new concern adds a module here with its tables and a migration in
``chatgate.store.migrations``.
"""

from sqlalchemy import MetaData

__all__ = ["METADATA"]

METADATA = MetaData()
