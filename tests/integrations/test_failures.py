"""Crashes, error responses and store outages in every framework and set-up (issue 9 §1, §3).

Each framework is tested wrapped (``SessionMiddleware(app)``, where the framework's own error
handling sits *inside* the session middleware) and installed the framework's way (where an
exception may pass through the session middleware), in cookie mode and in store mode.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from _services import REDIS_URL, unavailable
from koasession import MemoryStore

from ._apps import SETUP_IDS, SETUPS, build

pytestmark = pytest.mark.timeout(60)


class FlakyStore:
    """A MemoryStore behind a switch: ``ok``, ``down`` (raises) or ``hang`` (never answers).

    The switch applies to the operations in ``failing`` (all by default). The store does not
    declare ``in_process``, so ``store_timeout`` applies as for a network store. ``calls``
    records every operation the middleware asked for.
    """

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.mode = "ok"
        self.failing = {"get", "set", "destroy"}
        self.calls: list[str] = []

    def fail(self, mode: str, *operations: str) -> None:
        self.mode = mode
        self.failing = set(operations)

    async def _gate(self, operation: str) -> None:
        self.calls.append(operation)
        if operation not in self.failing:
            return
        if self.mode == "down":
            raise ConnectionError("store down")
        if self.mode == "hang":
            await asyncio.sleep(30)

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        await self._gate("get")
        return await self.inner.get(key, *args, **kwargs)

    async def set(self, key: str, *args: Any, **kwargs: Any) -> Any:
        await self._gate("set")
        return await self.inner.set(key, *args, **kwargs)

    async def destroy(self, key: str, **kwargs: Any) -> None:
        await self._gate("destroy")
        await self.inner.destroy(key, **kwargs)


@pytest.fixture
def koasession_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the ``koasession`` logger (Litestar replaces the root handlers caplog uses)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("koasession")
    handler = Collect(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def session_lines(response: httpx.Response) -> list[str]:
    return [line for line in response.headers.get_list("set-cookie") if line.startswith("koa.sess")]


# -- §1: a crash writes nothing ----------------------------------------------------------------


@pytest.fixture
async def make_store() -> AsyncIterator[Callable[[str], Awaitable[Any]]]:
    """``await make(kind)``: ``None`` (cookie mode), a MemoryStore, or a RedisStore on the real
    server under a key prefix of its own (skipped when Redis is unreachable)."""
    created: list[Any] = []

    async def make(kind: str) -> Any:
        if kind == "cookie":
            return None
        if kind == "memory":
            return MemoryStore()
        from koasession.stores.redis import RedisStore

        store = RedisStore(REDIS_URL, key_prefix=f"kstest-fail:{secrets.token_hex(6)}:")
        created.append(store)
        try:
            await store.client.ping()
        except Exception as exc:
            unavailable(f"Redis unreachable at {REDIS_URL}: {exc}")
        return store

    yield make
    for store in created:
        try:
            async for key in store.client.scan_iter(match=f"{store.key_prefix}*"):
                await store.client.delete(key)
        finally:
            await store.close()


async def stored_balance(store: Any, http: httpx.AsyncClient) -> Any:
    data = await store.get(http.cookies["koa.sess"])
    return None if data is None else data["balance"]


@pytest.mark.parametrize("mode", ["cookie", "memory", "redis"])
@pytest.mark.parametrize(("framework", "setup"), SETUPS, ids=SETUP_IDS)
async def test_crash_writes_nothing_but_an_explicit_save(
    framework: str, setup: str, mode: str, make_store: Callable[[str], Awaitable[Any]]
) -> None:
    store = await make_store(mode)
    app = build(framework, setup, store=store)
    async with client(app) as http:
        assert (await http.get("/balance")).json() == {"balance": 100}
        if store:
            assert await stored_balance(store, http) == 100

        crash = await http.post("/spend")
        assert crash.status_code == 500
        assert session_lines(crash) == []
        assert (await http.get("/balance")).json() == {"balance": 100}
        if store:
            assert await stored_balance(store, http) == 100

        # An explicit save before the error is kept, the crash notwithstanding.
        saved = await http.post("/spend", params={"save": 1})
        assert saved.status_code == 500
        assert (await http.get("/balance")).json() == {"balance": 50}
        if store:
            assert await stored_balance(store, http) == 50


@pytest.mark.parametrize("mode", ["cookie", "store"])
async def test_a_5xx_the_app_answers_itself_commits_nothing(mode: str) -> None:
    store = MemoryStore() if mode == "store" else None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        status = 503 if scope["path"] == "/maintenance" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    from koasession import SessionMiddleware

    async with client(
        SessionMiddleware(app, keys=["x-evbtGuHKDhmuOSXTar6nlNzfjBTrKb0kS9vN_p1KY"], store=store)
    ) as http:
        response = await http.get("/maintenance")
        assert response.status_code == 503
        assert session_lines(response) == []
        if store is not None:
            assert len(store) == 0
        assert session_lines(await http.get("/ok"))  # a 2xx does commit


# -- §3: store outages inside the handler --------------------------------------------------------


@pytest.mark.parametrize("failure", ["down", "hang"])
@pytest.mark.parametrize(("framework", "setup"), SETUPS, ids=SETUP_IDS)
async def test_store_error_in_regenerate_answers_503(
    framework: str, setup: str, failure: str
) -> None:
    store = FlakyStore()
    events: list[tuple[str, Any]] = []
    app = build(
        framework,
        setup,
        store=store,
        store_timeout=0.2,
        on_event=lambda name, payload: events.append((name, payload.get("operation"))),
    )
    async with client(app) as http:
        assert (await http.get("/balance")).status_code == 200
        sid = http.cookies["koa.sess"]
        store.fail(failure, "destroy", "set")  # the load works; the handler's regenerate fails
        response = await http.post("/login")
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.text == "Session store unavailable"
        assert session_lines(response) == []
        assert [e for e in events if e[0] == "store_error"] == [("store_error", "destroy")]
        store.mode = "ok"
        assert (await store.inner.get(sid)) is not None  # the session is intact
        assert (await http.get("/balance")).json() == {"balance": 100}


@pytest.mark.parametrize(("framework", "setup"), SETUPS, ids=SETUP_IDS)
async def test_store_error_in_a_lazy_load_answers_503(framework: str, setup: str) -> None:
    """With ``lazy=True`` the store is read in the handler: a failure there is the same outage
    as a failed eager load, also where the framework renders the exception as its 500 page."""
    store = FlakyStore()
    app = build(framework, setup, store=store, lazy=True)
    async with client(app) as http:
        assert (await http.get("/balance")).json() == {"balance": 100}
        store.fail("down", "get")
        response = await http.get("/balance")
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.text == "Session store unavailable"
        assert session_lines(response) == []


@pytest.mark.parametrize(("framework", "setup"), SETUPS, ids=SETUP_IDS)
async def test_store_error_in_a_handler_logs_no_traceback(framework: str, setup: str) -> None:
    """An outage is logged once, as the ``store_error`` event, not also as the framework's
    "unhandled exception" with a traceback on every request. Quart logs one for any exception
    no error handler takes: ``install()`` registers one; a Quart app wrapped in the middleware
    by hand (the README uses ``install()``) still logs it."""
    store = FlakyStore()
    app = build(framework, setup, store=store, lazy=True)
    records: list[logging.LogRecord] = []
    # Attached once the app has started: Litestar's logging set-up replaces the root logger's
    # handlers then (pytest's caplog included).
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    async with client(app) as http:
        assert (await http.get("/balance")).json() == {"balance": 100}
        store.fail("down", "get")
        logging.getLogger().addHandler(handler)
        try:
            assert (await http.get("/balance")).status_code == 503
        finally:
            logging.getLogger().removeHandler(handler)
    tracebacks = [r.getMessage() for r in records if r.exc_info]
    if (framework, setup) == ("quart", "wrapped"):
        assert tracebacks == ["Exception on request GET /balance"]
    else:
        assert tracebacks == []
    assert [r.getMessage() for r in records if "store_error" in r.getMessage()]


@pytest.mark.parametrize("failure", ["down", "hang"])
@pytest.mark.parametrize(("framework", "setup"), SETUPS, ids=SETUP_IDS)
async def test_store_error_in_regenerate_under_new_session_policy(
    framework: str, setup: str, failure: str
) -> None:
    store = FlakyStore()
    events: list[str] = []
    app = build(
        framework,
        setup,
        store=store,
        store_timeout=0.2,
        on_store_error="new_session",
        on_event=lambda name, payload: events.append(name),
    )
    async with client(app) as http:
        assert (await http.get("/balance")).status_code == 200
        store.fail(failure, "destroy", "set")
        response = await http.post("/login")
        assert response.status_code == 200, response.text
        assert response.json() == {"user": "ada"}
        # Nothing was saved, so no cookie points at it: the old one is cleared.
        lines = session_lines(response)
        assert lines and all("max-age=0" in line for line in lines)
        assert events.count("store_error") == 2  # the destroy and the save
        store.mode = "ok"
        assert "koa.sess" not in http.cookies
        assert (await http.get("/balance")).json() == {"balance": 100}


@pytest.mark.parametrize("policy", ["raise", "new_session"])
@pytest.mark.parametrize("failure", ["down", "hang"])
async def test_store_error_in_save_destroy_and_manual_commit(failure: str, policy: str) -> None:
    from koasession import SessionMiddleware

    store = FlakyStore()
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        session["n"] = session.get("n", 0) + 1
        if scope["path"] == "/save":
            await session.save()
        elif scope["path"] == "/destroy":
            session.destroy()
            await session.manually_commit()
        else:
            await session.manually_commit()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = SessionMiddleware(
        app,
        keys=["x-evbtGuHKDhmuOSXTar6nlNzfjBTrKb0kS9vN_p1KY"],
        store=store,
        store_timeout=0.2,
        on_store_error=policy,
        on_event=lambda name, payload: events.append(name),
    )
    async with client(mw) as http:
        assert (await http.get("/save")).status_code == 200
        sid = http.cookies["koa.sess"]
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        store.fail(failure, "destroy", "set")
        for path in ("/save", "/destroy", "/commit"):
            events.clear()
            http.cookies.clear()  # every request sends the session as it was before the outage
            response = await http.get(path, headers={"cookie": cookie})
            assert events == ["store_error"], path
            if policy == "raise":
                assert response.status_code == 503, path
                assert response.headers["retry-after"] == "5"
                assert session_lines(response) == []
            else:
                assert response.status_code == 200, path
                assert response.text == "ok"
                # Never a cookie pointing at data that was not saved.
                assert all("max-age=0" in line for line in session_lines(response)), path
        store.mode = "ok"
        assert (await store.inner.get(sid) or {}).get("n") == 1  # nothing half-written


async def test_regenerate_of_a_new_session_sends_no_delete() -> None:
    store = FlakyStore()
    app = build("plain", "wrapped", store=store)
    async with client(app) as http:
        response = await http.post("/login")
        assert response.status_code == 200
        assert store.calls == ["set"]
        sid = http.cookies["koa.sess"]
        assert (await store.inner.get(sid))["user"] == "ada"
        store.calls.clear()
        await http.post("/login")  # a stored session: its old id is destroyed
        assert store.calls == ["get", "destroy", "set"]


# -- §6: Vary: Cookie on logout ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cookie", "store"])
@pytest.mark.parametrize(("framework", "setup"), SETUPS, ids=SETUP_IDS)
async def test_logout_response_varies_on_cookie(framework: str, setup: str, mode: str) -> None:
    store = MemoryStore() if mode == "store" else None
    app = build(framework, setup, store=store)
    async with client(app) as http:
        await http.get("/balance")
        logout = await http.post("/logout")
        assert logout.status_code == 200, logout.text
        assert session_lines(logout)
        assert all("max-age=0" in line for line in session_lines(logout))
        assert "cookie" in logout.headers["vary"].lower()
        if store is not None:
            assert len(store) == 0


# -- §5: a change after the response started ---------------------------------------------------


@pytest.mark.parametrize(("framework", "setup"), SETUPS, ids=SETUP_IDS)
async def test_change_while_streaming_is_reported_lost(
    framework: str, setup: str, koasession_log: list[logging.LogRecord]
) -> None:
    events: list[tuple[str, Any]] = []
    app = build(framework, setup, on_event=lambda name, p: events.append((name, p["reason"])))
    async with client(app) as http:
        for _ in range(2):
            response = await http.get("/stream")
            assert response.status_code == 200
            assert response.text.endswith("done")
            assert session_lines(response) == []
    assert events == [("lost", "changed after the response started")] * 2
    warnings = [r for r in koasession_log if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "after the response started" in warnings[0].getMessage()
