"""asgi: the adapter's contract with servers and frameworks."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from koasession import MemoryStore, SessionMiddleware, get_session

from ._app import KEY, client, cookie_header, cookie_pairs, set_cookies, wrap


async def test_lifespan_reaches_the_app_without_a_session() -> None:
    seen: list[str] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        assert "session" not in scope  # returns without answering: no lifespan support

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await SessionMiddleware(app, keys=[KEY])({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]
    # The middleware completes what the app left unanswered.
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_streaming_response_carries_the_cookie() -> None:
    async def stream(request: Request) -> StreamingResponse:
        request.session["n"] = 1

        async def chunks() -> Any:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks())

    app = SessionMiddleware(Starlette(routes=[Route("/", stream)]), keys=[KEY])
    async with client(app) as c:
        response = await c.get("/")
    assert response.text == "ab"
    assert set(cookie_pairs(response)) == {"koa.sess", "koa.sess.sig"}


def test_websocket_reads_the_session() -> None:
    async def login(request: Request) -> JSONResponse:
        request.session["user"] = "ann"
        return JSONResponse({})

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(dict(websocket.session))
        await websocket.close()

    for store in (None, MemoryStore()):
        starlette = Starlette(routes=[Route("/login", login), WebSocketRoute("/ws", ws)])
        with TestClient(SessionMiddleware(starlette, keys=[KEY], store=store)) as tc:
            tc.get("/login")
            with tc.websocket_connect("/ws") as socket:
                assert socket.receive_json() == {"user": "ann"}


async def test_handler_exception_leaves_nothing_written() -> None:
    store = MemoryStore()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        raise RuntimeError("boom")

    mw = SessionMiddleware(app, keys=[KEY], store=store)
    transport = httpx.ASGITransport(app=mw, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert len(store) == 0


@pytest.mark.parametrize("case", ["saved before the crash", "tampered cookie cleared"])
async def test_the_500_of_a_crash_that_carries_cookies_gets_vary_and_cache_control(
    case: str,
) -> None:
    """The 500 the adapter answers itself for explicit work (a save before the crash, koa's
    clearing of a bad signature) carries the headers of any response that sets or clears the
    session cookie: ``Vary: Cookie`` and ``Cache-Control: private``."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        session = scope["session"]
        session["n"] = session.get("n", 0) + 1
        if case == "saved before the crash":
            await session.save()
        raise RuntimeError("boom")

    headers = {}
    if case == "tampered cookie cleared":
        headers["cookie"] = "koa.sess=eyJuIjoxfQ==; koa.sess.sig=not-the-signature"
    transport = httpx.ASGITransport(
        app=SessionMiddleware(app, keys=[KEY]), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/", headers=headers)
    assert response.status_code == 500
    assert set_cookies(response)
    assert response.headers.get_list("vary") == ["Cookie"]
    assert response.headers.get_list("cache-control") == ["private"]


async def test_exception_turned_into_a_response_inside_still_commits() -> None:
    """Like koa: an error caught by an inner handler still commits (Starlette's 500 page)."""

    async def fail(request: Request) -> JSONResponse:
        request.session["n"] = 1
        raise ValueError("caught below us")

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    starlette = Starlette(routes=[Route("/", fail)], exception_handlers={ValueError: handler})
    async with client(SessionMiddleware(starlette, keys=[KEY])) as c:
        response = await c.get("/")
    assert response.status_code == 400
    assert "koa.sess" in cookie_pairs(response)


async def test_two_middlewares_keep_two_sessions() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["a"] = 1
        scope["admin"]["b"] = 2
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    inner = SessionMiddleware(app, keys=[KEY], key="admin.sess", scope_key="admin")
    outer = SessionMiddleware(inner, keys=[KEY])
    async with client(outer) as c:
        response = await c.get("/")
    assert set(cookie_pairs(response)) == {
        "koa.sess",
        "koa.sess.sig",
        "admin.sess",
        "admin.sess.sig",
    }


async def test_get_session_accepts_requests_and_scopes() -> None:
    async def home(request: Request) -> JSONResponse:
        assert get_session(request) is request.session
        assert get_session(request.scope) is request.session
        with pytest.raises(LookupError, match="scope_key"):
            get_session(request, "missing")
        return JSONResponse({})

    async with client(SessionMiddleware(Starlette(routes=[Route("/", home)]), keys=[KEY])) as c:
        assert (await c.get("/")).status_code == 200


async def test_vary_and_cache_control() -> None:
    def handler(scope: dict[str, Any]) -> Any:
        if scope["path"] == "/write":
            scope["session"]["n"] = 1
        elif scope["path"] == "/read":
            return scope["session"].get("n")
        return None

    app = wrap(handler)
    async with client(app) as c:
        untouched = await c.get("/")
        written = await c.get("/write")
        read = await c.get("/read", headers={"cookie": cookie_header(written)})
    assert "vary" not in untouched.headers and "cache-control" not in untouched.headers
    assert written.headers["vary"] == "Cookie"
    assert written.headers["cache-control"] == "private"
    assert read.headers["vary"] == "Cookie"
    assert "cache-control" not in read.headers


async def test_app_header_names_as_bytearrays_get_the_same_rules() -> None:
    """The ASGI spec's byte strings may come as bytearrays from some apps: the merge compares
    names, so such a Vary is extended and such a Cache-Control kept, not hashed and refused."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        headers = [(bytearray(b"Vary"), b"Accept"), (bytearray(b"Cache-Control"), b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def server_send(message: dict[str, Any]) -> None:
        sent.append(message)

    await _raw_request(SessionMiddleware(app, keys=[KEY]), server_send)
    headers = [(bytes(name).lower(), value) for name, value in sent[0]["headers"]]
    assert (b"vary", b"Accept, Cookie") in headers
    assert (b"cache-control", b"no-store") in headers
    assert (b"cache-control", b"private") not in headers
    assert [n for n, _ in headers].count(b"set-cookie") == 2


async def test_app_headers_are_respected() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        headers = [(b"vary", b"Accept-Encoding"), (b"cache-control", b"no-store")]
        headers.append((b"set-cookie", b"koa.sess=from-app; path=/"))
        headers.append((b"set-cookie", b"other=1; path=/"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async with client(SessionMiddleware(app, keys=[KEY])) as c:
        response = await c.get("/")
    assert response.headers["vary"] == "Accept-Encoding, Cookie"
    assert response.headers["cache-control"] == "no-store"
    names = [line.split("=", 1)[0] for line in set_cookies(response)]
    assert sorted(names) == ["koa.sess", "koa.sess.sig", "other"]
    assert "from-app" not in response.headers.get_list("set-cookie")[0]


async def test_headers_a_hook_sets_get_the_same_rules_as_the_apps() -> None:
    """A hook's ``ctx.set_header`` is the application's own header too (security rule: no
    ``Cache-Control: private`` where the app set its own Cache-Control; a Vary it sets is
    extended, not doubled)."""

    def before_save(ctx: Any, session: Any) -> None:
        ctx.set_header("Cache-Control", "no-store")
        ctx.set_header("Vary", "Accept-Language")

    app = wrap(lambda scope: scope["session"].update(n=1), before_save=before_save)
    async with client(app) as c:
        response = await c.get("/")
    assert response.headers.get_list("cache-control") == ["no-store"]
    assert response.headers.get_list("vary") == ["Accept-Language, Cookie"]
    assert len(set_cookies(response)) == 2


@pytest.mark.parametrize("overwrite", [True, False])
async def test_a_hooks_set_cookie_for_the_session_name_comes_before_the_sessions(
    overwrite: bool,
) -> None:
    """A hook's Set-Cookie for the session cookie's name gives way to the session's line with
    ``overwrite`` (one line per name); without, both go out, the session's last (the line a
    browser keeps), as in koa, where hooks set headers before the commit sets the cookie."""

    def before_save(ctx: Any, session: Any) -> None:
        ctx.set_header("Set-Cookie", "koa.sess=from-hook; path=/")

    app = wrap(
        lambda scope: scope["session"].update(n=1), before_save=before_save, overwrite=overwrite
    )
    async with client(app) as c:
        response = await c.get("/")
    lines = response.headers.get_list("set-cookie")
    names = [line.split("=", 1)[0] for line in lines]
    if overwrite:
        assert names == ["koa.sess", "koa.sess.sig"]
        assert "from-hook" not in lines[0]
    else:
        assert names == ["koa.sess", "koa.sess", "koa.sess.sig"]
        assert lines[0].startswith("koa.sess=from-hook") and "from-hook" not in lines[1]


async def test_secure_cookie_over_http_is_a_clear_error() -> None:
    app = wrap(lambda scope: scope["session"].update(n=1), secure=True)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(
            Exception, match="Cannot send secure cookie over unencrypted connection"
        ):
            await c.get("/")


@pytest.mark.parametrize(
    ("https", "forwarded", "proxy", "secure_attr"),
    [
        (True, None, False, True),
        (False, None, False, False),
        (False, "https", False, False),
        (False, "https", True, True),
        (False, "https, http", True, True),
        (False, "http", True, False),
    ],
)
async def test_secure_attribute_follows_the_connection(
    https: bool, forwarded: str | None, proxy: bool, secure_attr: bool
) -> None:
    app = wrap(lambda scope: scope["session"].update(n=1), proxy=proxy)
    headers = {"x-forwarded-proto": forwarded} if forwarded else {}
    async with client(app, https=https) as c:
        response = await c.get("/", headers=headers)
    assert all(("; secure" in line) == secure_attr for line in set_cookies(response))


async def test_secure_true_behind_a_trusted_proxy_works() -> None:
    app = wrap(lambda scope: scope["session"].update(n=1), secure=True, proxy=True)
    async with client(app) as c:
        response = await c.get("/", headers={"x-forwarded-proto": "https"})
    assert all("; secure" in line for line in set_cookies(response))


async def test_replacing_the_session_with_another_type_is_an_error() -> None:
    def handler(scope: dict[str, Any]) -> None:
        scope["session"] = ["not", "a", "dict"]

    transport = httpx.ASGITransport(app=wrap(handler))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(TypeError, match="only be set to None or a dict"):
            await c.get("/")


async def test_another_middlewares_session_in_the_slot_is_named_a_session() -> None:
    """Two middlewares sharing one ``scope_key``: the outer finds the inner's session in its
    slot; the error names it a Session, not the adapter's private class."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    inner = SessionMiddleware(app, keys=[KEY])

    async def touch_outer(scope: Any, receive: Any, send: Any) -> None:
        scope["session"].get("x")  # the outer's session, loaded before the inner replaces it
        await inner(scope, receive, send)

    outer = SessionMiddleware(touch_outer, keys=[KEY])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(
            TypeError,
            match=r"only be set to None or a dict; got Session, put there by a second session "
            r"middleware with the same scope_key='session': give each middleware its own",
        ):
            await c.get("/")


async def test_store_failure_on_load_answers_503() -> None:
    class Broken(MemoryStore):
        async def get(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("down")

    events: list[str] = []
    app = wrap(lambda scope: None, store=Broken(), on_event=lambda name, p: events.append(name))
    cookie = "koa.sess=abc"
    from ._app import sign

    async with client(app) as c:
        response = await c.get(
            "/", headers={"cookie": f"{cookie}; koa.sess.sig={sign('koa.sess', 'abc')}"}
        )
    assert response.status_code == 503
    assert events == ["store_error"]


async def test_a_send_after_the_app_returned_is_a_clear_error() -> None:
    """The session lets go of the server's send when the request ends (it holds the scope);
    a message sent later through the kept ``send`` says so instead of going anywhere."""
    kept: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        kept.append(send)

    sent: list[dict[str, Any]] = []

    async def server_send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "scheme": "http"}
    await SessionMiddleware(app, keys=[KEY])(scope, receive, server_send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    with pytest.raises(RuntimeError, match=r"'http\.response\.body' message after it returned"):
        await kept[0]({"type": "http.response.body", "body": b"late"})
    assert len(sent) == 2


@pytest.mark.parametrize("touch", [False, True], ids=["untouched", "counter"])
async def test_send_works_as_a_task_group_start_soon_target(touch: bool) -> None:
    """The app's send returns the server's awaitable rather than being a coroutine function
    itself; anyio's ``start_soon``, which insists on getting a coroutine, still takes it."""
    import anyio

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if touch:
            scope["session"]["n"] = 1
        async with anyio.create_task_group() as tg:
            tg.start_soon(send, {"type": "http.response.start", "status": 200, "headers": []})
        async with anyio.create_task_group() as tg:
            tg.start_soon(send, {"type": "http.response.body", "body": b"ok"})

    async with client(SessionMiddleware(app, keys=[KEY])) as c:
        response = await c.get("/")
    assert response.text == "ok"
    assert set(cookie_pairs(response)) == ({"koa.sess", "koa.sess.sig"} if touch else set())


async def _raw_request(app: Any, server_send: Any, cookie: bytes | None = None) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"cookie", cookie)] if cookie else []
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "scheme": "http"}
    await app(scope, receive, server_send)


@pytest.mark.parametrize("touch", [False, True], ids=["untouched", "counter"])
async def test_a_server_send_returning_a_future_still_gives_the_app_coroutines(
    touch: bool,
) -> None:
    """Some servers (Granian) answer ``send`` with a future, not a coroutine. The app must still
    get a coroutine from every call, which ``create_task`` and ``start_soon`` require."""
    import asyncio

    import anyio

    sent: list[dict[str, Any]] = []
    returned: list[Any] = []

    def future_send(message: dict[str, Any]) -> asyncio.Future[None]:
        sent.append(message)  # such a server takes the message at the call
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if touch:
            scope["session"]["n"] = 1
        start = send({"type": "http.response.start", "status": 200, "headers": []})
        returned.append(start)
        await asyncio.create_task(start)
        async with anyio.create_task_group() as tg:
            tg.start_soon(send, {"type": "http.response.body", "body": b"ok"})

    await _raw_request(SessionMiddleware(app, keys=[KEY]), future_send)
    assert asyncio.iscoroutine(returned[0])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    names = {v.split(b"=", 1)[0] for k, v in sent[0]["headers"] if k == b"set-cookie"}
    assert names == ({b"koa.sess", b"koa.sess.sig"} if touch else set())


async def test_a_late_response_start_is_the_same_clear_error() -> None:
    kept: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kept.append(send)  # returns without answering; a task answers later

    async def server_send(message: dict[str, Any]) -> None:
        raise AssertionError("nothing reaches the server")

    await _raw_request(SessionMiddleware(app, keys=[KEY]), server_send)
    with pytest.raises(RuntimeError, match=r"'http\.response\.start' message after it returned"):
        await kept[0]({"type": "http.response.start", "status": 200, "headers": []})


async def test_after_a_503_replaced_the_response_a_late_send_is_a_clear_error() -> None:
    """While the app runs, its messages after our 503 go nowhere; once it returned, a message
    through the kept send raises like any other late one."""

    class DownStore(MemoryStore):
        async def set(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("store down")

    kept: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        kept.append(send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"dropped"})  # after our 503

    sent: list[dict[str, Any]] = []

    async def server_send(message: dict[str, Any]) -> None:
        sent.append(message)

    await _raw_request(SessionMiddleware(app, keys=[KEY], store=DownStore()), server_send)
    assert sent[0]["status"] == 503
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert b"dropped" not in sent[1]["body"]
    with pytest.raises(RuntimeError, match="after it returned"):
        await kept[0]({"type": "http.response.body", "body": b"late"})
    assert len(sent) == 2


@pytest.mark.parametrize("save_first", [False, True], ids=["commit-waits", "after-failed-save"])
async def test_a_start_still_committing_when_the_app_returned_is_a_clear_error(
    save_first: bool,
) -> None:
    """An app that returns while its response start still waits (a store write), or while the
    503 that replaces it is pending (a save already failed): once it returned, neither the start
    nor a later message through the kept send can reach the server, and each raises the clear
    error of a late send instead of vanishing or failing deep inside."""
    import asyncio

    from koasession.errors import StoreError

    class DownStore(MemoryStore):
        async def set(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("store down")

    kept: list[Any] = []
    pending: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        kept.append(send)
        if save_first:
            with pytest.raises(StoreError):
                await scope["session"].save()
        # The app leaves the start to a task and returns before it runs (after the failed save,
        # an error page of its own, which our 503 replaces).
        start = {"type": "http.response.start", "status": 500 if save_first else 200}
        pending.append(asyncio.ensure_future(send(start)))

    sent: list[dict[str, Any]] = []

    async def server_send(message: dict[str, Any]) -> None:
        sent.append(message)

    await _raw_request(SessionMiddleware(app, keys=[KEY], store=DownStore()), server_send)
    with pytest.raises(RuntimeError, match="after it returned"):
        await pending[0]
    with pytest.raises(RuntimeError, match="after it returned"):
        await kept[0]({"type": "http.response.body", "body": b"late"})
    assert sent == []


async def test_a_context_store_is_built_before_the_session_is_in_the_scope() -> None:
    """Store mode loads before the app: the session is published once its engine (and the
    per-request store) exist, so a failing store class leaves no half-made session behind."""
    seen: list[bool] = []
    scopes: list[dict[str, Any]] = []

    class PerRequest(MemoryStore):
        def __init__(self, ctx: Any) -> None:
            seen.append("session" in ctx.scope)
            scopes.append(ctx.scope)
            super().__init__()

    class Refusing(MemoryStore):
        def __init__(self, ctx: Any) -> None:
            scopes.append(ctx.scope)
            raise RuntimeError("no store for this request")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def server_send(message: dict[str, Any]) -> None:
        return None

    await _raw_request(SessionMiddleware(app, keys=[KEY], context_store=PerRequest), server_send)
    assert seen == [False]
    assert "session" in scopes[0]  # published once the store existed
    with pytest.raises(RuntimeError, match="no store for this request"):
        await _raw_request(SessionMiddleware(app, keys=[KEY], context_store=Refusing), server_send)
    assert "session" not in scopes[1]


def wsgi_app(environ: Any, start_response: Any) -> Any:
    return []


@pytest.mark.parametrize(
    ("app", "message"),
    [
        # Keys where the app goes: refused without repeating them (they are secrets).
        ([KEY], "wraps an ASGI app, its first argument; got a list (the keys go in keys=[...])"),
        (None, "got a NoneType"),
        (wsgi_app, "a WSGI app: use koasession.wsgi.SessionMiddleware"),
    ],
)
def test_an_app_it_cannot_call_fails_when_made(app: Any, message: str) -> None:
    # Each was accepted (the keys given too), and every request failed with a 500.
    with pytest.raises(TypeError, match=re.escape(message)) as info:
        SessionMiddleware(app, keys=[KEY])
    assert KEY not in str(info.value)
