"""Starlette: ``request.session`` is the koa session, unchanged (examples/starlette_app.py)."""

from __future__ import annotations

import warnings
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from koasession import Session, SessionMiddleware, testing

from ._support import check_counter, check_login_logout, client, load_example

KEY = "lOQGKAumtl9ttzo8tvwlii3KvXKgoBDA8wJsNZR-XRI"


async def test_counter() -> None:
    app = load_example("starlette_app").app
    http = await check_counter(app)
    await http.aclose()


async def test_login_regenerate_and_logout() -> None:
    await check_login_logout(load_example("starlette_app").app)


async def test_request_session_is_the_koa_session() -> None:
    seen: list[Any] = []

    async def endpoint(request: Request) -> JSONResponse:
        seen.append(request.session)
        request.session["n"] = 1
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(SessionMiddleware, keys=[KEY])],
    )
    async with client(app) as http:
        response = await http.get("/")
    assert isinstance(seen[0], Session)
    assert testing.read_session(response, app) == {"n": 1}


async def test_replacing_request_scope_session() -> None:
    """``request.scope["session"] = {...}`` replaces, ``= None`` removes (koa's setter)."""

    async def replace(request: Request) -> JSONResponse:
        request.scope["session"] = {"only": True}
        return JSONResponse({})

    async def remove(request: Request) -> JSONResponse:
        request.scope["session"] = None
        return JSONResponse({})

    app = SessionMiddleware(
        Starlette(routes=[Route("/replace", replace), Route("/remove", remove)]), keys=[KEY]
    )
    async with client(app) as http:
        testing.set_session(http, app, {"old": 1})
        response = await http.get("/replace")
        assert testing.read_session(response, app) == {"only": True}
        response = await http.get("/remove")
        assert testing.session_removed(response, app)


def test_with_starlette_test_client() -> None:
    """The sync TestClient keeps our cookies in its jar like a browser."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette 1.x nudges towards httpx2
        from starlette.testclient import TestClient

    app = load_example("starlette_app").app
    with TestClient(app) as http:
        assert http.get("/").json()["views"] == 1
        assert http.get("/").json()["views"] == 2
        testing.set_session(http, app, {"views": 41})
        response = http.get("/")
        assert response.json()["views"] == 42
        assert testing.read_session(response, app) == {"views": 42}
