"""The WSGI adapter (koasession.wsgi) through werkzeug's test client: the same engine as ASGI."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from _services import REDIS_URL, require_redis
from koasession import MemoryStore, Session
from koasession.errors import ResponseStartedError, StoreError
from koasession.wsgi import SessionMiddleware, run

KEY = "t7Qx2bKzVnW9pLr4MmYc8dHs3JgE6aUo1fNiR5vZkXw"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def session(environ: Environ) -> Session:
    value = environ["koasession.session"]
    assert isinstance(value, Session)
    return value


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Routes: / counts views, /login regenerates, /logout removes, /fail a 500, /crash raises."""
    path = environ["PATH_INFO"]
    s = session(environ)
    status = "200 OK"
    if path == "/":
        s["views"] = s.get("views", 0) + 1
    elif path == "/login":
        s["user"] = "ada"
        run(s.regenerate())
    elif path == "/logout":
        environ["koasession.session"] = None  # koa's ctx.session = null
    elif path == "/fail":
        s["half"] = "done"
        status = "500 Internal Server Error"
    elif path == "/crash":
        s["half"] = "done"
        raise RuntimeError("boom")
    elif path == "/save-then-crash":
        s["saved"] = True
        run(s.save())
        raise RuntimeError("boom")
    current = environ["koasession.session"]
    body = json.dumps(None if current is None else dict(current)).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [body]


def set_cookies(response: TestResponse, name: str = "koa.sess") -> list[str]:
    return [line for line in response.headers.getlist("Set-Cookie") if line.startswith(name + "=")]


def test_counter_in_cookie_mode() -> None:
    http = Client(SessionMiddleware(app, keys=[KEY]))
    first = http.get("/")
    assert first.status_code == 200 and first.json == {"views": 1}
    (line,) = set_cookies(first)
    assert "httponly" in line and "samesite=lax" in line and "path=/" in line
    assert set_cookies(first, "koa.sess.sig")
    assert first.headers["Vary"] == "Cookie" and first.headers["Cache-Control"] == "private"
    assert first.headers["Content-Type"] == "application/json"  # the app's headers are kept
    assert http.get("/").json == {"views": 2}
    assert http.get("/").json == {"views": 3}


def test_no_cookie_without_a_change() -> None:
    def reader(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        views = session(environ).get("views")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(views).encode()]

    untouched = Client(SessionMiddleware(reader, keys=[KEY])).get("/")
    assert untouched.get_data() == b"None" and not untouched.headers.getlist("Set-Cookie")
    assert untouched.headers["Vary"] == "Cookie"  # it read the session


def test_tampered_cookie_starts_fresh() -> None:
    http = Client(SessionMiddleware(app, keys=[KEY]))
    http.get("/")
    http.set_cookie("koa.sess.sig", "forged")
    assert http.get("/").json == {"views": 1}


def test_scope_key_is_configurable() -> None:
    seen: list[object] = []

    def other(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(environ.get("koasession.session"))
        environ["mine"]["n"] = 1
        start_response("200 OK", [])
        return [b""]

    response = Client(SessionMiddleware(other, keys=[KEY], scope_key="mine")).get("/")
    assert seen == [None] and set_cookies(response)


def test_login_regenerates_and_logout_removes_in_store_mode() -> None:
    store = MemoryStore()
    http = Client(SessionMiddleware(app, keys=[KEY], store=store))
    assert http.get("/").json == {"views": 1}
    before = http.get_cookie("koa.sess")
    assert before is not None
    assert asyncio.run(store.get(before.value, 86400)) is not None

    login = http.post("/login")
    assert login.json == {"views": 1, "user": "ada"}
    after = http.get_cookie("koa.sess")
    assert after is not None and after.value != before.value
    assert asyncio.run(store.get(before.value, 86400)) is None  # the old id is gone
    assert asyncio.run(store.get(after.value, 86400))["user"] == "ada"
    assert http.get("/").json == {"views": 2, "user": "ada"}

    logout = http.post("/logout")
    assert logout.json is None
    assert "max-age=0" in set_cookies(logout)[0]
    assert asyncio.run(store.get(after.value, 86400)) is None
    assert http.get_cookie("koa.sess") is None
    assert http.get("/").json == {"views": 1}


def test_5xx_response_is_not_committed() -> None:
    store = MemoryStore()
    http = Client(SessionMiddleware(app, keys=[KEY], store=store))
    http.get("/")
    key = http.get_cookie("koa.sess")
    assert key is not None
    failed = http.get("/fail")
    assert failed.status_code == 500 and not failed.headers.getlist("Set-Cookie")
    assert "half" not in asyncio.run(store.get(key.value, 86400))


def test_exception_from_the_app_writes_nothing() -> None:
    store = MemoryStore()
    http = Client(SessionMiddleware(app, keys=[KEY], store=store))
    http.get("/")
    key = http.get_cookie("koa.sess")
    assert key is not None
    with pytest.raises(RuntimeError, match="boom"):
        http.get("/crash")
    stored = asyncio.run(store.get(key.value, 86400))
    assert stored["views"] == 1 and "half" not in stored


def test_manual_save_before_a_crash_still_reaches_the_browser() -> None:
    """An explicit save is work done: the 500 carries its cookie (as in ASGI)."""
    http = Client(SessionMiddleware(app, keys=[KEY]))
    response = http.get("/save-then-crash")
    assert response.status_code == 500
    assert set_cookies(response)
    # the headers of any response that sets the session cookie
    assert response.headers.getlist("Vary") == ["Cookie"]
    assert response.headers.getlist("Cache-Control") == ["private"]
    assert http.get("/").json == {"saved": True, "views": 1}


class BrokenStore(MemoryStore):
    """A store whose ``get`` or ``set`` fails like a server that went away."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing

    async def get(self, key: str, max_age: Any, **kw: Any) -> Any:
        if self.failing == "get":
            raise ConnectionError("store down")
        return await super().get(key, max_age, **kw)

    async def set(self, key: str, data: Any, max_age: Any, **kw: Any) -> Any:
        if self.failing == "set":
            raise ConnectionError("store down")
        return await super().set(key, data, max_age, **kw)


@pytest.mark.parametrize("failing", ["get", "set"])
def test_store_outage_answers_503(failing: str) -> None:
    calls: list[str] = []

    def counting(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        return app(environ, start_response)

    store = BrokenStore("none")
    http = Client(SessionMiddleware(counting, keys=[KEY], store=store))
    http.get("/")
    store.failing = failing
    response = http.get("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_data() == b"Session store unavailable"
    assert not response.headers.getlist("Set-Cookie")
    assert len(calls) == (1 if failing == "get" else 2)  # a failed load never runs the app


def test_store_error_escaping_the_app_answers_503() -> None:
    def saver(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        session(environ)["n"] = 1
        run(session(environ).save())  # raises StoreError, which the app does not catch
        start_response("200 OK", [])
        return [b"unreachable"]

    response = Client(SessionMiddleware(saver, keys=[KEY], store=BrokenStore("set"))).get("/")
    assert response.status_code == 503 and response.get_data() == b"Session store unavailable"


def test_store_error_caught_by_the_app_is_the_apps_to_answer() -> None:
    def saver(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            run(session(environ).save())
        except StoreError:
            start_response("200 OK", [])
            return [b"degraded"]
        raise AssertionError("the save should have failed")

    response = Client(SessionMiddleware(saver, keys=[KEY], store=BrokenStore("set"))).get("/")
    assert response.status_code == 200 and response.get_data() == b"degraded"


def test_streamed_body_carries_the_cookie_set_before_start_response() -> None:
    events: list[tuple[str, Any]] = []

    def streaming(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        s = session(environ)
        s["streamed"] = True
        start_response("200 OK", [("Content-Type", "text/plain")])  # called lazily, as allowed
        yield b"one "
        s["late"] = True  # after the commit: reported, never sent
        yield b"two"

    middleware = SessionMiddleware(
        streaming, keys=[KEY], on_event=lambda name, payload: events.append((name, payload))
    )
    http = Client(middleware)
    response = http.get("/", buffered=True)  # iterated and closed, as a server does
    assert response.get_data() == b"one two"
    assert set_cookies(response)
    assert [name for name, _ in events] == ["lost"]
    other = Client(SessionMiddleware(app, keys=[KEY]))
    for name in ("koa.sess", "koa.sess.sig"):
        cookie = http.get_cookie(name)
        assert cookie is not None
        other.set_cookie(name, cookie.value)
    assert other.get("/").json == {"streamed": True, "views": 1}


def test_async_event_listener_is_awaited() -> None:
    seen: list[str] = []

    async def listener(name: str, payload: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen.append(name)

    http = Client(SessionMiddleware(app, keys=[KEY], on_event=listener))
    http.set_cookie("koa.sess", "garbage")
    http.set_cookie("koa.sess.sig", "forged")
    assert http.get("/", buffered=True).json == {"views": 1}
    assert seen == ["tampered"]


def test_async_before_save_hook_runs() -> None:
    async def before_save(ctx: Any, s: Session) -> None:
        await asyncio.sleep(0)
        s["stamped"] = True

    http = Client(SessionMiddleware(app, keys=[KEY], before_save=before_save))
    http.get("/")
    assert http.get("/").json == {"views": 2, "stamped": True}


def test_run_outside_a_request_is_a_clear_error() -> None:
    async def nothing() -> None:
        return None

    failure: list[BaseException] = []

    def elsewhere() -> None:  # a fresh thread: no request has run in its context
        try:
            run(nothing())
        except RuntimeError as exc:
            failure.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert failure and "SessionMiddleware" in str(failure[0])


def test_close_closes_the_store_and_stops_the_loop_thread() -> None:
    closed: list[bool] = []

    class ClosingStore(MemoryStore):
        async def close(self) -> None:
            closed.append(True)

    before = set(threading.enumerate())
    middleware = SessionMiddleware(app, keys=[KEY], store=ClosingStore())
    Client(middleware).get("/")
    loops = [t for t in threading.enumerate() if t not in before]
    assert len(loops) == 1 and loops[0].daemon  # nothing keeps the process alive
    middleware.close()
    middleware.close()  # idempotent (it also runs at exit)
    assert closed == [True]
    assert not any(t.is_alive() for t in loops)


def test_bad_configuration_is_refused_up_front() -> None:
    with pytest.raises(TypeError, match="maxAge"):
        SessionMiddleware(app, keys=[KEY], maxAge=1000)  # type: ignore[call-arg]


@pytest.fixture
def redis_store() -> Iterator[Any]:
    import redis

    probe = redis.Redis.from_url(require_redis(), socket_connect_timeout=2)
    from koasession.stores.redis import RedisStore

    prefix = f"koasession-wsgi:{uuid.uuid4().hex[:12]}:"
    yield RedisStore(REDIS_URL, key_prefix=prefix)
    keys = list(probe.scan_iter(match=f"{prefix}*"))
    if keys:
        probe.delete(*keys)
    probe.close()


def test_store_mode_with_real_redis(redis_store: Any) -> None:
    middleware = SessionMiddleware(app, keys=[KEY], store=redis_store)
    http = Client(middleware)
    assert http.get("/").json == {"views": 1}
    assert http.get("/").json == {"views": 2}
    sid = http.get_cookie("koa.sess")
    assert sid is not None
    import redis

    raw = redis.Redis.from_url(REDIS_URL).get(redis_store.key_prefix + sid.value)
    assert raw is not None and json.loads(raw)["views"] == 2
    assert http.post("/login").json == {"views": 2, "user": "ada"}
    assert http.get("/").json == {"views": 3, "user": "ada"}
    middleware.close()


def test_per_request_async_hook_finishes_on_the_loop() -> None:
    """A coroutine that does suspend in cookie mode is finished on the middleware's loop."""

    async def before_save(ctx: Any, s: Session) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)  # needs a running loop
        s["stamped"] = True

    def stamping(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        session(environ).options.before_save = before_save
        return app(environ, start_response)

    middleware = SessionMiddleware(stamping, keys=[KEY])
    http = Client(middleware)
    http.get("/")
    assert http.get("/").json == {"views": 2, "stamped": True}
    middleware.close()


def test_forwarded_https_makes_secure_cookies_behind_a_proxy() -> None:
    http = Client(SessionMiddleware(app, keys=[KEY], proxy=True))
    response = http.get("/", headers={"X-Forwarded-Proto": "https"})
    assert all("secure" in line for line in response.headers.getlist("Set-Cookie"))
    plain = Client(SessionMiddleware(app, keys=[KEY], proxy=True)).get("/")
    assert not any("secure" in line for line in plain.headers.getlist("Set-Cookie"))


def test_failed_commit_in_a_lazy_stream_answers_503() -> None:
    def streaming(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        session(environ)["n"] = 1
        start_response("200 OK", [])  # inside the first iteration
        yield b"never sent"

    middleware = SessionMiddleware(streaming, keys=[KEY], store=BrokenStore("set"))
    response = Client(middleware).get("/", buffered=True)
    assert response.status_code == 503
    assert response.get_data() == b"Session store unavailable"


# -- the session's engine is made on first use ----------------------------------------------------


def _with_a_session(
    handler: Callable[[Environ], Iterator[bytes]],
) -> tuple[TestResponse, list[str]]:
    """GET / carrying the cookie of an existing session, answered by an app that calls
    start_response and then runs ``handler(environ)`` as its body; the body read and closed as
    a server does. The response and the events emitted."""
    http = Client(SessionMiddleware(app, keys=[KEY]))
    http.get("/")
    events: list[str] = []

    def wsgi_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return handler(environ)

    http.application = SessionMiddleware(
        wsgi_app, keys=[KEY], on_event=lambda name, _: events.append(name)
    )
    response = http.get("/")
    response.get_data()
    response.close()
    return response, events


def test_an_untouched_session_adds_nothing_and_lets_go_of_the_request() -> None:
    held: list[Session] = []

    def untouched(environ: Environ) -> Iterator[bytes]:
        held.append(session(environ))
        yield b"ok"

    response, events = _with_a_session(untouched)
    assert response.get_data() == b"ok"
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
    assert events == []
    with pytest.raises(ResponseStartedError):  # the request is over: nothing to load it from
        held[0].get("views")


@pytest.mark.parametrize("late", ["change", "removal"])
def test_a_session_first_used_while_streaming_is_reported_lost(late: str) -> None:
    def body(environ: Environ) -> Iterator[bytes]:
        yield b"a"  # the headers are out
        if late == "change":
            session(environ)["views"] = 9
        else:
            environ["koasession.session"] = None  # a logout, never having read the session
        yield b"b"

    response, events = _with_a_session(body)
    assert response.get_data() == b"ab"
    assert "Set-Cookie" not in response.headers
    assert events == ["lost"]


def test_removing_an_unread_session_clears_its_cookie() -> None:
    http = Client(SessionMiddleware(app, keys=[KEY]))
    http.get("/")
    logout = http.get("/logout")  # sets the environ's session to None without reading it
    assert [line.split(";")[0] for line in set_cookies(logout)] == ["koa.sess="]
    assert http.get("/").json == {"views": 1}


def test_requests_leave_no_reference_cycles() -> None:
    def untouched(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    def garbage(wsgi_app: Any) -> int:
        """Objects in reference cycles after 100 requests, test client and all."""
        http = Client(wsgi_app)
        http.get("/").close()
        gc.collect()
        gc.disable()
        try:
            for _ in range(100):
                http.get("/").close()
            return gc.collect()
        finally:
            gc.enable()

    # werkzeug's test client leaves cycles of its own: the bare app is the control.
    control = garbage(untouched)
    assert garbage(SessionMiddleware(untouched, keys=[KEY])) == control
    assert garbage(SessionMiddleware(app, keys=[KEY])) == control


def test_start_response_corrected_after_a_malformed_status_commits() -> None:
    def retrying(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        session(environ)["x"] = 1
        try:
            start_response("OK", [("Content-Type", "text/plain")])  # no code
        except ValueError:
            start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hi"]

    response = Client(SessionMiddleware(retrying, keys=[KEY])).get("/")
    assert response.status_code == 200
    assert set_cookies(response) and set_cookies(response, "koa.sess.sig")


async def _asgi_app(scope: Any, receive: Any, send: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ([KEY], "wraps a WSGI app, its first argument; got a list (the keys go in keys=[...])"),
        (_asgi_app, "this one is async (ASGI): use koasession.SessionMiddleware"),
    ],
)
def test_an_app_it_cannot_call_fails_when_made(app: Any, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)) as info:
        SessionMiddleware(app, keys=[KEY])
    assert KEY not in str(info.value)  # the list given as the app was shown whole before
