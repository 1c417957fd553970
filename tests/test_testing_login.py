"""koasession.testing.login / force_session and read_session(client), through real requests."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from koasession import MemoryStore, SessionMiddleware, testing
from koasession.asgi import Receive, Scope, Send

KEY = "q8Wz1mV0cRkT5nYh3JdLp7XsAe2uFg9BtN4oKiC6yHE"


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    session = scope["session"]
    if scope["path"] == "/visit":
        session["visits"] = session.get("visits", 0) + 1
    body = json.dumps({"data": dict(session), "id": session.external_key}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def starlette_app(**options: Any) -> Starlette:
    async def profile(request: Request) -> JSONResponse:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return JSONResponse(dict(request.session))

    return Starlette(
        routes=[Route("/profile", profile)],
        middleware=[Middleware(SessionMiddleware, keys=[KEY], **options)],
    )


@pytest.mark.parametrize("mode", ["cookie", "store"])
def test_login_with_a_starlette_test_client(mode: str) -> None:
    store = MemoryStore()
    app = starlette_app(**({"store": store} if mode == "store" else {}))
    with TestClient(app) as http:
        cookies = testing.login(http, {"user": "ada"})
        assert set(cookies) == {"koa.sess", "koa.sess.sig"}
        response = http.get("/profile")
        assert response.json() == {"user": "ada", "visits": 1}
        assert testing.read_session(http) == {"user": "ada", "visits": 1}
    if mode == "store":
        assert len(store) == 1


def test_force_session_without_entering_the_client() -> None:
    store = MemoryStore()
    http = TestClient(starlette_app(store=store))
    testing.force_session(http, {"user": "bob"})
    assert http.get("/profile").json() == {"user": "bob", "visits": 1}
    assert testing.read_session(http) == {"user": "bob", "visits": 1}


def test_login_replaces_the_previous_session() -> None:
    with TestClient(starlette_app()) as http:
        testing.login(http, {"user": "ada"})
        testing.login(http, {"user": "bob"})
        assert http.get("/profile").json() == {"user": "bob", "visits": 1}


def client_library(name: str) -> Any:
    """httpx, or httpx2 (its successor, which Starlette 1.x's TestClient prefers)."""
    if name == "httpx":
        return httpx
    return pytest.importorskip("httpx2", reason="httpx2 needs Python 3.11")


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
@pytest.mark.parametrize("mode", ["cookie", "store", "encrypted"])
async def test_alogin_with_an_async_client(mode: str, library: str) -> None:
    lib = client_library(library)
    options: dict[str, Any] = {"store": MemoryStore()} if mode == "store" else {}
    if mode == "encrypted":
        options["encrypt"] = True
    app = SessionMiddleware(echo, keys=[KEY], **options)
    transport = lib.ASGITransport(app=app)
    async with lib.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await testing.alogin(http, {"user": "ada"})
        response = await http.get("/visit")
        assert response.json()["data"] == {"user": "ada", "visits": 1}
        assert await testing.aread_session(http) == {"user": "ada", "visits": 1}
        assert await testing.aread_session(response, app) == {"user": "ada", "visits": 1}
        if mode == "cookie":
            assert testing.read_session(http) == {"user": "ada", "visits": 1}


async def test_sync_login_in_store_mode_inside_an_event_loop_points_to_alogin() -> None:
    app = SessionMiddleware(echo, keys=[KEY], store=MemoryStore())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        with pytest.raises(TypeError, match="alogin"):
            testing.login(http, {"user": "ada"})


def test_read_session_of_a_client_without_a_session_is_none() -> None:
    with TestClient(starlette_app()) as http:
        assert testing.read_session(http) is None


def test_read_session_of_a_forged_client_cookie_fails() -> None:
    with TestClient(starlette_app()) as http:
        testing.login(http, {"user": "ada"})
        http.cookies.set("koa.sess.sig", "forged", domain="testserver.local")
        with pytest.raises(testing.InvalidSessionCookie):
            testing.read_session(http)


def test_a_client_without_a_known_app_needs_middleware() -> None:
    with (
        httpx.Client(base_url="http://testserver") as http,
        pytest.raises(TypeError, match="middleware="),
    ):
        testing.login(http, {"user": "ada"})
    app = SessionMiddleware(echo, keys=[KEY])
    with httpx.Client(base_url="http://testserver") as http:
        testing.login(http, {"user": "ada"}, middleware=app)
        assert testing.read_session(http, app) == {"user": "ada"}


def test_read_session_of_a_response_needs_the_app() -> None:
    with pytest.raises(TypeError, match="pass the app"):
        testing.read_session(httpx.Response(200))
