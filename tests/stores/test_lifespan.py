"""Stores live with the app: the middleware passes the ASGI lifespan through and closes its
stores at shutdown; a RedisStore made at import time works in every event loop it meets."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from koasession import SessionMiddleware
from koasession.stores import MemoryStore

from .conftest import RUN_ID, PrivateRedis

pytestmark = pytest.mark.timeout(60)

KEYS = ["fEUiDYlyIMgm3Rq--HvPZkn9tWE820p8y_1bGXGK3v4"]
SRC = str(Path(__file__).resolve().parents[2] / "src")


class RecordingStore(MemoryStore):
    """A MemoryStore that writes what happens to it into a shared journal."""

    def __init__(self, journal: list[str], name: str = "store", *, fail_close: bool = False):
        super().__init__()
        self.journal = journal
        self.name = name
        self.fail_close = fail_close

    async def close(self) -> None:
        self.journal.append(f"{self.name} closed")
        if self.fail_close:
            raise RuntimeError("cannot close")


async def plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI app that knows nothing of lifespan (it fails on anything but http)."""
    assert scope["type"] == "http"
    session = scope["session"]
    session["n"] = session.get("n", 0) + 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(session["n"]).encode()})


class LifespanDriver:
    """Plays the server's side of the lifespan protocol against an app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, Any]:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.to_app.get, self.from_app.put))
        await self.to_app.put({"type": "lifespan.startup"})
        return await asyncio.wait_for(self.from_app.get(), 5)

    async def stop(self) -> dict[str, Any]:
        await self.to_app.put({"type": "lifespan.shutdown"})
        answer = await asyncio.wait_for(self.from_app.get(), 5)
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)
        return answer


# -- passing lifespan through ------------------------------------------------------------------


async def test_app_without_lifespan_support_still_starts_and_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[str] = []
    app = SessionMiddleware(plain_app, keys=KEYS, store=RecordingStore(journal))
    driver = LifespanDriver(app)
    with caplog.at_level(logging.INFO, logger="koasession"):
        assert await driver.start() == {"type": "lifespan.startup.complete"}
    assert journal == []
    assert "does not handle the ASGI lifespan protocol" in caplog.text
    assert await driver.stop() == {"type": "lifespan.shutdown.complete"}
    assert journal == ["store closed"]


async def test_app_that_returns_without_answering() -> None:
    journal: list[str] = []

    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # takes the startup message, then gives up
            return
        await plain_app(scope, receive, send)

    driver = LifespanDriver(SessionMiddleware(silent, keys=KEYS, store=RecordingStore(journal)))
    assert await driver.start() == {"type": "lifespan.startup.complete"}
    assert await driver.stop() == {"type": "lifespan.shutdown.complete"}
    assert journal == ["store closed"]


def test_starlette_handlers_run_and_the_store_closes_after_them() -> None:
    journal: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        journal.append("app started")
        yield
        journal.append("app stopped")

    async def count(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse(request.session["n"])

    inner = Starlette(routes=[Route("/", count)], lifespan=lifespan)
    app = SessionMiddleware(inner, keys=KEYS, store=RecordingStore(journal))
    with TestClient(app) as client:
        assert journal == ["app started"]
        assert client.get("/").json() == 1
        assert client.get("/").json() == 2
    assert journal == ["app started", "app stopped", "store closed"]


def test_add_middleware_closes_the_store_too() -> None:
    journal: list[str] = []

    async def count(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse(request.session["n"])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        journal.append("stopped")

    app = Starlette(routes=[Route("/", count)], lifespan=lifespan)
    app.add_middleware(SessionMiddleware, keys=KEYS, store=RecordingStore(journal))
    with TestClient(app) as client:
        assert client.get("/").json() == 1
    assert journal == ["stopped", "store closed"]


async def test_failed_startup_is_reported_as_the_app_said() -> None:
    journal: list[str] = []

    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    driver = LifespanDriver(SessionMiddleware(broken, keys=KEYS, store=RecordingStore(journal)))
    assert await driver.start() == {"type": "lifespan.startup.failed", "message": "no database"}
    assert driver.task is not None
    await asyncio.wait_for(driver.task, 5)
    assert journal == ["store closed"]


async def test_crash_in_the_apps_shutdown_is_reported_and_the_store_still_closes() -> None:
    journal: list[str] = []

    async def crashing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("shutdown hook failed")

    driver = LifespanDriver(SessionMiddleware(crashing, keys=KEYS, store=RecordingStore(journal)))
    assert await driver.start() == {"type": "lifespan.startup.complete"}
    await driver.to_app.put({"type": "lifespan.shutdown"})
    answer = await asyncio.wait_for(driver.from_app.get(), 5)
    assert answer["type"] == "lifespan.shutdown.failed"
    assert "shutdown hook failed" in answer["message"]
    assert driver.task is not None
    with pytest.raises(RuntimeError, match="shutdown hook failed"):
        await asyncio.wait_for(driver.task, 5)
    assert journal == ["store closed"]


async def test_context_store_instances_alive_at_shutdown_are_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[str] = []
    kept: list[Any] = []

    class PerRequest(RecordingStore):
        def __init__(self, ctx: Any) -> None:
            super().__init__(journal, f"context store {len(kept)}", fail_close=not kept)
            kept.append(self)  # outlives its request

    app = SessionMiddleware(plain_app, keys=KEYS, context_store=PerRequest)
    driver = LifespanDriver(app)
    assert await driver.start() == {"type": "lifespan.startup.complete"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(2):
            assert (await client.get("/")).status_code == 200
    with caplog.at_level(logging.ERROR, logger="koasession"):
        assert await driver.stop() == {"type": "lifespan.shutdown.complete"}
    # The first one fails to close: logged, and the second is closed all the same.
    assert sorted(journal) == ["context store 0 closed", "context store 1 closed"]
    assert "closing the session store" in caplog.text


async def test_each_context_store_instance_is_offered_the_store_timeout() -> None:
    offered: list[float] = []

    class PerRequest(MemoryStore):
        def __init__(self, ctx: Any) -> None:
            super().__init__()

        def use_store_timeout(self, seconds: float) -> None:
            offered.append(seconds)

    app = SessionMiddleware(plain_app, keys=KEYS, context_store=PerRequest, store_timeout=1.5)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(2):
            assert (await client.get("/")).status_code == 200
    assert offered == [1.5, 1.5]


# -- a module-level RedisStore across event loops ----------------------------------------------


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own in the shared Redis; its keys are deleted afterwards."""
    import redis

    prefix = f"kstest:{RUN_ID}:lifespan:{secrets.token_hex(4)}:"
    yield prefix
    server = redis.Redis.from_url(redis_url)
    try:
        for key in server.scan_iter(match=f"{prefix}*", count=1000):
            server.delete(key)
    finally:
        server.close()


def _counter_app(store: Any) -> Any:
    async def count(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse(request.session["n"])

    return SessionMiddleware(Starlette(routes=[Route("/", count)]), keys=KEYS, store=store)


def test_three_successive_test_clients_over_one_redis_store(
    redis_url: str, redis_prefix: str
) -> None:
    from koasession.stores.redis import RedisStore

    store = RedisStore(redis_url, key_prefix=redis_prefix)  # as made at import time
    app = _counter_app(store)
    cookies: httpx.Cookies | None = None
    for block in range(3):
        with TestClient(app, cookies=cookies) as client:
            for i in range(3):
                response = client.get("/")
                assert response.status_code == 200
                assert response.json() == block * 3 + i + 1  # the session carries on
            cookies = client.cookies


def test_redis_store_follows_the_loop_without_lifespan(redis_url: str, redis_prefix: str) -> None:
    from koasession.stores.redis import RedisStore

    # No lifespan, nobody closes: each request below runs in a new loop, the previous closed.
    store = RedisStore(redis_url, key_prefix=redis_prefix)
    app = _counter_app(store)
    cookies: httpx.Cookies | None = None
    for n in range(1, 4):
        client = TestClient(app, cookies=cookies)  # no `with`: a new loop for each request
        response = client.get("/")
        assert response.status_code == 200
        assert response.json() == n
        cookies = client.cookies

    async def burst() -> list[Any]:
        # More operations than the pool holds, so its waiting queue is used in this loop.
        await store.set("direct", {"v": 1}, 60)
        try:
            return await asyncio.gather(*(store.get("direct") for _ in range(150)))
        finally:
            await store.destroy("direct")

    for _ in range(3):
        assert asyncio.run(burst()) == [{"v": 1}] * 150


def test_demo_with_redis_store_exits_on_sigint(private_redis: PrivateRedis) -> None:
    import redis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": SRC}
    command = [sys.executable, "-m", "koasession", "demo", "--store", private_redis.url]
    demo = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert demo.poll() is None, demo.communicate()[1].decode()[-2000:]
                assert time.monotonic() < deadline, "the demo did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        server = redis.Redis.from_url(private_redis.url)
        try:
            assert server.dbsize() == 1  # the session went to the store
        finally:
            server.close()
        demo.send_signal(signal.SIGINT)
        _, stderr = demo.communicate(timeout=5)
        # 130: the command line's status for an interrupted command (uvicorn re-raises the
        # signal once it has shut down); what matters is a prompt exit with no traceback.
        assert demo.returncode in (0, 130), stderr.decode()[-2000:]
        assert b"Traceback" not in stderr
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
