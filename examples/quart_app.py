"""Quart with koasession: ``install()`` wraps ``app.asgi_app``; ``current_session()`` reads it.

koasession's session is ``request.scope["session"]``, not Quart's own ``quart.session`` (which
is a separate itsdangerous cookie and needs ``app.secret_key``).

Run: ``hypercorn examples.quart_app:app`` or ``uvicorn examples.quart_app:app`` (set
``KOASESSION_KEY`` to 32+ random bytes).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from quart import Quart, request

from koasession.integrations.quart import current_session, install

# Without KOASESSION_KEY, a random key per start: sessions end when the process restarts.
KEYS = [os.environ.get("KOASESSION_KEY") or secrets.token_urlsafe(32)]

app = Quart(__name__)
middleware = install(app, keys=KEYS)


@app.get("/")
async def home() -> dict[str, Any]:
    """Count this browser's views."""
    session = current_session()
    session["views"] = session.get("views", 0) + 1
    return {"views": session["views"], "user": session.get("user")}


@app.post("/login")
async def login() -> dict[str, Any]:
    """Log in with a fresh session (regenerate: no session fixation)."""
    body = await request.get_json(force=True, silent=True) or {}
    session = current_session()
    session["user"] = str(body.get("user", "anonymous"))
    if body.get("remember"):
        session.max_age = 30 * 86400
    await session.regenerate()
    return {"user": session["user"]}


@app.post("/logout")
async def logout() -> dict[str, Any]:
    """Log out: the session is removed and its cookies expire."""
    current_session().destroy()
    return {"user": None}
