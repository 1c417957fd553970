"""Quart: ``install()`` wraps ``app.asgi_app``; ``current_session()`` (examples/quart_app.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from quart import Quart, websocket

from koasession import ConfigurationError, Session, SessionMiddleware, testing
from koasession.integrations.quart import current_session, install

from ._support import check_counter, check_login_logout, client, load_example

KEY = "9mEDrTmJrjr6jaJT7RHm09dceDhtNtR9UmO-Tl71E04"


async def test_counter() -> None:
    http = await check_counter(load_example("quart_app").app)
    await http.aclose()


async def test_login_regenerate_and_logout() -> None:
    await check_login_logout(load_example("quart_app").app)


async def test_install_keeps_a_quart_app() -> None:
    example = load_example("quart_app")
    assert isinstance(example.app, Quart)
    assert isinstance(example.middleware, SessionMiddleware)
    assert example.app.asgi_app is example.middleware
    assert testing.find_middleware(example.app) is example.middleware


async def test_quart_own_session_is_separate() -> None:
    """Quart's cookie session (``quart.session``) and ours coexist under different cookies."""
    from quart import session as quart_session

    app = Quart(__name__)
    app.secret_key = "q" * 32
    install(app, keys=[KEY])

    @app.get("/")
    async def home() -> dict[str, bool]:
        quart_session["theirs"] = True
        current_session()["ours"] = True
        return {"ok": True}

    async with client(app) as http:
        response = await http.get("/")
    names = {line.split("=", 1)[0] for line in response.headers.get_list("set-cookie")}
    assert {"session", "koa.sess", "koa.sess.sig"} <= names
    assert testing.read_session(response, app) == {"ours": True}


@pytest.mark.parametrize(
    ("second", "clash"),
    [({}, "scope_key='session'"), ({"scope_key": "prefs"}, "the cookie key='koa.sess'")],
)
def test_install_twice_on_one_slot_or_cookie_fails_at_start_up(
    second: dict[str, Any], clash: str
) -> None:
    # The same scope_key failed every request with a TypeError from the commit; the same
    # cookie name, each session overwrote the other's cookie.
    app = Quart(__name__)
    first = install(app, keys=[KEY])
    with pytest.raises(ConfigurationError, match=f"install\\(\\) was already called .* {clash}"):
        install(app, keys=[KEY], **second)
    assert app.asgi_app is first


async def test_two_sessions_by_scope_key() -> None:
    app = Quart(__name__)
    install(app, keys=[KEY])
    install(app, keys=[KEY], key="prefs", scope_key="prefs")

    @app.get("/")
    async def home() -> dict[str, bool]:
        assert current_session() is not current_session("prefs")
        current_session("prefs")["theme"] = "dark"
        return {"ok": True}

    async with client(app) as http:
        response = await http.get("/")
    assert testing.read_session(response, app, scope_key="prefs") == {"theme": "dark"}
    assert testing.read_session(response, app) is None


async def test_current_session_errors() -> None:
    with pytest.raises(RuntimeError, match="request or websocket context"):
        current_session()
    app = Quart(__name__)  # no install()

    @app.get("/")
    async def home() -> str:
        current_session()
        return ""  # pragma: no cover

    async with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match="install"):
            current_session()


async def test_websocket_reads_the_session() -> None:
    app = Quart(__name__)
    middleware = install(app, keys=[KEY])

    @app.websocket("/ws")
    async def ws() -> None:
        session = current_session()
        assert isinstance(session, Session)
        await websocket.send_json({"user": session.get("user")})

    cookies = testing.session_cookies(middleware, {"user": "ada"})
    header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    # Drive the ASGI websocket protocol directly (httpx has no WebSocket support).
    sent: list[dict[str, Any]] = []
    incoming: list[dict[str, Any]] = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(0.05)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope: Any = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"cookie", header.encode())],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    asgi: Any = app
    await asgi(scope, receive, send)
    texts = [m.get("text") for m in sent if m["type"] == "websocket.send"]
    assert texts == ['{"user":"ada"}'] or texts == ['{"user": "ada"}']
