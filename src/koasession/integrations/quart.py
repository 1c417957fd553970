"""Quart: koasession around ``app.asgi_app``.

Quart has a session of its own (``quart.session``, an itsdangerous-signed cookie named
``session`` that needs ``app.secret_key``). koasession is separate from it: its session lives in
the ASGI scope, ``request.scope["session"]``, and its cookie is ``koa.sess`` by default, so the
two never collide. Use :func:`current_session` inside a request or websocket handler::

    from quart import Quart
    from koasession.integrations.quart import current_session, install

    app = Quart(__name__)
    install(app, keys=[...])

    @app.route("/")
    async def home() -> str:
        session = current_session()
        session["views"] = session.get("views", 0) + 1
        return f"{session['views']} views"

Wrapping ``app.asgi_app`` rather than the app keeps ``app`` a ``Quart`` instance, which Quart's
CLI and test client expect. Quart sends the response start after the handler returns, so the
session commits then. An exception is turned into a 500 response by Quart itself; like every
5xx, it commits nothing automatically (a ``StoreError`` from a session call becomes the
middleware's 503). :func:`install` also registers an error handler for ``StoreError`` that
answers that 503 itself: without it Quart logs every request of a store outage as an unhandled
exception with its traceback, on top of the session's own ``store_error`` event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from quart import Quart, Response, has_request_context, has_websocket_context, request, websocket

from ..asgi import ASGIApp, SessionMiddleware
from ..config import check_second_middleware
from ..enginestate import UNAVAILABLE
from ..errors import NoSessionError, StoreError
from ..options import SessionOptionsDict
from ..session import Session, find_session

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["current_session", "install"]


def install(
    app: Quart, keys: Sequence[str | bytes] | None = None, **options: Unpack[SessionOptionsDict]
) -> SessionMiddleware:
    """Wrap ``app.asgi_app`` in :class:`~koasession.SessionMiddleware`; return the middleware.

    Options are those of :class:`~koasession.SessionMiddleware`. Calling it twice (with
    different ``scope_key`` values) gives the app two independent sessions. It registers an
    error handler for :class:`~koasession.StoreError` answering the middleware's 503 (see the
    module doc); an application's own handler for it, registered later, replaces it.
    """
    middleware = SessionMiddleware(cast("ASGIApp", app.asgi_app), keys, **options)
    inner: object = app.asgi_app
    for _ in range(32):  # through the ASGI middlewares wrapped around the app so far
        if isinstance(inner, SessionMiddleware):
            check_second_middleware(inner.options, middleware.options, "install()")
        inner = getattr(inner, "app", None)
        if inner is None:
            break
    # Quart documents this assignment as the way to add ASGI middleware.
    vars(app)["asgi_app"] = middleware
    app.register_error_handler(StoreError, _store_unavailable)
    return middleware


async def _store_unavailable(error: StoreError) -> Response:
    """The middleware's 503 for a store failure in a handler: the session reported it
    (``store_error``), and a 5xx commits nothing."""
    status, headers, body = UNAVAILABLE
    return Response(
        body,
        status,
        {k.decode("latin-1"): v.decode("latin-1") for k, v in headers},
        content_type="text/plain; charset=utf-8",
    )


def current_session(scope_key: str = "session") -> Session:
    """The koasession :class:`~koasession.Session` of the current Quart request or websocket.

    Raises :class:`~koasession.NoSessionError` (a ``RuntimeError``) outside a request or
    websocket context, or when no koasession middleware put a session under
    ``scope[scope_key]``.
    """
    if has_request_context():
        scope: Any = request.scope
    elif has_websocket_context():
        scope = websocket.scope
    else:
        raise NoSessionError("current_session() needs a Quart request or websocket context")
    fix = "call koasession.integrations.quart.install(app, keys=[...])"
    return find_session(scope, scope_key, where="scope", fix=fix)
