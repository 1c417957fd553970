"""FastAPI: a typed, ready-made session dependency.

Install the middleware around the app (``app.add_middleware(SessionMiddleware, keys=[...])`` or
``SessionMiddleware(app, keys=[...])``), then ask for the session in any path operation or
dependency::

    from koasession.integrations.fastapi import SessionDep

    @app.get("/")
    async def home(session: SessionDep) -> dict[str, int]:
        session["views"] = session.get("views", 0) + 1
        return {"views": session["views"]}

``SessionDep`` is ``Annotated[Session, Depends(session_dependency)]``. For a middleware
installed with another ``scope_key``, build a dependency with :func:`get_session_dependency`.
The dependency works in WebSocket endpoints too: reading only in cookie mode (a WebSocket has
no response to carry a cookie); in store mode ``await session.save()`` writes the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection

from ..session import Session

__all__ = ["SessionDep", "get_session_dependency", "session_dependency"]


def _lookup(connection: HTTPConnection, scope_key: str) -> Session:
    scope: Any = connection.scope
    try:
        value = scope[scope_key]
    except KeyError:
        raise RuntimeError(
            f"no session under scope[{scope_key!r}]: add SessionMiddleware"
            + ("" if scope_key == "session" else f" with scope_key={scope_key!r}")
            + " around the FastAPI app"
        ) from None
    if not isinstance(value, Session):
        raise RuntimeError(
            f"scope[{scope_key!r}] holds {type(value).__name__}, not a koasession Session: "
            "is another session middleware installed under the same scope key?"
        )
    return value


def get_session_dependency(scope_key: str = "session") -> Callable[[HTTPConnection], Session]:
    """A dependency returning the session kept under ``scope[scope_key]``.

    Use it for a middleware built with a non-default ``scope_key``::

        AdminSession = Annotated[Session, Depends(get_session_dependency("admin_session"))]
    """

    def dependency(connection: HTTPConnection) -> Session:
        return _lookup(connection, scope_key)

    dependency.__name__ = f"session_dependency_{scope_key}"
    dependency.__doc__ = f"The koasession Session under scope[{scope_key!r}]."
    return dependency


def session_dependency(connection: HTTPConnection) -> Session:
    """The dependency behind :data:`SessionDep`: the session under ``scope["session"]``."""
    return _lookup(connection, "session")


#: ``session: SessionDep`` in a path operation gives the request's :class:`~koasession.Session`.
SessionDep = Annotated[Session, Depends(session_dependency)]
