"""The network stores after the network resets their connections (a TCP RST the event loop
has seen), under asyncio and uvloop: the next call succeeds on a new connection.

A proxy between the store and the shared server resets every connection on demand, as a load
balancer or a restarted peer would. For Redis a write on such a connection raises
``RuntimeError`` under uvloop (any Python) and ``TypeError`` or ``AttributeError`` from asyncio
on Python 3.12, and 3.13 before python/cpython#136234 was fixed; redis-py neither retries nor
wraps them, so the store's connections turn them into the connection error they are
(``stores/redis.py``: ``_guarded``). The SQL stores replace a dead pooled connection themselves.
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

from _services import require_module
from koasession.errors import StoreError

from .conftest import DATABASE_URL, MYSQL_URL, REDIS_URL, RUN_ID, unavailable

pytestmark = pytest.mark.timeout(60)


class ResettingProxy:
    """Forwards TCP connections to a server; :meth:`reset` ends every one with an RST."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.upstream: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self, host: str, port: int) -> str:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
            self.writers.append(writer)
            self.upstream.append(upstream_writer)
            for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
                task = asyncio.create_task(pipe(source, sink))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        address = self.server.sockets[0].getsockname()
        return f"{address[0]}:{address[1]}"

    async def reset(self) -> None:
        """Close the store's side of every connection with an RST (SO_LINGER 0)."""
        for writer in self.writers:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # closed at once: with no linger, the peer gets an RST
        self.writers.clear()
        await asyncio.sleep(0.05)  # the store's event loop reads the reset

    async def close(self) -> None:
        for writer in [*self.writers, *self.upstream]:
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        with contextlib.suppress(Exception):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
    finally:
        sink.close()


def _run(loop: str, scenario: Coroutine[Any, Any, None]) -> None:
    """Run ``scenario`` in a new event loop of the standard library, or of uvloop (what
    ``uvicorn[standard]`` serves with)."""
    if loop == "uvloop":
        uvloop = require_module("uvloop")
        uvloop.run(scenario)
        return
    # The standard library's own loop, whatever loop policy the run set (make test-uvloop).
    standard = asyncio.SelectorEventLoop()
    try:
        standard.run_until_complete(scenario)
    finally:
        standard.close()


@pytest.fixture
def redis_up(redis_available: str | None) -> None:
    if redis_available:
        unavailable(redis_available)


async def _through_proxy(
    test: Callable[[ResettingProxy], Awaitable[None]], server_url: str = REDIS_URL
) -> None:
    """Run ``test`` with a proxy to the server of ``server_url``; ``proxy.url`` is that URL
    with the proxy's address in place of the server's."""
    target = urlsplit(server_url)
    proxy = ResettingProxy()
    address = await proxy.start(target.hostname or "127.0.0.1", target.port or 6379)
    userinfo = target.netloc.rpartition("@")[0]
    proxy.url = target._replace(netloc=f"{userinfo}@{address}" if userinfo else address).geturl()
    try:
        await test(proxy)
    finally:
        await proxy.close()


SID = "r" * 43
PREFIX = f"kstest:{RUN_ID}:reset:"
LOOPS = ["asyncio", "uvloop"]
#: The two ways a store that opened its client sends commands: through connections of its own
#: (``max_concurrency`` set, the default), or through redis-py's pool.
OWN_CONNECTIONS_OR_POOL = pytest.mark.parametrize(
    "options", [{}, {"max_concurrency": None}], ids=["own connections", "client pool"]
)


@pytest.mark.usefixtures("redis_up")
@pytest.mark.parametrize("loop", LOOPS)
@OWN_CONNECTIONS_OR_POOL
def test_a_reset_connection_is_replaced_without_an_error(
    loop: str, options: dict[str, Any]
) -> None:
    from koasession.stores.redis import RedisStore

    async def test(proxy: ResettingProxy) -> None:
        async with RedisStore(proxy.url, key_prefix=PREFIX, **options) as store:
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
    """A client the store did not open keeps redis-py's own connections and retry policy (none,
    for ``Redis.from_url``): the reset fails the call, as a ``StoreError`` (a 503), never as
    the ``TypeError`` or ``RuntimeError`` of a write on a closed transport."""
    from redis.asyncio import Redis

    from koasession.stores.redis import RedisStore

    async def test(proxy: ResettingProxy) -> None:
        client = Redis.from_url(proxy.url)
        try:
            store = RedisStore(client, key_prefix=PREFIX)
            await store.set(SID, {"n": 1}, 60, rolling=False, changed=True)
            await proxy.reset()
            with pytest.raises(StoreError):
                await store.get(SID, 60, rolling=False)
            # The connection is replaced: the next call works.
            assert await store.get(SID, 60, rolling=False) == {"n": 1}
            await store.destroy(SID)
        finally:
            await client.aclose()

    _run(loop, _through_proxy(test))


@pytest.mark.usefixtures("redis_up")
@pytest.mark.parametrize("loop", LOOPS)
@OWN_CONNECTIONS_OR_POOL
def test_a_connection_closed_under_the_store_is_replaced_without_an_error(
    loop: str, options: dict[str, Any]
) -> None:
    """The transport of an idle connection closed by the event loop (as after a reset it saw)
    while redis-py still holds the connection: its next write raises ``TypeError`` from asyncio
    on Python 3.12 and early 3.13, ``RuntimeError`` under uvloop."""
    from koasession.stores.redis import RedisStore

    async def test() -> None:
        async with RedisStore(REDIS_URL, key_prefix=PREFIX, **options) as store:
            await store.set(SID, {"n": 1}, 60, rolling=False, changed=True)
            binding = store._binding()
            pool = binding.client.connection_pool
            idle = binding.idle if binding.idle is not None else pool._available_connections
            assert idle, "no idle connection to close"
            for conn in idle:
                conn._writer.transport.close()
            await asyncio.sleep(0)  # the transport's connection_lost runs
            assert await store.get(SID, 60, rolling=False) == {"n": 1}
            await store.destroy(SID)

    _run(loop, test())


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_sql_store_replaces_a_reset_connection(
    request: pytest.FixtureRequest, kind: str, loop: str
) -> None:
    from koasession.stores import store_from_url

    request.getfixturevalue("database_url" if kind == "postgres" else "mysql_url")  # or skip
    table = f"ks_reset_{RUN_ID}_{kind}_{loop}"

    async def test(proxy: ResettingProxy) -> None:
        async with store_from_url(proxy.url, table=table) as store:
            try:
                await store.set(SID, {"n": 1}, 60, rolling=False, changed=True)
                await proxy.reset()
                assert await store.get(SID, 60, rolling=False) == {"n": 1}
                await store.set(SID, {"n": 2}, 60, rolling=False, changed=True)
                assert await store.get(SID, 60, rolling=False) == {"n": 2}
            finally:
                await store.drop_table()

    _run(loop, _through_proxy(test, DATABASE_URL if kind == "postgres" else MYSQL_URL))


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


def test_a_writer_taken_away_meanwhile_is_a_lost_connection() -> None:
    """redis-py's own ``self._writer.writelines(...)`` after another task's ``disconnect()``
    set the writer to ``None``: told by the missing attribute and its ``None`` owner."""
    from koasession.stores.redis import _lost_write

    class Connection:
        _writer: Any = None

        def send(self) -> None:
            self._writer.writelines([b"PING"])

    with pytest.raises(AttributeError) as raised:
        Connection().send()
    assert _lost_write(raised.value)
    with pytest.raises(AttributeError) as other:
        Connection()._writer.write(b"PING")
    assert not _lost_write(other.value)
