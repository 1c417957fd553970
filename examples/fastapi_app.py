"""FastAPI with koasession in store mode: ``SessionDep`` is a typed ready-made dependency.

The session data lives in a server-side store (an in-memory one here; use RedisStore,
PostgresStore or SQLiteStore in production) and the cookie holds only a signed id.

Run: ``uvicorn examples.fastapi_app:app`` (set ``KOASESSION_KEY`` to 32+ random bytes).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from koasession import MemoryStore, SessionMiddleware
from koasession.integrations.fastapi import SessionDep

# Without KOASESSION_KEY, a random key per start: sessions end when the process restarts.
KEYS = [os.environ.get("KOASESSION_KEY") or secrets.token_urlsafe(32)]
store = MemoryStore()

api = FastAPI()


class Login(BaseModel):
    """The login form."""

    user: str
    remember: bool = False


@api.get("/")
async def home(session: SessionDep) -> dict[str, Any]:
    """Count this browser's views."""
    session["views"] = session.get("views", 0) + 1
    return {"views": session["views"], "user": session.get("user"), "id": session.external_key}


@api.post("/login")
async def login(form: Login, session: SessionDep) -> dict[str, Any]:
    """Log in under a new session id (the old one is destroyed in the store)."""
    session["user"] = form.user
    if form.remember:
        session.max_age = 30 * 86400
    await session.regenerate()
    return {"user": form.user, "id": session.external_key}


@api.post("/logout")
async def logout(session: SessionDep) -> dict[str, Any]:
    """Log out: the store entry is destroyed and the cookies expire."""
    session.destroy()
    return {"user": None}


# ``api.add_middleware(SessionMiddleware, keys=KEYS, store=store)`` works too; wrapping the app
# keeps mypy happy (its ParamSpec inference rejects ``**options`` in add_middleware).
app = SessionMiddleware(api, keys=KEYS, store=store)
