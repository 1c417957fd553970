"""``fallback=[...]``: sessions of the old middleware are adopted with nobody logged out.

The old cookies are made by the real libraries (Starlette, starsessions, Flask) and by this
package in cookie mode; the new middleware re-issues each session in its own format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask import session as flask_session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware as StarletteSessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starsessions import CookieStore, load_session
from starsessions import SessionMiddleware as StarsessionsMiddleware

from koasession.fallbacks import FlaskReader, KoaCookieReader, StarletteReader, StarsessionsReader
from koasession.serializers import TaggedSerializer
from koasession.stores import MemoryStore

from ._app import KEY, client, set_cookies, wrap

OLD_SECRET = "c4Kf9Qz2Lm7Xw1Rt8Vb3Np6Hs0Jd5Gy"
DATA = {"user": "ada", "cart": [1, 2]}


def starlette_cookie(data: Mapping[str, Any]) -> str:
    async def login(request: Request) -> JSONResponse:
        request.session.update(data)
        return JSONResponse({})

    middleware = [Middleware(StarletteSessionMiddleware, secret_key=OLD_SECRET)]
    app = Starlette(routes=[Route("/", login)], middleware=middleware)
    with TestClient(app) as c:
        value = c.get("/").cookies.get("session")
    assert value
    return value


def starsessions_cookie(data: Mapping[str, Any]) -> str:
    async def login(request: Request) -> JSONResponse:
        await load_session(request)
        request.session.update(data)
        return JSONResponse({})

    store = CookieStore(secret_key=OLD_SECRET)
    middleware = [Middleware(StarsessionsMiddleware, store=store, cookie_https_only=False)]
    app = Starlette(routes=[Route("/", login)], middleware=middleware)
    with TestClient(app) as c:
        value = c.get("/").cookies.get("session")
    assert value
    return value


def flask_cookie(data: Mapping[str, Any]) -> str:
    app = Flask(__name__)
    app.secret_key = OLD_SECRET

    @app.route("/")
    def login() -> str:
        flask_session.update(data)
        return ""

    c = app.test_client()
    c.get("/")
    cookie = c.get_cookie("session")
    assert cookie is not None
    return cookie.value


def app_with(events: list[tuple[str, Any]], **options: Any) -> Any:
    def handler(scope: dict[str, Any]) -> Any:
        session = scope["session"]
        if scope["path"] == "/count":
            session["visits"] = session.get("visits", 0) + 1
        return dict(session)

    return wrap(handler, on_event=lambda name, payload: events.append((name, payload)), **options)


def jar_after(jar: dict[str, str], response: Any) -> dict[str, str]:
    jar = dict(jar)
    for line in set_cookies(response):
        name, _, value = line.split(";", 1)[0].partition("=")
        if value and "1970" not in line:
            jar[name] = value
        else:
            jar.pop(name, None)
    return jar


def header(jar: Mapping[str, str]) -> dict[str, str]:
    return {"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}


async def migrate(app: Any, jar: dict[str, str]) -> tuple[Any, dict[str, str], Any]:
    """The migrating request, the jar after it, and the next request on the new cookies."""
    async with client(app) as c:
        first = await c.get("/", headers=header(jar))
        jar = jar_after(jar, first)
        second = await c.get("/count", headers=header(jar))
    return first, jar, second


async def test_a_starlette_session_is_adopted_and_its_cookie_removed() -> None:
    events: list[tuple[str, Any]] = []
    app = app_with(events, fallback=[StarletteReader(OLD_SECRET)])
    old = {"session": starlette_cookie(DATA), "other": "kept"}
    first, jar, second = await migrate(app, old)
    assert first.json() == DATA
    assert set(jar) == {"koa.sess", "koa.sess.sig", "other"}  # "session" expired
    assert second.json() == {**DATA, "visits": 1}
    migrated = [payload for name, payload in events if name == "migrated"]
    assert [(p["source"], p["value"]) for p in migrated] == [("starlette", DATA)]


async def test_an_old_cookie_with_our_cookie_name_is_replaced_not_expired() -> None:
    events: list[tuple[str, Any]] = []
    app = app_with(events, key="session", fallback=[StarletteReader(OLD_SECRET)])
    first, jar, second = await migrate(app, {"session": starlette_cookie(DATA)})
    lines = [line for line in set_cookies(first) if line.startswith("session=")]
    assert len(lines) == 1 and "1970" not in lines[0]
    assert set(jar) == {"session", "session.sig"}
    assert second.json() == {**DATA, "visits": 1}


async def test_a_starsessions_session_is_adopted() -> None:
    events: list[tuple[str, Any]] = []
    app = app_with(events, fallback=[StarsessionsReader(OLD_SECRET)])
    first, jar, second = await migrate(app, {"session": starsessions_cookie(DATA)})
    assert first.json() == DATA
    assert "session" not in jar
    assert second.json() == {**DATA, "visits": 1}
    assert ("migrated", "starsessions") in [(n, p.get("source")) for n, p in events]


async def test_a_flask_session_is_adopted_in_store_mode() -> None:
    events: list[tuple[str, Any]] = []
    store = MemoryStore()
    app = app_with(events, store=store, fallback=[FlaskReader(OLD_SECRET)])
    first, jar, second = await migrate(app, {"session": flask_cookie(DATA)})
    assert first.json() == DATA
    assert "session" not in jar
    assert await store.get(jar["koa.sess"]) is not None
    assert second.json() == {**DATA, "visits": 1}


async def test_our_cookie_mode_session_moves_to_a_store() -> None:
    cookie_app = app_with([])
    async with client(cookie_app) as c:
        old = jar_after({}, await c.get("/count"))
    events: list[tuple[str, Any]] = []
    store = MemoryStore()
    reader = KoaCookieReader([KEY])
    app = app_with(events, store=store, fallback=[reader])
    first, jar, second = await migrate(app, old)
    assert first.json() == {"visits": 1}
    sid = jar["koa.sess"]
    stored = await store.get(sid)
    assert stored is not None and stored["visits"] == 2  # after the second request
    assert second.json() == {"visits": 2}


async def test_the_first_matching_reader_wins_and_garbage_is_ignored() -> None:
    events: list[tuple[str, Any]] = []
    readers = [StarletteReader("a-different-old-secret-9d8c7b6a"), StarletteReader(OLD_SECRET)]
    app = app_with(events, fallback=readers, serializer=TaggedSerializer())
    first, _, _ = await migrate(app, {"session": starlette_cookie(DATA)})
    assert first.json() == DATA
    nothing, _, _ = await migrate(app, {"session": "garbage"})
    assert nothing.json() == {}
    assert [n for n, _ in events].count("migrated") == 1


async def test_a_current_session_is_never_replaced_by_an_old_cookie() -> None:
    app = app_with([], fallback=[StarletteReader(OLD_SECRET)])
    async with client(app) as c:
        jar = jar_after({}, await c.get("/count"))
        jar["session"] = starlette_cookie({"user": "mallory"})
        response = await c.get("/", headers=header(jar))
    assert response.json() == {"visits": 1}
