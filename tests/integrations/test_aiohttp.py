"""aiohttp: ``setup(app, keys=...)``, ``request["session"]`` / ``await get_session(request)``
(examples/aiohttp_app.py), served by aiohttp's own test server."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import ClientResponse, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from _services import REDIS_URL, require_module, unavailable
from koasession import ConfigurationError, MemoryStore, NoSessionError, SessionMiddleware
from koasession.aiohttp import SessionMiddleware as AiohttpSessionMiddleware
from koasession.aiohttp import get_session, setup
from koasession.errors import ResponseStartedError

from ._support import load_example

pytestmark = [
    pytest.mark.timeout(60),
    # aiohttp recommends RequestKey objects; request["session"] is the documented str key.
    pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning"),
]

KEY = "TFh3n1Qc0r8yq5Wk2sXb7eJm4vPz9aLd6uGo3iRt0Yc"


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app)) as http:
        yield http


def cookie_lines(response: ClientResponse, name: str) -> list[str]:
    return [
        line for line in response.headers.getall("Set-Cookie", []) if line.startswith(name + "=")
    ]


def jar(http: TestClient[Any, Any]) -> dict[str, str]:
    return {cookie.key: cookie.value for cookie in http.session.cookie_jar}


async def asgi_reads(cookies: dict[str, str], **options: Any) -> Any:
    """The session the ASGI middleware (same keys) finds under these cookies."""

    async def show(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    app = SessionMiddleware(Starlette(routes=[Route("/", show)]), keys=[KEY], **options)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        header = "; ".join(f"{k}={v}" for k, v in cookies.items())
        return (await client.get("/", headers={"cookie": header})).json()


def counter_app(keys: Sequence[str] = (KEY,), **options: Any) -> web.Application:
    async def home(request: web.Request) -> web.Response:
        session = request["session"]
        session["views"] = session.get("views", 0) + 1
        return web.Response(text=f"{session['views']} views")

    app = web.Application()
    app.router.add_get("/", home)
    setup(app, keys=list(keys), **options)
    return app


# -- the example ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _app_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOASESSION_KEY", KEY)  # the example's keys: the ASGI side uses KEY too


async def test_example_counter_login_logout() -> None:
    example = load_example("aiohttp_app")
    async with serve(example.app) as http:
        first = await http.get("/")
        assert first.status == 200
        assert (await first.json())["views"] == 1
        (line,) = cookie_lines(first, "koa.sess")
        assert "httponly" in line and "samesite=lax" in line and "path=/" in line
        assert cookie_lines(first, "koa.sess.sig")
        assert first.headers["Vary"] == "Cookie"
        assert first.headers["Cache-Control"] == "private"
        assert (await (await http.get("/")).json())["views"] == 2

        before = jar(http)["koa.sess"]
        login = await http.post("/login", json={"user": "ada"})
        assert (await login.json()) == {"user": "ada"}
        assert jar(http)["koa.sess"] != before  # regenerated
        assert "max-age=86400" in cookie_lines(login, "koa.sess")[0]
        assert (await (await http.get("/")).json()) == {"views": 3, "user": "ada"}

        remember = await http.post("/login", json={"user": "ada", "remember": True})
        assert "max-age=2592000" in cookie_lines(remember, "koa.sess")[0]

        logout = await http.post("/logout")
        assert logout.status == 200
        for name in ("koa.sess", "koa.sess.sig"):
            (line,) = cookie_lines(logout, name)
            assert "max-age=0" in line and "01 Jan 1970" in line
        assert "koa.sess" not in jar(http)
        assert (await (await http.get("/")).json()) == {"views": 1, "user": None}


async def test_redirect_after_login_commits() -> None:
    """``raise web.HTTPFound`` is a 3xx response: the session it changed is saved."""
    example = load_example("aiohttp_app")
    async with serve(example.app) as http:
        response = await http.post("/form-login", allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == "/"
        assert cookie_lines(response, "koa.sess") and cookie_lines(response, "koa.sess.sig")
        assert (await (await http.get("/")).json())["user"] == "ada"
    assert await asgi_reads(jar(http)) == {"user": "ada", "views": 1}


async def test_http_exception_4xx_commits_and_5xx_does_not() -> None:
    async def forbidden(request: web.Request) -> web.Response:
        request["session"]["seen"] = True
        raise web.HTTPForbidden(text="no")

    async def unavailable(request: web.Request) -> web.Response:
        request["session"]["half"] = "done"
        raise web.HTTPServiceUnavailable(text="later")

    app = web.Application()
    app.router.add_get("/403", forbidden)
    app.router.add_get("/503", unavailable)
    setup(app, keys=[KEY])
    async with serve(app) as http:
        denied = await http.get("/403")
        assert denied.status == 403 and await denied.text() == "no"
        assert await asgi_reads(jar(http)) == {"seen": True}
        failed = await http.get("/503")
        assert failed.status == 503 and await failed.text() == "later"
        assert not cookie_lines(failed, "koa.sess")


async def test_crash_writes_nothing() -> None:
    store = MemoryStore()

    async def crash(request: web.Request) -> web.Response:
        request["session"]["half"] = "done"
        raise RuntimeError("boom")

    for options in ({}, {"store": store}):
        app = web.Application()
        app.router.add_get("/", crash)
        setup(app, keys=[KEY], **options)
        async with serve(app) as http:
            response = await http.get("/")
            assert response.status == 500
            assert response.headers.getall("Set-Cookie", []) == []
    assert len(store) == 0


async def test_cookies_are_the_asgi_middlewares() -> None:
    """Same keys, same cookie bytes: either adapter reads what the other wrote."""
    async with serve(counter_app()) as http:
        await http.get("/")
        await http.get("/")
        assert await asgi_reads(jar(http)) == {"views": 2}

    async def bump(request: Request) -> JSONResponse:
        request.session["views"] = 41
        return JSONResponse({})

    asgi = SessionMiddleware(Starlette(routes=[Route("/", bump)]), keys=[KEY])
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        cookies = dict((await client.get("/")).cookies)
    async with serve(counter_app()) as http:
        response = await http.get(
            "/", headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        )
        assert await response.text() == "42 views"


async def test_encrypted_cookies_are_shared_too() -> None:
    async with serve(counter_app(encrypt=True)) as http:
        await http.get("/")
        assert await asgi_reads(jar(http), encrypt=True) == {"views": 1}


async def test_streamed_response_carries_the_cookie() -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        request["session"]["streamed"] = True
        response = web.StreamResponse()
        response.content_type = "text/plain"
        await response.prepare(request)
        await response.write(b"chunk 1\n")
        await response.write(b"chunk 2\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", stream)
    setup(app, keys=[KEY])
    async with serve(app) as http:
        response = await http.get("/")
        assert await response.text() == "chunk 1\nchunk 2\n"
        assert cookie_lines(response, "koa.sess")
        assert await asgi_reads(jar(http)) == {"streamed": True}


async def test_handler_cookie_of_the_same_name_is_replaced() -> None:
    async def home(request: web.Request) -> web.Response:
        request["session"]["ours"] = 1
        response = web.Response(text="ok")
        response.set_cookie("koa.sess", "theirs")
        response.set_cookie("other", "kept")
        return response

    app = web.Application()
    app.router.add_get("/", home)
    setup(app, keys=[KEY])
    async with serve(app) as http:
        response = await http.get("/")
        (line,) = cookie_lines(response, "koa.sess")
        assert not line.startswith("koa.sess=theirs")
        assert cookie_lines(response, "other")
        assert await asgi_reads(jar(http)) == {"ours": 1}


@pytest.mark.parametrize("streamed", [False, True])
async def test_handler_headers_beyond_latin1_pass_through_unchanged(streamed: bool) -> None:
    # aiohttp sends str headers as UTF-8; a value echoed from the request (a file name, a
    # search term) may hold any character, and the session's commit must not turn it into a 500.
    echoed = "caf\u00e9 \u20ac \u4e2d"

    async def home(request: web.Request) -> web.StreamResponse:
        request["session"]["n"] = 1
        headers = {"X-Echo": request.query["q"]}
        if not streamed:
            return web.Response(text="ok", headers=headers)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        await response.write(b"ok")
        return response

    app = web.Application()
    app.router.add_get("/", home)
    setup(app, keys=[KEY])
    async with serve(app) as http:
        response = await http.get("/", params={"q": echoed})
        assert response.status == 200
        assert await response.text() == "ok"
        assert response.headers["X-Echo"] == echoed
        assert cookie_lines(response, "koa.sess")
        assert await asgi_reads(jar(http)) == {"n": 1}


async def test_untouched_session_adds_nothing() -> None:
    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="plain", headers={"X-App": "1"})

    app = web.Application()
    app.router.add_get("/", plain)
    setup(app, keys=[KEY])
    async with serve(app) as http:
        response = await http.get("/")
        assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
        assert response.headers["X-App"] == "1"


async def test_an_untouched_session_is_let_go_of_at_the_end() -> None:
    held: list[Any] = []

    async def plain(request: web.Request) -> web.Response:
        held.append(request["session"])
        return web.Response(text="plain")

    app = counter_app()
    app.router.add_get("/plain", plain)
    async with serve(app) as http:
        await http.get("/")  # a cookie to carry
        response = await http.get("/plain")
        assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
    with pytest.raises(ResponseStartedError):  # the request is over: nothing to load it from
        held[0].get("views")


@pytest.mark.parametrize("late", ["change", "removal"])
async def test_a_session_first_used_while_streaming_is_reported_lost(late: str) -> None:
    seen: list[str] = []

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)  # the headers are out
        if late == "change":
            request["session"]["late"] = True
        else:
            request["session"] = None  # a logout, never having read the session
        await response.write(b"done")
        return response

    app = counter_app(on_event=lambda name, payload: seen.append(name))
    app.router.add_get("/stream", stream)
    async with serve(app) as http:
        await http.get("/")  # a session to change or remove
        seen.clear()
        response = await http.get("/stream")
        assert await response.text() == "done"
        assert "Set-Cookie" not in response.headers
    assert seen == ["lost"]


async def test_a_websocket_handler_error_closes_the_socket_cleanly() -> None:
    # Here reading the session queues a re-signed cookie (an older key signed it): the 500
    # with that cookie, right for HTTP, must not be written on the upgraded connection.
    old_key = "Zq3vN8rT1xLw5pKe7YhB2mCj9sDf4GaU6oRi0tVnXc"

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str(str(request["session"]["views"]))
        raise RuntimeError("handler bug")

    async with serve(counter_app(keys=[old_key])) as first:
        await first.get("/")
        cookies = jar(first)
    app = web.Application()
    app.router.add_get("/ws", ws)
    setup(app, keys=[KEY, old_key])
    async with serve(app) as http:
        header = "; ".join(f"{k}={v}" for k, v in cookies.items())
        socket = await http.ws_connect("/ws", headers={"Cookie": header})
        assert await socket.receive_str() == "1"
        message = await socket.receive()
        assert message.type == WSMsgType.CLOSED  # not ERROR: no HTTP bytes on the socket


# -- store mode ----------------------------------------------------------------------------


async def test_memory_store_counter_and_cleanup_closes() -> None:
    class ClosingStore(MemoryStore):
        closed = False

        async def close(self) -> None:
            self.closed = True

    store = ClosingStore()
    async with serve(counter_app(store=store)) as http:
        first = await http.get("/")
        assert await first.text() == "1 views"
        session_id = jar(http)["koa.sess"]
        assert (await store.get(session_id))["views"] == 1
        assert await (await http.get("/")).text() == "2 views"
        assert (await store.get(session_id))["views"] == 2
        assert await asgi_reads(jar(http), store=store) == {"views": 2}
        assert not store.closed
    assert store.closed  # app.on_cleanup ran when the test server stopped


async def test_get_session_loads_a_lazy_session() -> None:
    """``await get_session(request)`` reads the store under ``lazy=True``, as FastAPI's
    SessionDep does; a handler that does not ask for the session makes no store call."""
    calls: list[str] = []

    class CountingStore(MemoryStore):
        async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
            calls.append("get")
            return await super().get(key, *args, **kwargs)

    async def home(request: web.Request) -> web.Response:
        session = await get_session(request)
        session["views"] = session.get("views", 0) + 1
        return web.Response(text=f"{session['views']} views")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/health", health)
    setup(app, keys=[KEY], store=CountingStore(), lazy=True)
    async with serve(app) as http:
        assert await (await http.get("/")).text() == "1 views"
        assert await (await http.get("/")).text() == "2 views"
        assert calls == ["get"]  # the first request had no id
        assert await (await http.get("/health")).text() == "ok"
        assert calls == ["get"]


async def test_redis_store() -> None:
    redis_asyncio = require_module("redis.asyncio")
    from koasession.stores.redis import RedisStore

    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - depends on the machine
        await client.aclose()
        unavailable(f"Redis unreachable at {REDIS_URL}: {exc}")
    prefix = f"koasession-test-aiohttp-{secrets.token_hex(6)}:"
    store = RedisStore(client, key_prefix=prefix)
    try:
        async with serve(counter_app(store=store)) as http:
            await http.get("/")
            assert await (await http.get("/")).text() == "2 views"
            session_id = jar(http)["koa.sess"]
            assert await client.exists(f"{prefix}{session_id}")
            assert (await store.get(session_id))["views"] == 2
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


class DownStore(MemoryStore):
    """A MemoryStore whose calls fail while ``down`` is set."""

    down = False

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise ConnectionError("store down")
        return await super().get(key, *args, **kwargs)

    async def set(self, key: str, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise ConnectionError("store down")
        return await super().set(key, *args, **kwargs)


async def test_store_outage_answers_503() -> None:
    store = DownStore()

    async def stream(request: web.Request) -> web.StreamResponse:
        request["session"]["n"] = 1
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"must not be sent")
        return response

    app = counter_app(store=store)
    app.router.add_get("/stream", stream)
    async with serve(app) as http:
        await http.get("/")  # a session exists
        store.down = True
        load_fails = await http.get("/")
        assert load_fails.status == 503
        assert load_fails.headers["Retry-After"] == "5"
        assert await load_fails.text() == "Session store unavailable"
        http.session.cookie_jar.clear()  # no cookie: nothing to load, the save fails
        save_fails = await http.get("/")
        assert save_fails.status == 503 and "Set-Cookie" not in save_fails.headers
        stream_fails = await http.get("/stream")
        assert stream_fails.status == 503
        assert await stream_fails.text() == "Session store unavailable"


# -- API -----------------------------------------------------------------------------------


async def test_get_session_and_scope_keys() -> None:
    async def home(request: web.Request) -> web.Response:
        session = await get_session(request)
        assert session is request["session"]
        (await get_session(request, "prefs"))["theme"] = "dark"
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", home)
    setup(app, keys=[KEY])
    setup(app, keys=[KEY], key="prefs", scope_key="prefs")
    async with serve(app) as http:
        response = await http.get("/")
        assert await response.text() == "ok"
        assert cookie_lines(response, "prefs") and not cookie_lines(response, "koa.sess")
        assert await asgi_reads(jar(http), key="prefs") == {"theme": "dark"}


async def test_get_session_without_setup() -> None:
    async def home(request: web.Request) -> web.Response:
        try:
            await get_session(request)
        except NoSessionError as exc:
            return web.Response(text=str(exc))
        return web.Response(text="found")

    app = web.Application()
    app.router.add_get("/", home)
    async with serve(app) as http:
        assert "koasession.aiohttp.setup(app" in await (await http.get("/")).text()


def test_bad_configuration_is_clear() -> None:
    with pytest.raises(TypeError, match=r"maxAge.*max_age"):
        AiohttpSessionMiddleware(keys=[KEY], maxAge=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"aiohttp\.web\.Application"):
        setup(object(), keys=[KEY])  # type: ignore[arg-type]


async def test_middleware_in_the_constructor() -> None:
    """``web.Application(middlewares=[SessionMiddleware(...)])`` works without setup()."""

    async def home(request: web.Request) -> web.Response:
        request["session"]["x"] = 1
        return web.Response(text="ok")

    app = web.Application(middlewares=[AiohttpSessionMiddleware(keys=[KEY])])
    app.router.add_get("/", home)
    async with serve(app) as http:
        await http.get("/")
        assert await asgi_reads(jar(http)) == {"x": 1}


async def test_websocket_changes_are_not_committed() -> None:
    async def ws(request: web.Request) -> web.WebSocketResponse:
        request["session"]["ws"] = True
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str("hi")
        await socket.close()
        return socket

    app = web.Application()
    app.router.add_get("/ws", ws)
    setup(app, keys=[KEY])
    async with serve(app) as http:
        socket = await http.ws_connect("/ws")
        assert (await socket.receive_str()) == "hi"
        await socket.close()
        assert "koa.sess" not in jar(http)


async def test_crash_after_a_manual_save_sends_its_cookie() -> None:
    """Explicit work survives a crash: the 500 carries the cookie ``save()`` wrote."""

    async def crash(request: web.Request) -> web.Response:
        session = request["session"]
        session["saved"] = True
        await session.save()
        raise RuntimeError("boom")

    app = web.Application()
    app.router.add_get("/", crash)
    setup(app, keys=[KEY])
    async with serve(app) as http:
        response = await http.get("/")
        assert response.status == 500
        assert cookie_lines(response, "koa.sess")
        # the headers of any response that sets the session cookie
        assert response.headers.getall("Vary") == ["Cookie"]
        assert response.headers.getall("Cache-Control") == ["private"]
    assert await asgi_reads(jar(http)) == {"saved": True}


async def test_example_without_a_key_uses_a_random_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two starts without KOASESSION_KEY: one start's cookie is refused by the other."""
    monkeypatch.delenv("KOASESSION_KEY")
    first, second = load_example("aiohttp_app"), load_example("aiohttp_app")
    async with serve(first.app) as a:
        await a.get("/")
        header = "; ".join(f"{k}={v}" for k, v in jar(a).items())
        assert (await (await a.get("/", headers={"Cookie": header})).json())["views"] == 2
    async with serve(second.app) as b:
        replay = await b.get("/", headers={"Cookie": header})
        assert (await replay.json())["views"] == 1


@pytest.mark.skipif(
    not hasattr(web, "RequestKey"), reason="aiohttp before 3.14 has no RequestKey and no warning"
)
@pytest.mark.parametrize("hidden", [False, True], ids=["shown", "the README's filter"])
async def test_aiohttp_reports_the_string_key_once(hidden: bool) -> None:
    """README: aiohttp 3.14+ reports the string key ``request["session"]`` once per process
    (``NotAppKeyWarning``); the filter the README gives hides it."""
    scope_key = f"session_{secrets.token_hex(4)}"  # a key aiohttp has not seen in this process

    async def count(request: web.Request) -> web.Response:
        session = await get_session(request, scope_key)
        session["n"] = session.get("n", 0) + 1
        return web.Response(text=str(session["n"]))

    app = web.Application()
    app.router.add_get("/", count)
    setup(app, keys=[KEY], scope_key=scope_key)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        if hidden:
            warnings.filterwarnings("ignore", category=web.NotAppKeyWarning)
        async with serve(app) as http:
            assert [await (await http.get("/")).text() for _ in range(3)] == ["1", "2", "3"]
    reported = [w for w in caught if issubclass(w.category, web.NotAppKeyWarning)]
    assert len(reported) == (0 if hidden else 1)


@pytest.mark.parametrize(
    ("second", "clash"),
    [({}, "scope_key='session'"), ({"scope_key": "prefs"}, "the cookie key='koa.sess'")],
)
def test_setup_twice_on_one_slot_or_cookie_fails_at_start_up(
    second: dict[str, Any], clash: str
) -> None:
    # The same scope_key failed every request with a TypeError from the commit ("can only be
    # set to None or a dict; got Session"); the same cookie, each overwrote the other's.
    app = web.Application()
    setup(app, keys=[KEY])
    with pytest.raises(ConfigurationError, match=f"setup\\(\\) was already called .* {clash}"):
        setup(app, keys=[KEY], **second)
    assert len(app.middlewares) == 1
    setup(app, keys=[KEY], key="prefs", scope_key="prefs")  # the documented second session
