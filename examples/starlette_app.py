"""Starlette with koasession: ``request.session`` is the koa session, unchanged.

Run: ``uvicorn examples.starlette_app:app`` (set ``KOASESSION_KEY`` to 32+ random bytes).
"""

from __future__ import annotations

import os
import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from koasession import Session, SessionMiddleware

# Without KOASESSION_KEY, a random key per start: sessions end when the process restarts.
KEYS = [os.environ.get("KOASESSION_KEY") or secrets.token_urlsafe(32)]


def session_of(request: Request) -> Session:
    """``request.session`` typed as the koasession :class:`Session` it is."""
    session = request.session
    assert isinstance(session, Session)
    return session


async def home(request: Request) -> JSONResponse:
    """Count this browser's views."""
    views = request.session.get("views", 0) + 1
    request.session["views"] = views
    return JSONResponse({"views": views, "user": request.session.get("user")})


async def login(request: Request) -> JSONResponse:
    """Log in: a new session id for the same data (no session fixation), plus the user."""
    body = await request.json()
    user = str(body.get("user", "anonymous"))
    session = session_of(request)
    session["user"] = user
    if body.get("remember"):
        session.max_age = 30 * 86400  # "remember me": this session lives 30 days
    await session.regenerate()
    return JSONResponse({"user": user})


async def logout(request: Request) -> JSONResponse:
    """Log out: the session is removed at commit (koa's ``ctx.session = null``)."""
    session_of(request).destroy()
    return JSONResponse({"user": None})


app = SessionMiddleware(
    Starlette(
        routes=[
            Route("/", home),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
        ]
    ),
    keys=KEYS,
)
