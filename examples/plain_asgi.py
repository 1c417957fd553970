"""A plain ASGI app with koasession: the session is ``scope["session"]``.

Run: ``uvicorn examples.plain_asgi:app`` (set ``KOASESSION_KEY`` to 32+ random bytes).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

from koasession import SessionMiddleware, get_session
from koasession.asgi import Receive, Scope, Send

# Without KOASESSION_KEY, a random key per start: sessions end when the process restarts.
KEYS = [os.environ.get("KOASESSION_KEY") or secrets.token_urlsafe(32)]


async def _respond(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_json(receive: Receive) -> Any:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    raw = b"".join(chunks)
    return json.loads(raw) if raw else {}


async def inner(scope: Scope, receive: Receive, send: Send) -> None:
    """Routes: ``GET /`` counts views, ``POST /login`` and ``POST /logout``."""
    if scope["type"] != "http":
        return
    session = get_session(scope)
    route = (scope["method"], scope["path"])
    if route == ("GET", "/"):
        session["views"] = session.get("views", 0) + 1
        await _respond(send, 200, {"views": session["views"], "user": session.get("user")})
    elif route == ("POST", "/login"):
        body = await _read_json(receive)
        session["user"] = str(body.get("user", "anonymous"))
        if body.get("remember"):
            session.max_age = 30 * 86400  # "remember me": this session lives 30 days
        await session.regenerate()
        await _respond(send, 200, {"user": session["user"]})
    elif route == ("POST", "/logout"):
        scope["session"] = None  # koa's ctx.session = null; session.destroy() does the same
        await _respond(send, 200, {"user": None})
    else:
        await _respond(send, 404, {"error": "not found"})


app = SessionMiddleware(inner, keys=KEYS)
