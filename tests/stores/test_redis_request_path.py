"""RedisStore on the request path: what a request costs the server, and how calls are bounded.

Commands are counted by the server itself (``INFO commandstats`` of a private redis-server), so
anything the store sends is seen: retries, health-check PINGs, transactions.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from koasession import SessionMiddleware

from .conftest import APP_KEYS as KEYS
from .conftest import RUN_ID, PrivateRedis
from .conftest import counter_app as counter

pytestmark = pytest.mark.timeout(60)


async def reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
    n = scope["session"].get("n", 0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(n).encode()})


@pytest.fixture
async def server(private_redis: PrivateRedis) -> AsyncIterator[Any]:
    """A plain redis-py client of the private server, to read its statistics."""
    from redis.asyncio import Redis

    client = Redis.from_url(private_redis.url)
    try:
        yield client
    finally:
        await client.aclose()


async def commands_since_reset(server: Any) -> dict[str, int]:
    """Commands the server ran since ``CONFIG RESETSTAT``, minus this checking client's own."""
    stats = await server.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    for own in ("info", "config|resetstat"):
        counts.pop(own, None)
    return counts


def cookie_of(response: httpx.Response, previous: str | None) -> str | None:
    lines = response.headers.get_list("set-cookie")
    if not lines:
        return previous
    return "; ".join(line.split(";", 1)[0] for line in lines)


async def get(client: httpx.AsyncClient, cookie: str | None = None) -> httpx.Response:
    """GET / sending exactly ``cookie`` (not what the client's cookie jar kept)."""
    client.cookies.clear()
    return await client.get("/", headers={"cookie": cookie} if cookie else {})


async def test_a_request_costs_one_command_to_load_and_one_to_save(
    private_redis: PrivateRedis, server: Any
) -> None:
    from koasession.stores.redis import RedisStore

    async with RedisStore(private_redis.url) as store:
        count = SessionMiddleware(counter, keys=KEYS, store=store)
        read = SessionMiddleware(reader, keys=KEYS, store=store)
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=count), base_url="http://t") as c,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=read), base_url="http://t") as r,
        ):
            first = await get(c)  # opens the connection (its handshake is not counted)
            cookie = cookie_of(first, None)
            assert cookie

            await server.config_resetstat()
            new = await get(c)  # no cookie: a new session, inserted
            assert new.text == "1"
            assert await commands_since_reset(server) == {"set": 1}

            await server.config_resetstat()
            for expected in range(2, 12):
                response = await get(c, cookie)
                assert response.text == str(expected)
                cookie = cookie_of(response, cookie)
            # Each counter request: one GET to load, one SET (XX, with its TTL) to save.
            assert await commands_since_reset(server) == {"get": 10, "set": 10}

            await server.config_resetstat()
            for _ in range(5):
                assert (await get(r, cookie)).text == "11"
            assert await commands_since_reset(server) == {"get": 5}


async def test_a_burst_uses_at_most_max_concurrency_connections(
    private_redis: PrivateRedis, server: Any
) -> None:
    from koasession.stores.redis import RedisStore

    async with RedisStore(private_redis.url, max_concurrency=4) as store:
        app = SessionMiddleware(counter, keys=KEYS, store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = await asyncio.gather(*(client.get("/") for _ in range(60)))
            assert [r.status_code for r in responses] == [200] * 60
            clients = (await server.info("clients"))["connected_clients"]
    assert clients <= 4 + 1  # the store's connections and the checking client


async def test_without_a_concurrency_limit_a_burst_waits_for_connections(
    private_redis: PrivateRedis,
) -> None:
    from koasession.stores.redis import RedisStore

    async with RedisStore(private_redis.url, max_concurrency=None, max_connections=3) as store:
        app = SessionMiddleware(counter, keys=KEYS, store=store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = await asyncio.gather(*(client.get("/") for _ in range(40)))
    assert [r.status_code for r in responses] == [200] * 40


async def test_replies_decoded_by_the_client_options_are_read_alike(redis_url: str) -> None:
    from koasession.errors import SessionIdCollision
    from koasession.stores.redis import RedisStore

    class Ctx:
        def __init__(self, loaded_key: str | None) -> None:
            self.loaded_key = loaded_key

    prefix = f"kstest:{RUN_ID}:decoded:"
    async with RedisStore(redis_url, key_prefix=prefix, decode_responses=True) as store:
        assert await store.set("a", {"v": "\u00e9"}, 60, ctx=Ctx(None)) is True
        assert await store.get("a") == {"v": "\u00e9"}
        with pytest.raises(SessionIdCollision):
            await store.set("a", {"v": 2}, 60, ctx=Ctx(None))
        assert await store.set("a", {"v": 3}, 60, ctx=Ctx("a")) is True
        await store.destroy("a")
        assert await store.get("a") is None
        assert await store.set("a", {"v": 4}, 60, ctx=Ctx("a")) is False  # gone: not revived


def test_the_call_deadline_is_the_store_timeout_when_the_store_can_keep_it() -> None:
    import redis.asyncio

    from koasession.stores.redis import DEFAULT_TIMEOUT, RedisStore

    store = RedisStore("redis://127.0.0.1:6379")
    assert store.call_deadline == DEFAULT_TIMEOUT
    SessionMiddleware(counter, keys=KEYS, store=store, store_timeout=0.75)
    assert store.call_deadline == 0.75

    # Where redis-py wraps socket writes in asyncio.wait_for (a socket_timeout), a cancellation
    # can be lost before Python 3.12: the middleware then bounds each call itself.
    keeps = sys.version_info >= (3, 12)
    for options in ({"socket_timeout": 2.0}, {"url": "redis://127.0.0.1:6379?socket_timeout=2"}):
        url = options.pop("url", "redis://127.0.0.1:6379")
        assert isinstance(url, str)
        given = RedisStore(url, **options)
        assert (given.call_deadline is not None) is keeps
    assert RedisStore("redis://127.0.0.1:6379", cluster=True).call_deadline is None
    client = redis.asyncio.Redis()
    assert RedisStore(client).call_deadline is None


async def test_every_call_ends_at_the_store_timeout_on_a_paused_server(
    private_redis: PrivateRedis,
) -> None:
    from koasession.errors import StoreError
    from koasession.stores.redis import RedisStore

    async with RedisStore(private_redis.url) as store:
        store.use_store_timeout(0.3)
        await store.set("warm", {"n": 1}, 60)  # a pooled connection to the server exists
        assert private_redis.proc is not None
        pid = private_redis.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            for call in (store.get("warm"), store.set("warm", {"n": 2}, 60), store.ping()):
                started = time.monotonic()
                with pytest.raises(StoreError, match=r"RedisStore\(.*timed out after 0\.3 s"):
                    await call
                assert time.monotonic() - started < 1.0
        finally:
            os.kill(pid, signal.SIGCONT)
        # The connections cut at the deadline are replaced: the store works again.
        assert await store.get("warm") == {"n": 1}
        assert await store.ping() is True


@pytest.mark.parametrize(
    "args",
    [
        ("GET", "koa:sess:abc"),
        ("SET", "pr\u00e9fixe:\u4e2d", '{"v":"\u00e9\U0001f600"}', "EX", 86400, "XX"),
        ("SET", "k", "x" * 70_000, "NX"),
        ("DEL", ""),
    ],
)
def test_commands_are_sent_as_redis_py_would_send_them(args: tuple[str | int, ...]) -> None:
    from redis.asyncio.connection import Connection

    from koasession.stores.redis import _resp

    assert _resp(args, "utf-8", "strict") == b"".join(Connection().pack_command(*args))


async def test_large_and_non_ascii_entries_read_back_through_a_plain_client(
    redis_url: str,
) -> None:
    from redis.asyncio import Redis

    from koasession.stores.redis import RedisStore

    prefix = f"kstest:{RUN_ID}:pr\u00e9fixe:"
    data = {"text": "\u00e9\u4e2d\U0001f600" * 5000, "n": 1}
    plain = Redis.from_url(redis_url)
    async with RedisStore(redis_url, key_prefix=prefix) as store:
        try:
            assert await store.set("big", data, 60) is True
            assert await store.get("big") == data
            raw = await plain.get(prefix + "big")
            assert json.loads(raw) == data
            assert 0 < await plain.ttl(prefix + "big") <= 60
        finally:
            await store.destroy("big")
            assert await plain.exists(prefix + "big") == 0
            await plain.aclose()
