"""RedisStore after the network resets its connections (a TCP RST the event loop has seen).

A write on such a connection raises ``RuntimeError`` under uvloop (any Python) and
``TypeError`` from asyncio on Python 3.12, and 3.13 before python/cpython#136234 was fixed;
redis-py neither retries nor wraps either. Python 3.11's asyncio drops the write and the read
raises ``ConnectionError``, which redis-py retries. The store makes every case behave like
that (``stores/redis.py``: ``_guarded``). A proxy between the store and the shared Redis
resets every connection on demand, as a load balancer or a restarted peer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import pytest

from koasession.errors import StoreError

from .conftest import REDIS_URL, unavailable

pytestmark = pytest.mark.timeout(60)


class ResettingProxy:
    """Forwards TCP connections to Redis; :meth:`reset` ends every one with an RST."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self, host: str, port: int) -> str:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
            self.writers.append(writer)
            for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
                task = asyncio.create_task(pipe(source, sink))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        address = self.server.sockets[0].getsockname()
        return f"redis://{address[0]}:{address[1]}"

    async def reset(self) -> None:
        """Close the store's side of every connection with an RST (SO_LINGER 0)."""
        for writer in self.writers:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # closed at once: with no linger, the peer gets an RST
        self.writers.clear()
        await asyncio.sleep(0.05)  # the store's event loop reads the reset

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.server is not None:
            self.server.close()


async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(Exception):
        sink.close()


def _run(loop: str, scenario: Coroutine[Any, Any, None]) -> None:
    """Run ``scenario`` in a new event loop of the standard library, or of uvloop (what
    ``uvicorn[standard]`` serves with)."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (dev extra)")
        uvloop.run(scenario)
    else:
        asyncio.run(scenario)


@pytest.fixture
def redis_up(redis_available: str | None) -> None:
    if redis_available:
        unavailable(redis_available)


async def _through_proxy(
    test: Callable[[ResettingProxy], Awaitable[None]],
) -> None:
    target = urlsplit(REDIS_URL)
    proxy = ResettingProxy()
    proxy.url = await proxy.start(target.hostname or "127.0.0.1", target.port or 6379)
    try:
        await test(proxy)
    finally:
        await proxy.close()


SID = "r" * 43
LOOPS = ["asyncio", "uvloop"]


@pytest.mark.usefixtures("redis_up")
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    "options",
    [{}, {"max_concurrency": None}],
    ids=["own connections", "client pool"],
)
def test_a_reset_connection_is_replaced_without_an_error(
    loop: str, options: dict[str, Any]
) -> None:
    from koasession.stores.redis import RedisStore

    async def test(proxy: ResettingProxy) -> None:
        async with RedisStore(proxy.url, key_prefix="kstest:reset:", **options) as store:
            await store.set(SID, {"n": 1}, 60, rolling=False, changed=True)
            for n in (2, 3):
                await proxy.reset()
                assert await store.get(SID, 60, rolling=False) == {"n": n - 1}
                await store.set(SID, {"n": n}, 60, rolling=False, changed=True)
            assert await store.get(SID, 60, rolling=False) == {"n": 3}
            await store.destroy(SID)

    _run(loop, _through_proxy(test))


@pytest.mark.usefixtures("redis_up")
@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_given_to_the_store_fails_over_a_reset_as_a_store_error(loop: str) -> None:
    """A client the store did not open keeps redis-py's own connections and retry policy: a
    reset may fail the call, but as a ``StoreError`` (a 503), never the ``TypeError`` or
    ``RuntimeError`` of a write on a closed transport."""
    from redis.asyncio import Redis

    from koasession.stores.redis import RedisStore

    async def test(proxy: ResettingProxy) -> None:
        client = Redis.from_url(proxy.url)
        try:
            store = RedisStore(client, key_prefix="kstest:reset:")
            await store.set(SID, {"n": 1}, 60, rolling=False, changed=True)
            await proxy.reset()
            try:
                found = await store.get(SID, 60, rolling=False)
            except StoreError:
                pass  # "connection lost while writing", or the reset as redis-py words it
            else:
                assert found == {"n": 1}  # redis-py retried
            # The connection is replaced either way: the next call works.
            assert await store.get(SID, 60, rolling=False) == {"n": 1}
            await store.destroy(SID)
        finally:
            await client.aclose()

    _run(loop, _through_proxy(test))


class _Transport(asyncio.Transport):
    def __init__(self, closing: bool) -> None:
        super().__init__()
        self.closing = closing

    def is_closing(self) -> bool:
        return self.closing

    def writelines(self, list_of_data: Any) -> None:
        raise TypeError("'NoneType' object is not callable")


@pytest.mark.parametrize("closing", [False, True], ids=["open transport", "closing transport"])
def test_only_a_write_on_a_closing_transport_is_a_lost_connection(closing: bool) -> None:
    """The errors a lost connection's write raises are a lost connection only when the
    transport they came from is closing: the same error anywhere else stays what it is."""
    from koasession.stores.redis import _lost_write

    with pytest.raises(TypeError) as raised:
        _Transport(closing).writelines([b"PING"])
    assert _lost_write(raised.value) is closing
    with pytest.raises(TypeError) as other:
        len(5)  # type: ignore[arg-type]
    assert not _lost_write(other.value)
