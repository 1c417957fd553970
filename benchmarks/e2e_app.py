"""The Starlette app served by uvicorn in the end-to-end run; ``BENCH_E2E`` picks the set-up.

``bare``: no session middleware, the handler answers without a session. The others run a
read-modify-write counter through koasession, Starlette's SessionMiddleware, starsessions, or
``floor`` (benchmarks/floor.py: the counter's wire work in as little Python as possible; with
orjson, ``floor-orjson``), or
``parts`` (benchmarks/parts.py: koasession's own pieces for that work, without its engine).
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

KEY = "I1cqobbcERqZlXvRYLhB82BbjJ7sjJtktOu_Skgzmw8"
MODE = os.environ.get("BENCH_E2E", "bare")


async def bare(request: Request) -> PlainTextResponse:
    return PlainTextResponse("1 views")


async def counter(request: Request) -> PlainTextResponse:
    if MODE == "starsessions":
        from starsessions import load_session

        await load_session(request)
    n = request.session.get("views", 0) + 1
    request.session["views"] = n
    return PlainTextResponse(f"{n} views")


def build() -> Any:
    inner = Starlette(routes=[Route("/", bare if MODE == "bare" else counter)])
    if MODE == "bare":
        return inner
    if MODE == "koasession":
        from koasession import SessionMiddleware

        return SessionMiddleware(inner, keys=[KEY])
    if MODE == "koasession-sha1":
        from koasession import SessionMiddleware

        return SessionMiddleware(inner, keys=[KEY], algorithm="sha1")
    if MODE in ("floor", "floor-orjson"):
        # the in-process harness's reference rows, served the same way
        from floor import Floor, orjson_codec

        if MODE == "floor":
            return Floor(inner, KEY)
        codec = orjson_codec()
        if codec is None:
            raise SystemExit("BENCH_E2E=floor-orjson needs orjson (pip install orjson)")
        return Floor(inner, KEY, *codec)
    if MODE == "parts":
        from parts import Parts  # koasession's pieces without its engine (benchmarks/parts.py)

        return Parts(inner, KEY)
    if MODE == "starlette":
        from starlette.middleware.sessions import SessionMiddleware as StarletteSessions

        return StarletteSessions(inner, secret_key=KEY)
    if MODE == "starsessions":
        import starsessions

        return starsessions.SessionMiddleware(
            inner,
            store=starsessions.CookieStore(secret_key=KEY),
            lifetime=86400,
            cookie_https_only=False,
        )
    raise SystemExit(f"unknown BENCH_E2E={MODE!r}")


app = build()
