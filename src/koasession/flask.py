"""Flask helpers: koasession's session beside Flask's own.

Flask's ``session`` stays Flask's. :func:`init_app` wraps ``app.wsgi_app`` in
:class:`koasession.wsgi.SessionMiddleware`; :func:`koasession_session` returns the current
request's koasession session; :func:`run` drives its coroutines (``regenerate()``, ``save()``)
from a view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import flask

from .session import Session
from .wsgi import DEFAULT_SCOPE_KEY, SessionMiddleware, run

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .options import SessionOptionsDict

__all__ = ["EXTENSION", "init_app", "koasession_session", "run"]

#: The key of the middleware in ``app.extensions``.
EXTENSION = "koasession"


def init_app(
    app: flask.Flask,
    keys: Sequence[str | bytes] | None = None,
    **options: Unpack[SessionOptionsDict],
) -> SessionMiddleware:
    """Wrap ``app.wsgi_app`` in a :class:`~koasession.wsgi.SessionMiddleware` and return it.

    Takes the middleware's options; keep the returned middleware to ``close()`` it (it is also
    closed at exit). Calling it twice on one app is an error: the sessions would nest.
    """
    if EXTENSION in app.extensions:
        raise RuntimeError(f"koasession.flask.init_app was already called for {app.name!r}")
    middleware = SessionMiddleware(app.wsgi_app, keys, **options)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    app.extensions[EXTENSION] = middleware
    return middleware


def koasession_session() -> Session:
    """The koasession session of the current Flask request (not Flask's ``session``)."""
    middleware = flask.current_app.extensions.get(EXTENSION)
    key = middleware.options.scope_key if middleware is not None else DEFAULT_SCOPE_KEY
    session = flask.request.environ.get(key)
    if not isinstance(session, Session):
        raise RuntimeError(
            f"no koasession session in the request environ under {key!r}: call "
            "koasession.flask.init_app(app, keys) first (or wrap app.wsgi_app in "
            "koasession.wsgi.SessionMiddleware)"
        )
    return session
