"""PostgresStore under outages, on a private cluster (issue 16 §1 and §3, issue 9 §7).

- Paused (SIGSTOP on every process of the cluster): more concurrent requests than the pool
  holds all answer within ``store_timeout`` plus a margin, in both ``on_store_error`` modes, and
  the store works again once the server resumes.
- Killed and restarted: requests are healthy within about two seconds of the server's return,
  and connections that were pooled before the crash do not fail requests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from koasession import SessionMiddleware
from koasession.stores.postgres import PostgresStore

from ._private_pg import PrivatePostgres, private_postgres

__all__ = ["private_postgres"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(120)

KEYS = ["u7Y0Whw_qHcciocmRzcFMV97BJ0N1qTa5Lq1peuETlU"]
COOKIE = "koa.sess"
POOL_SIZE = 10
STORE_TIMEOUT = 1.0


def make_app(store: Any, **options: Any) -> tuple[SessionMiddleware, list[str]]:
    """A views counter over ``store``; returns it and the names of the events it emitted."""
    events: list[str] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        if scope["path"] == "/inc":
            session["views"] = session.get("views", 0) + 1
        body = json.dumps(dict(session)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    app = SessionMiddleware(
        inner,
        keys=KEYS,
        store=store,
        store_timeout=STORE_TIMEOUT,
        on_event=lambda name, payload: events.append(name),
        allow_weak_keys=True,
        **options,
    )
    return app, events


async def call(app: Any, path: str, cookie: str | None = None) -> tuple[httpx.Response, float]:
    """One request from a fresh client; the response and how long it took."""
    transport = httpx.ASGITransport(app=app)
    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(path, headers={"cookie": cookie} if cookie else {})
    return response, time.monotonic() - started


def session_cookie(response: httpx.Response) -> str:
    """The Cookie header a browser would send back (the id and its signature)."""
    pairs = [line.split(";", 1)[0] for line in response.headers.get_list("set-cookie")]
    assert any(p.startswith(f"{COOKIE}=") for p in pairs), f"no session cookie in {pairs}"
    return "; ".join(pairs)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float) -> float:
    """Poll ``predicate`` until it holds; return how long that took (fail after ``timeout``)."""
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < timeout, f"not recovered within {timeout} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_paused_server_every_request_answers_within_store_timeout(
    private_postgres: PrivatePostgres,
) -> None:
    async with PostgresStore(private_postgres.dsn, table="paused") as store:
        strict, strict_events = make_app(store, on_store_error="raise")
        lenient, _ = make_app(store, on_store_error="new_session")
        first, _ = await call(strict, "/inc")
        cookie = session_cookie(first)
        # Fill the pool: every pooled connection is then stuck on the paused server.
        await asyncio.gather(*(call(strict, "/get", cookie) for _ in range(POOL_SIZE)))

        private_postgres.pause()
        try:
            strict_results = asyncio.gather(
                *(call(strict, "/inc", cookie) for _ in range(3 * POOL_SIZE)),
                *(call(strict, "/inc") for _ in range(POOL_SIZE)),  # no cookie: save only
            )
            lenient_results = asyncio.gather(
                *(call(lenient, "/inc", cookie) for _ in range(POOL_SIZE))
            )
            strict_done, lenient_done = await asyncio.gather(strict_results, lenient_results)
        finally:
            private_postgres.resume()

        assert [r.status_code for r, _ in strict_done] == [503] * (4 * POOL_SIZE)
        slowest = max(took for _, took in strict_done)
        assert slowest < STORE_TIMEOUT + 1.0, f"a request took {slowest:.2f} s"
        # "new_session": the load and the save each wait at most store_timeout.
        assert [r.status_code for r, _ in lenient_done] == [200] * POOL_SIZE
        assert all(r.json() == {"views": 1} for r, _ in lenient_done)
        slowest = max(took for _, took in lenient_done)
        assert slowest < 2 * STORE_TIMEOUT + 1.0, f"a request took {slowest:.2f} s"
        assert strict_events.count("store_error") == 4 * POOL_SIZE

        async def healthy() -> bool:
            response, _ = await call(strict, "/get", cookie)
            return response.status_code == 200

        await wait_until(healthy, timeout=15)
        response, _ = await call(strict, "/inc", cookie)
        assert response.status_code == 200
        assert response.json() == {"views": 2}  # the data survived the outage


async def test_killed_and_restarted_server_is_healthy_within_two_seconds(
    private_postgres: PrivatePostgres,
) -> None:
    async with PostgresStore(private_postgres.dsn, table="restarted") as store:
        app, _ = make_app(store, on_store_error="raise")
        first, _ = await call(app, "/inc")
        cookie = session_cookie(first)
        await asyncio.gather(*(call(app, "/get", cookie) for _ in range(POOL_SIZE)))

        # A crash with nothing in flight: the pooled connections all go stale at once.
        await asyncio.to_thread(private_postgres.kill)
        await asyncio.to_thread(private_postgres.start)
        # Right after the return, concurrent requests (reads and writes) all succeed: no
        # request pays for a connection that died with the old server.
        done = await asyncio.gather(*(call(app, "/inc", cookie) for _ in range(2 * POOL_SIZE)))
        assert [r.status_code for r, _ in done] == [200] * (2 * POOL_SIZE)
        assert max(r.json()["views"] for r, _ in done) >= 2

        # A crash while requests arrive: they fail fast, then recover once the server is back.
        await asyncio.to_thread(private_postgres.kill)
        response, took = await call(app, "/get", cookie)
        assert response.status_code == 503
        assert took < STORE_TIMEOUT + 1.0
        await asyncio.to_thread(private_postgres.start)

        async def healthy() -> bool:
            results = await asyncio.gather(*(call(app, "/inc", cookie) for _ in range(5)))
            return all(r.status_code == 200 for r, _ in results)

        await wait_until(healthy, timeout=2.0)
        results = await asyncio.gather(*(call(app, "/get", cookie) for _ in range(2 * POOL_SIZE)))
        assert [r.status_code for r, _ in results] == [200] * (2 * POOL_SIZE)
