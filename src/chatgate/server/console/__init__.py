"""The web console at ``/ui``: a page of plain JS modules over the admin API, signed in with
the master key or an admin virtual key (docs/console.md)."""

from chatgate.server.console.auth import authorize_session, console_session, is_admin_key
from chatgate.server.console.routes import UI_PATH, console

__all__ = ["UI_PATH", "authorize_session", "console", "console_session", "is_admin_key"]
