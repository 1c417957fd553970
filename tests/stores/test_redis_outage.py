"""RedisStore through the middleware while a private Redis is paused, killed and restarted.

Only the private redis-server of the ``private_redis`` fixture is paused or killed; the shared
one is never touched.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from koasession import SessionMiddleware

from .conftest import APP_KEYS as KEYS
from .conftest import PrivateRedis
from .conftest import counter_app as counter

pytestmark = pytest.mark.timeout(90)


def cookie_of(response: httpx.Response, previous: str | None) -> str | None:
    """The Cookie header a browser would send next."""
    lines = response.headers.get_list("set-cookie")
    if not lines:
        return previous
    return "; ".join(line.split(";", 1)[0] for line in lines if "1970" not in line) or None


async def test_paused_redis_answers_every_request_within_store_timeout(
    private_redis: PrivateRedis,
) -> None:
    from koasession.stores.redis import RedisStore

    store_timeout = 1.0
    async with RedisStore(private_redis.url) as store:
        app = SessionMiddleware(counter, keys=KEYS, store=store, store_timeout=store_timeout)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = await client.get("/")
            cookie = cookie_of(first, None)
            assert first.status_code == 200 and cookie

            async def timed() -> tuple[int, float]:
                started = time.monotonic()
                response = await client.get("/", headers={"cookie": cookie})
                return response.status_code, time.monotonic() - started

            assert private_redis.proc is not None
            pid = private_redis.proc.pid
            os.kill(pid, signal.SIGSTOP)
            try:
                # More requests than the connection pool holds (64).
                results = await asyncio.gather(*(timed() for _ in range(150)))
            finally:
                os.kill(pid, signal.SIGCONT)
    assert {status for status, _ in results} == {503}
    slowest = max(elapsed for _, elapsed in results)
    assert slowest < store_timeout + 0.8, f"a request took {slowest:.2f} s"


async def test_requests_recover_quickly_after_a_redis_restart(
    private_redis: PrivateRedis,
) -> None:
    from koasession.stores.redis import RedisStore

    outcomes: list[tuple[float, int]] = []  # (start time, status)
    down_at: float | None
    back_at: float | None
    down_at = back_at = None
    stop_at: float | None = None

    async with RedisStore(private_redis.url) as store:
        app = SessionMiddleware(counter, keys=KEYS, store=store, store_timeout=1.0)
        transport = httpx.ASGITransport(app=app)

        async def browser() -> None:
            cookie: str | None = None
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                while stop_at is None or time.monotonic() < stop_at:
                    started = time.monotonic()
                    headers = {"cookie": cookie} if cookie else {}
                    response = await client.get("/", headers=headers)
                    outcomes.append((started, response.status_code))
                    if response.status_code == 200:
                        cookie = cookie_of(response, cookie)
                    await asyncio.sleep(0.01)

        browsers = [asyncio.create_task(browser()) for _ in range(20)]
        try:
            await asyncio.sleep(0.7)  # every pooled connection is in use by now
            down_at = time.monotonic()
            await asyncio.to_thread(private_redis.stop)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(private_redis.start)  # same port, returns once it answers
            back_at = time.monotonic()
            stop_at = back_at + 3.0
            await asyncio.wait_for(asyncio.gather(*browsers), 30)
        finally:
            for task in browsers:
                task.cancel()

    assert down_at is not None and back_at is not None
    before = [status for started, status in outcomes if started < down_at - 0.1]
    # Healthy before the outage; on a loaded machine a request may still overrun the 1 s
    # store_timeout now and then, which is not what this test is about.
    assert before and before.count(200) >= 0.95 * len(before)
    assert any(status == 503 for started, status in outcomes if started < back_at)
    settled = [status for started, status in outcomes if started >= back_at + 1.0]
    assert len(settled) > 100
    assert set(settled) == {200}, f"{settled.count(503)} failures more than 1 s after the restart"


async def test_stale_pooled_connections_fail_no_request_after_a_restart(
    private_redis: PrivateRedis,
) -> None:
    from koasession.stores.redis import RedisStore

    async with RedisStore(private_redis.url) as store:
        app = SessionMiddleware(counter, keys=KEYS, store=store, store_timeout=2.0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            # Fill the pool: 64 connections, all idle once the burst is over.
            warm = await asyncio.gather(*(client.get("/") for _ in range(64)))
            assert {r.status_code for r in warm} == {200}

            await asyncio.to_thread(private_redis.stop)
            await asyncio.to_thread(private_redis.start)  # every pooled connection is now dead

            after = await asyncio.gather(*(client.get("/") for _ in range(64)))
            assert [r.status_code for r in after] == [200] * 64


async def test_store_bounds_its_own_timeouts_by_the_middlewares(
    private_redis: PrivateRedis,
) -> None:
    from koasession.errors import StoreError
    from koasession.stores.redis import RedisStore

    async with RedisStore(private_redis.url) as store:
        SessionMiddleware(counter, keys=KEYS, store=store, store_timeout=0.5)
        assert private_redis.proc is not None
        pid = private_redis.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            # A direct call, with no deadline of its own: the socket timeout ends it.
            started = time.monotonic()
            with pytest.raises(StoreError, match="RedisStore"):
                await store.get("some-id")
            elapsed = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
    assert elapsed < 1.5, f"the store waited {elapsed:.2f} s"
