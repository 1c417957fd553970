"""koasession: koa-session for Python ASGI apps.

Signed (or encrypted) cookie sessions by default, server-side stores with only the id in the
cookie, koa's hooks, events, rolling and renewing lifetimes, and ``regenerate()``; flash messages
that koa-flash reads, and CSRF tokens tied to the session.
"""

from __future__ import annotations

from typing import Any

from .asgi import SessionMiddleware
from .context import SessionContext
from .csrf import CSRFMiddleware, csrf_token, verify_csrf
from .envkeys import keys_from_env, keys_from_env_or_random
from .errors import (
    ConfigurationError,
    CookieTooLargeError,
    InsecureConnectionError,
    NoSessionError,
    ResponseStartedError,
    SessionError,
    SessionIdCollision,
    SessionNotLoaded,
    StoreError,
)
from .flash import Flash, flash, peek_flashes, pop_flashes
from .options import SessionOptions, SessionOptionsDict
from .session import Session
from .stores.memory import MemoryStore

__all__ = [
    "CSRFMiddleware",
    "ConfigurationError",
    "CookieTooLargeError",
    "Flash",
    "InsecureConnectionError",
    "MemoryStore",
    "NoSessionError",
    "SessionNotLoaded",
    "ResponseStartedError",
    "Session",
    "SessionContext",
    "SessionError",
    "SessionIdCollision",
    "SessionMiddleware",
    "SessionOptions",
    "SessionOptionsDict",
    "StoreError",
    "csrf_token",
    "flash",
    "get_session",
    "load_session",
    "keys_from_env",
    "keys_from_env_or_random",
    "peek_flashes",
    "pop_flashes",
    "verify_csrf",
]
__version__ = "0.1.0"


def get_session(request_or_scope: Any, scope_key: str = "session") -> Session | Any:
    """The session of a request object (anything with ``.scope``) or of an ASGI scope.

    Raises :class:`NoSessionError` (a ``LookupError``) when there is none.
    """
    scope = getattr(request_or_scope, "scope", request_or_scope)
    try:
        return scope[scope_key]
    except (KeyError, TypeError):
        raise NoSessionError(
            f"no session under scope[{scope_key!r}]: is SessionMiddleware installed "
            "(with this scope_key) around this app?"
        ) from None


async def load_session(request_or_scope: Any, scope_key: str = "session") -> Session:
    """:func:`get_session`, loaded: ``session = await load_session(request)``.

    The one call a handler needs with ``lazy=True`` in store mode (see ``Session.load``).
    """
    session = get_session(request_or_scope, scope_key)
    if not isinstance(session, Session):
        raise NoSessionError(
            f"scope[{scope_key!r}] holds {type(session).__name__}, not a koasession Session"
        )
    return await session.load()
