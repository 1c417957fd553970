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

Typed sessions and logins (pydantic comes with FastAPI):

- ``cart: TypedSession[Cart]`` gives a ``Cart`` (a pydantic model whose fields all have
  defaults) validated from the session; its changes are written back when the handler returns.
  :func:`typed_session` keeps the model under one session key or another ``scope_key``.
- ``user_id: LoggedIn`` gives ``session["user_id"]``, or answers 401 ``{"detail": "Not logged
  in"}`` (no ``WWW-Authenticate``) when it is missing or ``None``. The route is marked in
  ``/openapi.json`` as secured by the session cookie (an ``apiKey`` in ``cookie``), so ``/docs``
  shows the lock. :func:`login_required` sets the session key and the cookie name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Security, WebSocketException, params, status
from fastapi.security import APIKeyCookie
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from ..session import Session, find_session
from ._login import (
    NOT_LOGGED_IN,
    check_cookie_name,
    check_login_arguments,
    logged_in_value,
    scheme_name_for,
)
from ._typed import TypedBinding

__all__ = [
    "LoggedIn",
    "SessionDep",
    "TypedSession",
    "get_session_dependency",
    "login_required",
    "session_dependency",
    "typed_session",
]


def _lookup(connection: HTTPConnection, scope_key: str) -> Session:
    scope: Any = connection.scope
    return find_session(
        scope, scope_key, where="scope", fix="add SessionMiddleware around the FastAPI app"
    )


def get_session_dependency(
    scope_key: str = "session",
) -> Callable[[HTTPConnection], Awaitable[Session]]:
    """A dependency returning the session kept under ``scope[scope_key]``.

    Use it for a middleware built with a non-default ``scope_key``::

        AdminSession = Annotated[Session, Depends(get_session_dependency("admin_session"))]
    """

    async def dependency(connection: HTTPConnection) -> Session:
        return await _lookup(connection, scope_key).load()

    dependency.__name__ = f"session_dependency_{scope_key}"
    dependency.__doc__ = f"The koasession Session under scope[{scope_key!r}]."
    return dependency


async def session_dependency(connection: HTTPConnection) -> Session:
    """The dependency behind :data:`SessionDep`: the session under ``scope["session"]``,
    loaded (so ``lazy=True`` store mode reads the store only for routes that ask for it)."""
    return await _lookup(connection, "session").load()


#: ``session: SessionDep`` in a path operation gives the request's :class:`~koasession.Session`.
SessionDep = Annotated[Session, Depends(session_dependency)]


M = TypeVar("M", bound=BaseModel)

_typed_cache: dict[tuple[type[BaseModel], str | None, str], params.Depends] = {}


def typed_session(
    model: type[BaseModel], *, key: str | None = None, scope_key: str = "session"
) -> params.Depends:
    """The ``Depends(...)`` of a typed session: ``Annotated[Cart, typed_session(Cart, ...)]``.

    ``key=None`` (the default) maps the model's fields onto the top-level session keys and leaves
    other keys alone; ``key="cart"`` keeps the model in ``session["cart"]``. Every field of the
    model needs a default (a new session has no data): a ``TypeError`` here says which does not.
    Data that fails validation falls back to the defaults field by field and the repair is
    written back. Changes are written when the handler returns (not when it raises), and only if
    the model's JSON changed. Needs FastAPI 0.121 or later (``Depends(scope="function")``).
    """
    cache_key = (model, key, scope_key)
    cached = _typed_cache.get(cache_key)
    if cached is not None:
        # The same Depends object each time, so FastAPI solves it once per request and every
        # user of the model in one request shares one instance.
        return cached
    binding = TypedBinding(model, key)

    async def dependency(connection: HTTPConnection) -> AsyncIterator[BaseModel]:
        session = await _lookup(connection, scope_key).load()
        loaded = binding.load(session)
        yield loaded.model
        # Not reached when the handler raises: its half-made changes are dropped.
        binding.write_back(session, loaded)

    dependency.__name__ = f"typed_session_{model.__name__}"
    dependency.__doc__ = f"The session as a {model.__name__}, written back after the handler."
    try:
        # "function": the write-back runs when the handler returns, before the response (and
        # the session cookie) is made; the default runs it after the response is sent.
        depends: params.Depends = Depends(dependency, scope="function")
    except TypeError:  # pragma: no cover - FastAPI before 0.121
        raise RuntimeError(
            "typed sessions need FastAPI 0.121 or later (Depends(scope='function'))"
        ) from None
    _typed_cache[cache_key] = depends
    return depends


class _TypedSessionAlias:
    """``cart: TypedSession[Cart]`` in a path operation: the session as a ``Cart``.

    The same as ``Annotated[Cart, typed_session(Cart)]``: the model's fields are top-level
    session keys; changes are written back when the handler returns.
    """

    __slots__ = ()

    def __class_getitem__(cls, model: type[BaseModel]) -> Any:
        return Annotated[model, typed_session(model)]


if TYPE_CHECKING:
    # Type checkers see ``TypedSession[Cart]`` as ``Cart``; at run time it is the Annotated
    # dependency built by ``_TypedSessionAlias``.
    TypedSession = Annotated[M, "koasession typed session"]
else:
    TypedSession = _TypedSessionAlias
"""``cart: TypedSession[Cart]``: the session validated as a ``Cart``, written back."""


def login_required(
    key: str = "user_id",
    *,
    cookie: str = "koa.sess",
    scope_key: str = "session",
    scheme_name: str | None = None,
) -> Callable[..., Any]:
    """A dependency returning ``session[key]``, answering 401 when it is missing or ``None``.

    The 401 is FastAPI's ``{"detail": "Not logged in"}`` without a ``WWW-Authenticate`` header
    (a session cookie is no HTTP authentication scheme); on a WebSocket the connection is closed
    with code 1008. The session cookie ``cookie`` (the middleware's ``key`` option) is declared
    as an OpenAPI ``apiKey`` security scheme named ``scheme_name`` (by default the cookie name),
    and every route using the dependency references it. A ``cookie`` that is not the
    middleware's is a ``RuntimeError`` at the first request, since the docs would be wrong.
    Use it as ``UserId = Annotated[int, Depends(login_required("user_id"))]``.
    """
    check_login_arguments(key, cookie, scope_key)
    scheme = APIKeyCookie(
        name=cookie,
        scheme_name=scheme_name or scheme_name_for(cookie),
        description="The session cookie set by koasession; log in to get one.",
        auto_error=False,  # the dependency answers its own 401, from the session, not the cookie
    )

    # A default, not Annotated[...]: string annotations (``from __future__``) are resolved in
    # the module's globals, where the local ``scheme`` is not. Async so that FastAPI runs it
    # inline rather than in its thread pool.
    async def dependency(
        connection: HTTPConnection,
        _cookie: str | None = Security(scheme),
    ) -> Any:
        session = await _lookup(connection, scope_key).load()
        check_cookie_name(session, cookie)
        value = logged_in_value(session, key)
        if value is None:
            if connection.scope["type"] == "websocket":
                raise WebSocketException(status.WS_1008_POLICY_VIOLATION, NOT_LOGGED_IN)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, NOT_LOGGED_IN)
        return value

    dependency.__name__ = f"login_required_{key}"
    dependency.__doc__ = f"``session[{key!r}]``, or 401 when there is none."
    return dependency


#: ``user_id: LoggedIn`` gives ``session["user_id"]``, or answers 401 when there is none.
LoggedIn = Annotated[Any, Depends(login_required())]
