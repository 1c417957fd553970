"""Litestar with koasession: ``request.session``, ``set_session()`` and ``clear_session()``.

``request.set_session({...})`` replaces the session data (koa's ``ctx.session = {...}``) and
``request.clear_session()`` removes the session (koa's ``ctx.session = null``): the cookies
expire. ``request.session`` is the koasession Session, with ``regenerate()`` and the rest.

Run: ``uvicorn examples.litestar_app:app`` (set ``KOASESSION_KEY`` to 32+ random bytes).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.params import JSONBody

from koasession import Session
from koasession.integrations.litestar import LitestarSessionMiddleware

# Without KOASESSION_KEY, a random key per start: sessions end when the process restarts.
KEYS = [os.environ.get("KOASESSION_KEY") or secrets.token_urlsafe(32)]


@dataclass
class Login:
    """The login form."""

    user: str
    remember: bool = False


def session_of(request: Request[Any, Any, Any]) -> Session:
    """``request.session`` typed as the koasession :class:`Session` it is."""
    session: object = request.session
    assert isinstance(session, Session)
    return session


@get("/")
async def home(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Count this browser's views."""
    views = request.session.get("views", 0) + 1
    request.session["views"] = views
    return {"views": views, "user": request.session.get("user")}


@post("/login", status_code=200)
async def login(request: Request[Any, Any, Any], data: JSONBody[Login]) -> dict[str, Any]:
    """Log in: replace the data with the user's, then re-issue it under a new signature/id."""
    request.set_session({"user": data.user})  # koa: ctx.session = {user}
    session = session_of(request)
    if data.remember:
        session.max_age = 30 * 86400
    await session.regenerate()
    return {"user": data.user}


@post("/logout", status_code=200)
async def logout(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Log out: koa's ``ctx.session = null``."""
    request.clear_session()
    return {"user": None}


litestar_app = Litestar(route_handlers=[home, login, logout])
app = LitestarSessionMiddleware(litestar_app, keys=KEYS)
