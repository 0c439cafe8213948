"""The gateway's cross-cutting concerns as pure ASGI middleware, one per file, composed by
``create_app`` (outermost first): usage (the request's context, in-flight count, usage
record), errors (every exception becomes the route's error envelope), auth (who is calling;
admin-only paths). ``MiddlewareStack`` runs the three as one ASGI callable (the gateway's); each
class is also a middleware of its own. See docs/architecture.md."""

from chatgate.server.middleware.auth import AuthMethod, AuthMiddleware
from chatgate.server.middleware.errors import ErrorMiddleware
from chatgate.server.middleware.stack import MiddlewareStack
from chatgate.server.middleware.usage import UsageMiddleware

__all__ = ["AuthMethod", "AuthMiddleware", "ErrorMiddleware", "MiddlewareStack", "UsageMiddleware"]
