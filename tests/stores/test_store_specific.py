"""What only one store (or the command line) does: layouts, bounds, processes, URLs, purge CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from koasession.cli import main as cli_main
from koasession.errors import ConfigurationError
from koasession.stores import MemoryStore, store_from_url

from .conftest import DATABASE_URL, RUN_ID

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Ctx:
    def __init__(self, loaded_key: str | None = None) -> None:
        self.loaded_key = loaded_key


# -- package -----------------------------------------------------------------------------------


def test_optional_drivers_are_imported_lazily() -> None:
    code = (
        "import sys, koasession.stores as s\n"
        "drivers = ('redis', 'asyncpg', 'aiosqlite', 'asyncmy')\n"
        "assert not any(m in sys.modules for m in drivers), "
        "sorted(m for m in sys.modules if m in drivers)\n"
        "assert s.SQLiteStore.__name__ == 'SQLiteStore' and 'aiosqlite' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_store_from_url(tmp_path: Path) -> None:
    from koasession.stores.mysql import MySQLStore
    from koasession.stores.postgres import PostgresStore
    from koasession.stores.redis import RedisStore
    from koasession.stores.sqlite import SQLiteStore

    assert isinstance(store_from_url("memory://"), MemoryStore)
    for url in ("mysql://u@h/db", "MariaDB://u@h/db"):
        assert isinstance(store_from_url(url, table="t"), MySQLStore)
    assert isinstance(store_from_url("redis://127.0.0.1:1/0"), RedisStore)
    assert isinstance(store_from_url("postgresql://u@h/db", table="t"), PostgresStore)
    sqlite = store_from_url(f"sqlite:///{tmp_path}/s.db")
    assert isinstance(sqlite, SQLiteStore) and sqlite.path == f"{tmp_path}/s.db"
    assert store_from_url("sqlite:///rel.db").path == "rel.db"
    for bad in ("nope", "ftp://x", "sqlite://"):
        with pytest.raises(ValueError):
            store_from_url(bad)
    # A ConfigurationError (a ValueError) that names what is accepted, never a password.
    for bad, message in [
        ("u:pw@127.0.0.1:6379", "not a store URL (no scheme://): '127.0.0.1:6379'; use redis://"),
        ("postgresql+asyncpg://h/db", "drop SQLAlchemy's driver suffix: postgresql://"),
        ("memcached://h", "unsupported store URL scheme 'memcached'; use redis://"),
        (None, "store_from_url needs a URL string; got None"),
    ]:
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            store_from_url(bad)  # type: ignore[arg-type]


def test_bad_options_fail_at_construction(tmp_path: Path) -> None:
    from koasession.stores.postgres import PostgresStore
    from koasession.stores.sqlite import SQLiteStore

    with pytest.raises(ConfigurationError):
        MemoryStore(max_entries=0)
    for table in ('x"; DROP TABLE y; --', "1abc", "a b", "a.b.c", ""):
        with pytest.raises(ConfigurationError):
            PostgresStore(DATABASE_URL, table=table)
    with pytest.raises(ConfigurationError):
        SQLiteStore(tmp_path / "x.db", table="main.t")
    # Refused when made, not as a 503 at each request (asyncpg parses the DSN when it connects).
    for dsn, message in [
        ("redis://127.0.0.1:6379", "needs a postgresql:// (or postgres://) DSN; got redis://"),
        ("postgresql+asyncpg://u:pw@h/db", "drop SQLAlchemy's driver suffix: postgresql://"),
        ("host=h dbname=test", "got a DSN without a scheme"),
        ("postgresql://u:pw@h:notaport/db", "invalid port 'notaport'"),
        ("postgresql://h1:5432,h2:99999/db", "invalid port '99999'"),
    ]:
        with pytest.raises(ConfigurationError, match=re.escape(message)) as info:
            PostgresStore(dsn)
        assert "pw" not in str(info.value)
    for dsn in ("postgresql://[::1]:5432/db", "postgres://h1,h2:5433/db", "postgresql:///db"):
        assert PostgresStore(dsn).address
    # Each refused by the driver when it makes the pool, at the first request (a 503).
    for options, message in [
        ({"min_size": 20}, "min_size=20 is over max_size=10 (the store's defaults"),
        ({"max_size": "10"}, "pool_options max_size must be a whole number, 1 or more"),
    ]:
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            PostgresStore(DATABASE_URL, pool_options=options)
    with pytest.raises(ConfigurationError, match="sslmode='on' in the DSN; asyncpg takes"):
        PostgresStore("postgresql://u@h/db?sslmode=on")
    # dict("x") raised "dictionary update sequence element #0 has length 1; 2 is required".
    with pytest.raises(ConfigurationError, match="PostgresStore: pool_options must be a dict"):
        PostgresStore(DATABASE_URL, pool_options="max_size=5")  # type: ignore[arg-type]
    from koasession.stores.mysql import MySQLStore

    for table in ("x`; DROP TABLE y; --", "a b", "a.b.c"):
        with pytest.raises(ConfigurationError):
            MySQLStore("mysql://u@h/db", table=table)
    with pytest.raises(ConfigurationError, match="MySQLStore: pool_options maxsize must be"):
        MySQLStore("mysql://u@h/db", pool_options={"maxsize": "x"})
    with pytest.raises(ConfigurationError, match="unknown MySQL charset 'utf-8'"):
        MySQLStore("mysql://u@h/db?charset=utf-8")
    assert MySQLStore("mysql://u@h/db?charset=latin1", pool_options={"minsize": 0, "maxsize": 2})
    with pytest.raises(ConfigurationError, match="MySQLStore: pool_options must be a dict"):
        MySQLStore("mysql://u@h/db", pool_options=5)  # type: ignore[arg-type]
    for bad_url in ("mysql://u@h/db?sslmode=x", "mysql://u@h:notaport/db"):
        with pytest.raises(ConfigurationError):
            MySQLStore(bad_url)
    with pytest.raises(ConfigurationError):
        SQLiteStore(":memory:")
    # Both made a store whose every call failed (a 503): "unable to open database file".
    with pytest.raises(ConfigurationError, match=re.escape("not a URL: SQLiteStore('x.db')")):
        SQLiteStore("sqlite:///x.db")
    with pytest.raises(ConfigurationError, match="is a directory"):
        SQLiteStore(tmp_path)
    with pytest.raises(ConfigurationError):
        SQLiteStore(tmp_path / "x.db", purge_every=-1)
    # "5" raised "'<' not supported between instances of 'str' and 'int'"; "false" was truthy.
    with pytest.raises(ConfigurationError, match="busy_timeout must be a number of seconds"):
        SQLiteStore(tmp_path / "x.db", busy_timeout="5")  # type: ignore[arg-type]
    for make in (
        lambda: SQLiteStore(tmp_path / "x.db", create_table="false"),  # type: ignore[arg-type]
        lambda: PostgresStore(DATABASE_URL, create_table="false"),  # type: ignore[arg-type]
        lambda: MySQLStore("mysql://u@h/db", create_table=0),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigurationError, match="create_table must be True or False"):
            make()

    from koasession.stores.redis import RedisStore

    # Refused when made, although RedisStore connects only on first use.
    for url in ("http://127.0.0.1:6379", "redis://h/0?socket_timeout=abc"):
        with pytest.raises(ConfigurationError):
            RedisStore(url)
    with pytest.raises(ConfigurationError):
        RedisStore("unix:///tmp/redis.sock", cluster=True)
    # From a settings file: "false" is truthy, and "5" fails only when a socket is made.
    for options, message in [
        ({"cluster": "false"}, "cluster must be True or False; got 'false'"),
        ({"hash_ids": "false", "hash_key": "k" * 32}, "hash_ids must be True or False"),
        ({"socket_timeout": "5"}, "socket_timeout must be a positive number of seconds or None"),
        ({"socket_connect_timeout": -1}, "socket_connect_timeout must be a positive number"),
    ]:
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            RedisStore("redis://127.0.0.1:6379", **options)
    # redis-py reads a path that is not a number as no database at all (database 0).
    with pytest.raises(ConfigurationError, match="for a namespace use key_prefix='sessions:'"):
        RedisStore("redis://127.0.0.1:6379/sessions")
    assert RedisStore("redis://127.0.0.1:6379/2/").address
    with pytest.raises(ConfigurationError, match="hash_ids must be True or False; got 1"):
        MemoryStore(hash_ids=1, hash_key="k" * 32)  # type: ignore[arg-type]
    assert RedisStore("redis://127.0.0.1:6379?socket_timeout=2", socket_connect_timeout=1.5)


@pytest.mark.parametrize(
    ("store", "url", "misspelt", "meant", "valid"),
    [
        ("PostgresStore", DATABASE_URL, "max_sizee", "max_size", {"max_size": 3, "ssl": False}),
        ("MySQLStore", "mysql://u@h/db", "max_size", "maxsize", {"maxsize": 3, "pool_recycle": 5}),
    ],
)
def test_a_misspelt_pool_option_fails_when_the_store_is_made(
    store: str, url: str, misspelt: str, meant: str, valid: dict[str, Any]
) -> None:
    """The SQL stores' drivers pass unknown pool options on to their connections, made at the
    first request, where every store call failed and the middleware answered 503 as for an
    outage. They are checked against the driver's own parameters when the store is made."""
    import koasession.stores as stores

    cls = getattr(stores, store)
    with pytest.raises(ConfigurationError) as raised:
        cls(url, pool_options={misspelt: 3})
    assert f"{store}: pool_options {misspelt!r} (did you mean {meant!r}?)" in str(raised.value)
    assert cls(url, pool_options=valid).address  # the driver's own names pass, unconnected


def test_pool_options_for_a_connect_of_the_applications_own() -> None:
    """asyncpg gives the options it does not take to ``connect=``, asyncpg's or the
    application's: those are checked against the application's function when it names its
    parameters, and left to it when it takes any; ``dsn`` is the store's to pass."""
    from koasession.stores import PostgresStore

    async def named(dsn: Any = None, *, tenant: str = "") -> Any: ...

    async def anything(dsn: Any = None, **kwargs: Any) -> Any: ...

    PostgresStore(DATABASE_URL, pool_options={"connect": named, "tenant": "a"})
    PostgresStore(DATABASE_URL, pool_options={"connect": anything, "whatever": 1})
    with pytest.raises(ConfigurationError, match="'tenantt' \\(did you mean 'tenant'\\?\\)"):
        PostgresStore(DATABASE_URL, pool_options={"connect": named, "tenantt": "a"})
    with pytest.raises(ConfigurationError, match="'dsn' \\(the store passes it\\)"):
        PostgresStore(DATABASE_URL, pool_options={"dsn": DATABASE_URL})


@pytest.mark.parametrize("cluster", [False, True], ids=["standalone", "cluster"])
def test_a_misspelt_redis_option_fails_when_the_store_is_made(cluster: bool) -> None:
    """RedisStore passes the options it does not know to redis-py, which checked them only
    when the first request opened a connection (a 500 with redis-py's traceback). They are
    checked when the store is made, with a hint for the names other libraries use."""
    from koasession.stores.redis import RedisStore

    scheme = "redis+cluster" if cluster else "redis"
    with pytest.raises(ConfigurationError) as raised:
        store_from_url(f"{scheme}://127.0.0.1:6379", prefix="sessions:")
    message = str(raised.value)
    assert "unexpected keyword argument 'prefix'" in message
    assert "use key_prefix= for prefix=" in message
    with pytest.raises(ConfigurationError, match="the middleware's max_age="):
        RedisStore("redis://127.0.0.1:6379", ttl=60, cluster=cluster)
    if not cluster:  # a cluster client checks the names when made, the values per node later
        # Values redis-py refuses, whatever it raises for them, with no password in the text.
        with pytest.raises(ConfigurationError, match="protocol") as raised:
            RedisStore("redis://:hunter2@127.0.0.1:6379", protocol=4)
        assert "hunter2" not in str(raised.value)
        with pytest.raises(ConfigurationError, match="max_connections"):
            RedisStore("redis://127.0.0.1:6379", max_connections=-1)
    # Options redis-py takes are still passed on (nothing is connected yet).
    store = RedisStore("redis://127.0.0.1:6379", socket_keepalive=True, cluster=cluster)
    assert store.address == "127.0.0.1:6379"


# -- MemoryStore -------------------------------------------------------------------------------


async def test_memory_store_is_bounded() -> None:
    store = MemoryStore(max_entries=3)
    for i in range(3):
        await store.set(f"s{i}", {"i": i}, 60, ctx=Ctx())
    await store.set("s0", {"i": 0, "touched": True}, 60, ctx=Ctx("s0"))  # s0 now newest
    await store.set("s3", {"i": 3}, 60, ctx=Ctx())
    assert len(store) == 3
    assert await store.get("s1") is None  # least recently written went first
    assert [await store.get(k) is not None for k in ("s0", "s2", "s3")] == [True] * 3


async def test_memory_store_evicts_expired_before_live() -> None:
    store = MemoryStore(max_entries=2)
    await store.set("live", {}, 60, ctx=Ctx())
    await store.set("dying", {}, 0.05, ctx=Ctx())
    await asyncio.sleep(0.1)
    await store.set("new", {}, 60, ctx=Ctx())
    assert await store.get("live") == {}
    assert await store.get("new") == {}


async def test_memory_store_session_ttl_applies_without_max_age() -> None:
    store = MemoryStore(session_ttl=0.05)
    await store.set("a", {"v": 1})
    assert await store.get("a") == {"v": 1}
    await asyncio.sleep(0.1)
    assert await store.get("a") is None


# -- RedisStore: koa-redis layout --------------------------------------------------------------


async def test_redis_layout_is_koa_redis_compatible(redis_url: str) -> None:
    from koasession.stores.redis import RedisStore

    prefix = f"kstest:{RUN_ID}:layout:"
    async with RedisStore(redis_url, key_prefix=prefix) as store:
        data = {
            "user": "\u00e9\u4e2d",
            "n": [1, 2.5],
            "_expire": 1900000000000,
            "_maxAge": 86400000,
        }
        try:
            await store.set("koa:sess:abc", data, 86400 + 10.2, ctx=Ctx())
            raw = await store.client.get(prefix + "koa:sess:abc")
            # JSON.stringify: compact separators, UTF-8 characters unescaped, key order kept.
            assert raw.decode() == (
                '{"user":"\u00e9\u4e2d","n":[1,2.5],"_expire":1900000000000,"_maxAge":86400000}'
            )
            assert await store.client.ttl(prefix + "koa:sess:abc") == math.ceil(86400 + 10.2)
            # A value koa-redis wrote is read back.
            await store.client.set(prefix + "koa-written", json.dumps({"views": 3}), ex=60)
            assert await store.get("koa-written") == {"views": 3}
            # Garbage under a key is a miss, not a crash.
            await store.client.set(prefix + "garbage", b"\xff{not json", ex=60)
            assert await store.get("garbage") is None
        finally:
            for key in ("koa:sess:abc", "koa-written", "garbage"):
                await store.client.delete(prefix + key)


@pytest.mark.parametrize(
    "raw",
    [
        '{"n":NaN}',
        '{"n":Infinity}',
        '{"n":1e999}',  # overflows to infinity: JSON.stringify could never have written it
        "[1,2]",
        '"text"',
        "[" * 200 + "]" * 200,
    ],
)
async def test_redis_store_reads_stored_json_with_the_cookie_json_policy(
    redis_url: str, raw: str
) -> None:
    from koasession.stores.redis import RedisStore

    prefix = f"kstest:{RUN_ID}:policy:"
    async with RedisStore(redis_url, key_prefix=prefix) as store:
        try:
            await store.client.set(prefix + "entry", raw, ex=60)
            assert await store.get("entry") is None
        finally:
            await store.client.delete(prefix + "entry")


async def test_redis_store_accepts_a_client_and_leaves_it_open(redis_url: str) -> None:
    import redis.asyncio

    from koasession.stores.redis import RedisStore

    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    prefix = f"kstest:{RUN_ID}:client:"
    try:
        async with RedisStore(client, key_prefix=prefix) as store:
            await store.set("a", {"v": 1}, 60, ctx=Ctx())
            assert await store.get("a") == {"v": 1}
            await store.destroy("a")
        assert await client.ping()  # not closed by the store
    finally:
        await client.aclose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_redis_errors_name_the_store_and_never_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from koasession import SessionMiddleware
    from koasession.errors import StoreError
    from koasession.stores.redis import RedisStore

    port = _free_port()  # nothing listens there
    async with RedisStore(f"redis://:s3cret-pw@127.0.0.1:{port}/0") as store:
        with pytest.raises(StoreError) as raised:
            await store.get("some-id")
        message = str(raised.value)
        assert f"RedisStore(127.0.0.1:{port})" in message and "s3cret" not in message
        assert "s3cret" not in repr(store)

        seen: list[Any] = []
        app = SessionMiddleware(
            _hello,
            keys=["GatSckFWtJRLFJaLLWvMjU61q_9X6RIiF2g_EN2VBsc"],
            store=store,
            on_event=lambda n, p: seen.append(p),
        )
        transport = httpx.ASGITransport(app=app)
        with caplog.at_level(logging.DEBUG, logger="koasession"):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/")).status_code == 503
        assert f"RedisStore(127.0.0.1:{port})" in str(seen[-1]["error"])
        assert f"127.0.0.1:{port}" in caplog.text and "s3cret" not in caplog.text

    async with RedisStore("unix:///nonexistent/redis.sock") as store:
        with pytest.raises(StoreError, match=r"RedisStore\(/nonexistent/redis\.sock\)"):
            await store.set("some-id", {}, 60)


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    scope["session"]["seen"] = True
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_missing_redis_py_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['redis'] = None  # as if redis-py were not installed\n"
        "import koasession.stores as stores\n"
        "try:\n"
        "    stores.RedisStore\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "pip install 'koasession[redis]'" in out


_REDIS_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from koasession.stores.redis import RedisStore

    store = RedisStore(sys.argv[1], key_prefix=sys.argv[2])  # module level, never closed

    async def main():
        await store.set("a", {"v": 1}, 60)
        assert await store.get("a") == {"v": 1}
        await store.destroy("a")

    asyncio.run(main())
    asyncio.run(main())  # a second loop, as a second test or a reload would be
    print("done")
    """
)


def test_a_script_using_redis_store_exits_on_its_own(redis_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _REDIS_SCRIPT, redis_url, f"kstest:{RUN_ID}:script:"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "done"
    assert time.monotonic() - started < 5.0


# -- SQLiteStore across processes --------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from koasession.stores.sqlite import SQLiteStore
    from koasession.errors import SessionIdCollision

    class Ctx:
        def __init__(self, k): self.loaded_key = k

    async def main(path, worker):
        async with SQLiteStore(path, purge_every=7, purge_limit=5) as store:
            for i in range(150):
                await store.set(f"w{worker}-{i}", {"w": worker, "i": i}, 60, ctx=Ctx(None))
                try:
                    await store.set("shared", {"w": worker, "i": i}, 60, ctx=Ctx(None))
                except SessionIdCollision:
                    await store.set("shared", {"w": worker, "i": i}, 60, ctx=Ctx("shared"))
                await store.get(f"w{worker}-{i // 2}")
        print("ok")

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_sqlite_is_safe_across_worker_processes(tmp_path: Path) -> None:
    from koasession.stores.sqlite import SQLiteStore

    path = tmp_path / "shared.db"
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            str(path),
            str(w),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for w in range(4)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in procs))
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
        assert out.strip() == b"ok"
    async with SQLiteStore(path) as store:
        for w in range(4):
            for i in (0, 149):
                assert await store.get(f"w{w}-{i}") == {"w": w, "i": i}
        shared = await store.get("shared")
        assert shared is not None and shared["w"] in range(4)
        conn = await store._db()
        async with conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"


async def test_sqlite_concurrent_reads_and_writes_on_one_connection_never_fail_locked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two stores on one file, as two worker processes have, each with concurrent requests
    (gthread threads, an ASGI server's tasks): none fails with "database is locked". A read
    that was left between aiosqlite's calls (its query run, its rows not yet fetched) held a
    read transaction on the shared connection: another request's write in that gap had to
    upgrade it, which SQLite refuses at once, without the busy timeout, when the other store
    wrote since (about one request in a hundred failed under gunicorn's gthread workers)."""
    from koasession.errors import StoreError
    from koasession.stores.sqlite import SQLiteStore

    path = tmp_path / "shared.db"
    first, second = SQLiteStore(path, purge_every=50), SQLiteStore(path, purge_every=50)
    failures: list[str] = []

    async def browse(store: SQLiteStore, n: int) -> None:
        key = f"{n:02d}" + "k" * 30
        for i in range(150):
            try:
                await store.get(key)  # a row once the first set is done: rows to fetch
                await store.set(key, {"i": i}, 60)
            except StoreError as exc:
                failures.append(str(exc))

    try:
        await asyncio.gather(*(browse(s, n) for n, s in enumerate([first, second] * 8)))
    finally:
        await first.close()
        await second.close()
    assert failures == []
    assert "purge of expired sessions failed" not in caplog.text


_FORK = textwrap.dedent(
    """
    import asyncio, os, sys, warnings
    import aiosqlite
    import koasession.stores.sqlite as sqlite_module
    from koasession.errors import ConfigurationError
    from koasession.stores.sqlite import SQLiteStore

    path, mode = sys.argv[1], sys.argv[2]
    parent = asyncio.new_event_loop()
    if mode == "given":
        given = parent.run_until_complete(aiosqlite.connect(path, isolation_level=None))
        store = SQLiteStore(given)
    else:
        store = SQLiteStore(path)
    parent.run_until_complete(store.set("p" * 32, {"by": "parent"}, 60))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: "multi-threaded"
        pid = os.fork()
    if pid == 0:
        if mode == "unknown-thread":
            # An aiosqlite whose worker thread the store cannot see: only the fork tells.
            sqlite_module._usable = lambda conn: True

        async def child():
            if mode == "given":
                try:
                    await store.get("p" * 32)
                except ConfigurationError as exc:
                    print("child refused:", exc, flush=True)
                os._exit(0)  # the parent's connection is not this process's to close
            assert await store.get("p" * 32) == {"by": "parent"}
            await store.set("c" * 32, {"by": "child"}, 60)
            await store.close()

        asyncio.run(asyncio.wait_for(child(), 20))
        print("child ok", flush=True)
        sys.exit(0)  # a normal exit: atexit, then the interpreter's end
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    async def after():
        if mode != "given":
            assert await store.get("c" * 32) == {"by": "child"}
        assert await store.get("p" * 32) == {"by": "parent"}
        await store.close()
        if mode == "given":
            await given.close()

    parent.run_until_complete(after())
    parent.close()
    print("parent ok")
    """
)


def _run_fork(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _FORK, str(tmp_path / "forked.db"), mode],
        env={**os.environ, "PYTHONPATH": SRC, "PYTHONWARNINGS": "default"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("mode", ["path", "unknown-thread"])
def test_sqlite_store_used_before_a_fork_works_quietly_in_the_child(
    tmp_path: Path, mode: str
) -> None:
    """gunicorn --preload: a store that served the parent before the fork gets a connection
    of its own in the child, and never closes nor drops the parent's there (aiosqlite would
    warn "deleted before being closed" in each worker); the parent's goes on working. The fork
    itself tells the store, so this holds when aiosqlite's worker thread cannot be seen too."""
    result = _run_fork(tmp_path, mode)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["child", "ok", "parent", "ok"]
    for noise in (
        "ResourceWarning",
        "deleted before being closed",
        "Traceback",
        "Exception ignored",
    ):
        assert noise not in result.stderr, result.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_sqlite_store_given_a_connection_before_a_fork_says_so_in_the_child(
    tmp_path: Path,
) -> None:
    """A store given an aiosqlite connection cannot reopen it: in a forked child, whose copy has
    no worker thread, its calls say why instead of each waiting for the store_timeout."""
    result = _run_fork(tmp_path, "given")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == "parent ok"
    assert lines[0].startswith("child refused: SQLiteStore(an aiosqlite connection")
    assert "it was opened before this process forked" in lines[0]


async def test_sqlite_first_use_waits_for_a_lock_that_blocks_the_wal_switch(tmp_path: Path) -> None:
    # While another connection holds a write lock, SQLite refuses the switch to WAL at once,
    # ignoring the busy timeout (worker processes starting together on a new file hit this).
    # The store retries the switch for up to busy_timeout, then reports the lock.
    import sqlite3

    from koasession.errors import StoreError
    from koasession.stores.sqlite import SQLiteStore

    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        async with SQLiteStore(path, busy_timeout=5) as store:
            write = asyncio.create_task(store.set("a" * 32, {"n": 1}, 60))
            await asyncio.sleep(0.2)
            assert not write.done()
            other.execute("COMMIT")
            assert await write is True
            assert await store.get("a" * 32) == {"n": 1}
        # The file itself is in WAL mode (a journal mode is a property of the database file).
        reader = sqlite3.connect(path)
        try:
            assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            reader.close()

        path = tmp_path / "held.db"
        other.close()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        async with SQLiteStore(path, busy_timeout=0.3) as store:
            with pytest.raises(StoreError, match=r"held\.db.*set failed.*database is locked"):
                await store.set("b" * 32, {"n": 1}, 60)
        assert time.monotonic() - started >= 0.2  # it waited rather than failing at once
    finally:
        other.close()


# -- koasession purge --------------------------------------------------------------------------


async def _seed(store: Any, expired: int, live: int) -> None:
    for i in range(expired):
        await store.set(f"old{i}", {}, 1, ctx=Ctx())
    for i in range(live):
        await store.set(f"new{i}", {}, 60, ctx=Ctx())


def test_cli_purge_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from koasession.stores.sqlite import SQLiteStore

    path = tmp_path / "cli.db"

    async def seed() -> None:
        async with SQLiteStore(path, purge_every=0) as store:
            await _seed(store, 4, 2)

    asyncio.run(seed())
    time.sleep(1.2)
    assert cli_main(["purge", "--store", f"sqlite:///{path}", "--limit", "3"]) == 0
    assert capsys.readouterr().out.strip() == "purged 3 expired session(s)"
    assert cli_main(["purge", "--store", f"sqlite:///{path}"]) == 0
    assert capsys.readouterr().out.strip() == "purged 1 expired session(s)"
    assert cli_main(["purge", "-q", "--store", f"sqlite:///{path}"]) == 0
    assert capsys.readouterr().out == ""

    missing = tmp_path / "missing.db"
    assert cli_main(["purge", "--store", f"sqlite:///{missing}"]) == 1
    assert "no such database file" in capsys.readouterr().err
    assert not missing.exists()


@pytest.mark.parametrize("server", ["database_url", "mysql_url"], ids=["postgres", "mysql"])
def test_cli_purge_sql_server(
    server: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    database_url = str(request.getfixturevalue(server))  # skips when the server is down
    table = f"ks_cli_{RUN_ID}"

    async def seed() -> None:
        async with store_from_url(database_url, table=table, purge_every=0) as store:
            await _seed(store, 3, 1)

    async def drop() -> None:
        async with store_from_url(database_url, table=table) as store:
            await store.drop_table()

    asyncio.run(seed())
    try:
        time.sleep(1.2)
        assert cli_main(["purge", "--store", database_url, "--table", table]) == 0
        assert capsys.readouterr().out.strip() == "purged 3 expired session(s)"
    finally:
        asyncio.run(drop())
    # The table is gone now: a clear error, exit status 1, no traceback.
    assert cli_main(["purge", "--store", database_url, "--table", table]) == 1
    assert "error" in capsys.readouterr().err


def test_cli_purge_redis_has_nothing_to_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["purge", "--store", "redis://127.0.0.1:6379"]) == 0
    assert "expire on their own" in capsys.readouterr().err


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main([])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        cli_main(["purge"])
    assert cli_main(["purge", "--store", "sqlite:///x.db", "--limit", "0"]) == 2
