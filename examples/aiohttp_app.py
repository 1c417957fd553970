"""aiohttp with koasession: ``setup(app, keys=...)``; the session is ``request["session"]``.

Run: ``python -m aiohttp.web examples.aiohttp_app:make_app`` (set ``KOASESSION_KEY``, e.g. to
the output of ``koasession keygen``), or ``python examples/aiohttp_app.py`` (the same ``-H HOST``
and ``-P PORT`` options; without them, ``localhost:8080``).
"""

from __future__ import annotations

import argparse
from typing import Any

from aiohttp import web

from koasession import keys_from_env_or_random
from koasession.aiohttp import get_session, setup

# Without KOASESSION_KEY: a random key per start and a warning (sessions end at restart).
KEYS = keys_from_env_or_random(program=__name__)

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    """Count this browser's views."""
    session = await get_session(request)
    session["views"] = session.get("views", 0) + 1
    return web.json_response({"views": session["views"], "user": session.get("user")})


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    """Log in with a fresh session (regenerate: no session fixation)."""
    body: Any = await request.json() if request.can_read_body else {}
    session = await get_session(request)
    session["user"] = str(body.get("user", "anonymous"))
    if body.get("remember"):
        session.max_age = 30 * 86400
    await session.regenerate()
    return web.json_response({"user": session["user"]})


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """Log out: the session is removed and its cookies expire."""
    (await get_session(request)).destroy()
    return web.json_response({"user": None})


@routes.post("/form-login")
async def form_login(request: web.Request) -> web.StreamResponse:
    """Log in and redirect: ``HTTPFound`` is a 3xx response, so the session commits."""
    session = await get_session(request)
    session["user"] = "ada"
    await session.regenerate()
    raise web.HTTPFound("/")


def make_app(argv: list[str] | None = None) -> web.Application:
    """The application (``python -m aiohttp.web examples.aiohttp_app:make_app``, which passes
    the command line's remaining arguments: unused here)."""
    app = web.Application()
    app.add_routes(routes)
    setup(app, keys=KEYS)
    return app


app = make_app()

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve the example on HOST:PORT.")
    parser.add_argument("-H", "--hostname", default="localhost")
    parser.add_argument("-P", "--port", type=int, default=8080)
    options = parser.parse_args()
    web.run_app(app, host=options.hostname, port=options.port)
