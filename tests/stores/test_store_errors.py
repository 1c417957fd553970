"""Store errors say which store failed and where, never a password; missing drivers name the
extra to install (issue 9 §3 and §5)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from koasession import SessionMiddleware
from koasession.errors import StoreError

KEYS = ["_j2NUFsFTErjzFMRp6IthS3HGx_lg2BF1p7EoTISSS8"]
PASSWORD = "s3cr3t-Pa55word"


class Ctx:
    loaded_key = None


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a stalled server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


def app_over(store: Any, **options: Any) -> tuple[SessionMiddleware, list[Any]]:
    errors: list[Any] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"]["views"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def on_event(name: str, payload: Any) -> None:
        if name == "store_error":
            errors.append(payload["error"])

    app = SessionMiddleware(
        inner, keys=KEYS, store=store, on_event=on_event, allow_weak_keys=True, **options
    )
    return app, errors


async def get(app: Any) -> tuple[httpx.Response, float]:
    transport = httpx.ASGITransport(app=app)
    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/")
    return response, time.monotonic() - started


# -- the store and its address, never the password ---------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://koa:{pw}@127.0.0.1:{port}/sessions",
        "postgres://koa@127.0.0.1:{port}/sessions?password={pw}",
    ],
)
async def test_postgres_errors_name_the_server_not_the_password(
    dsn: str, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    from koasession.stores.postgres import PostgresStore

    store = PostgresStore(dsn.format(pw=PASSWORD, port=closed_port), connect_timeout=2)
    address = f"127.0.0.1:{closed_port}/sessions"
    assert address in repr(store) and PASSWORD not in repr(store)
    with pytest.raises(StoreError) as raised:
        await store.get("some-id")
    message = str(raised.value)
    assert "PostgresStore" in message and address in message and "get" in message
    assert PASSWORD not in message

    app, errors = app_over(store, on_store_error="raise")
    with caplog.at_level(logging.DEBUG):
        response, _ = await get(app)
    assert response.status_code == 503
    assert [address in str(e) for e in errors] == [True]
    assert PASSWORD not in caplog.text and PASSWORD not in str(errors)
    assert address in caplog.text
    await store.close()


async def test_a_stalled_server_times_out_with_the_store_named(silent_port: int) -> None:
    from koasession.stores.postgres import PostgresStore

    store = PostgresStore(f"postgresql://koa:{PASSWORD}@127.0.0.1:{silent_port}/db")
    app, errors = app_over(store, on_store_error="raise", store_timeout=0.5)
    response, took = await get(app)
    assert response.status_code == 503
    assert took < 1.5  # store_timeout, not the driver's 5 s connect timeout
    assert len(errors) == 1
    await store.close()

    # Without the middleware, the store's own connect timeout bounds the call.
    quick = PostgresStore(f"postgresql://koa@127.0.0.1:{silent_port}/db", connect_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(StoreError, match=rf"127\.0\.0\.1:{silent_port}/db.*timed out"):
        await quick.get("some-id")
    assert time.monotonic() - started < 2
    await quick.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://koa:{pw}@127.0.0.1:{port}/sessions", "mariadb://koa:{pw}@127.0.0.1:{port}/sessions"],
)
async def test_mysql_errors_name_the_server_not_the_password(
    url: str, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    from koasession.stores.mysql import MySQLStore

    store = MySQLStore(url.format(pw=PASSWORD, port=closed_port), connect_timeout=2)
    address = f"127.0.0.1:{closed_port}/sessions"
    assert address in repr(store) and PASSWORD not in repr(store)
    with pytest.raises(StoreError) as raised:
        await store.get("some-id")
    message = str(raised.value)
    assert "MySQLStore" in message and address in message and "get" in message
    assert PASSWORD not in message

    app, errors = app_over(store, on_store_error="raise")
    with caplog.at_level(logging.DEBUG):
        response, _ = await get(app)
    assert response.status_code == 503
    assert [address in str(e) for e in errors] == [True]
    assert PASSWORD not in caplog.text and PASSWORD not in str(errors)
    await store.close()


async def test_a_stalled_mysql_server_times_out_with_the_store_named(silent_port: int) -> None:
    from koasession.stores.mysql import MySQLStore

    store = MySQLStore(f"mysql://koa:{PASSWORD}@127.0.0.1:{silent_port}/db")
    app, errors = app_over(store, on_store_error="raise", store_timeout=0.5)
    response, took = await get(app)
    assert response.status_code == 503
    assert took < 1.5  # store_timeout, not the store's 5 s connect timeout
    assert len(errors) == 1
    await store.close()

    # The middleware lent the store its store_timeout: direct calls are bounded by it too...
    started = time.monotonic()
    with pytest.raises(StoreError, match="timed out"):
        await store.get("some-id")
    assert time.monotonic() - started < 1.5
    await store.close()
    # ...unless the store was given its own timeout, which wins.
    slow = MySQLStore(f"mysql://koa@127.0.0.1:{silent_port}/db", connect_timeout=1.5)
    app_over(slow, on_store_error="raise", store_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(StoreError, match="timed out"):
        await slow.get("some-id")
    assert time.monotonic() - started >= 1.4
    await slow.close()

    # Without the middleware, the store's own connect timeout bounds the call.
    quick = MySQLStore(f"mysql://koa@127.0.0.1:{silent_port}/db", connect_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(StoreError, match=rf"127\.0\.0\.1:{silent_port}/db.*timed out"):
        await quick.get("some-id")
    assert time.monotonic() - started < 2
    await quick.close()


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("mysql://u:p%40ss@db.example:3307/app", "db.example:3307/app"),
        ("mariadb://u@[::1]/app", "[::1]:3306/app"),
        (
            "mysql://u:pw-one@localhost/app?unix_socket=/run/mysqld/mysqld.sock",
            "/run/mysqld/mysqld.sock/app",
        ),
        ("mysql://u@host", "host:3306"),
    ],
)
def test_mysql_store_describes_its_server(url: str, address: str) -> None:
    from koasession.stores.mysql import MySQLStore

    described = repr(MySQLStore(url))
    assert f"MySQLStore({address}," in described
    assert "p@ss" not in described and "p%40ss" not in described and "pw-" not in described


async def test_sqlite_errors_name_the_file(tmp_path: Path) -> None:
    from koasession.stores.sqlite import SQLiteStore

    path = tmp_path / "missing-dir" / "sessions.db"
    store = SQLiteStore(path)
    with pytest.raises(StoreError) as raised:
        await store.set("some-id", {"v": 1}, 60, ctx=Ctx())
    assert "SQLiteStore" in str(raised.value) and str(path) in str(raised.value)
    app, errors = app_over(store, on_store_error="raise")
    response, _ = await get(app)
    assert response.status_code == 503
    assert [str(path) in str(e) for e in errors] == [True]


def test_a_file_that_cannot_open_leaves_no_worker_thread_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiosqlite stops the worker of a connection that failed to open without waiting, and the
    worker then reports to the event loop: a script whose loop ends on the error must not get a
    thread dying on "Event loop is closed". The worker is slowed down so that, without the
    store waiting for it, the loop is always closed first."""
    from koasession.stores.sqlite import SQLiteStore

    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    before = set(threading.enumerate())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        post = loop.call_soon_threadsafe

        def slow_post(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                time.sleep(0.2)
            return post(*args, **kwargs)

        monkeypatch.setattr(loop, "call_soon_threadsafe", slow_post)
        store = SQLiteStore(tmp_path / "missing-dir" / "sessions.db")
        with pytest.raises(StoreError):
            await store.get("s" * 43)

    asyncio.run(main())
    for thread in set(threading.enumerate()) - before:
        thread.join(5)
    assert died == []


# -- missing optional dependencies ------------------------------------------------------------


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import`` of ``modules`` fail, and forget what was imported through them."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)
    import koasession.stores

    for name in (
        "koasession.stores.postgres",
        "koasession.stores.sqlite",
        "koasession.stores.mysql",
    ):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for attr in ("PostgresStore", "SQLiteStore", "MySQLStore"):
        # The package caches the classes it imported lazily; vars() avoids importing them.
        monkeypatch.delitem(vars(koasession.stores), attr, raising=False)


@pytest.mark.parametrize(
    ("driver", "module", "url", "extra"),
    [
        ("asyncpg", "koasession.stores.postgres", "postgresql://u@h/db", "postgres"),
        ("aiosqlite", "koasession.stores.sqlite", "sqlite:///x.db", "sqlite"),
        ("asyncmy", "koasession.stores.mysql", "mysql://u@h/db", "mysql"),
    ],
)
def test_a_missing_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, driver: str, module: str, url: str, extra: str
) -> None:
    from koasession.stores import store_from_url

    _hide(monkeypatch, driver)
    hint = rf"pip install 'koasession\[{extra}\]'"
    with pytest.raises(ImportError, match=hint):
        importlib.import_module(module)
    with pytest.raises(ImportError, match=hint):
        store_from_url(url)


def test_encrypt_without_cryptography_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ImportError, match=r"pip install 'koasession\[crypto\]'"):
        SessionMiddleware(app, keys=KEYS, encrypt=True, allow_weak_keys=True)


@pytest.mark.parametrize(
    ("dsn", "address"),
    [
        ("postgresql://u:p%40ss@h1:5433,h2/db", "h1:5433,h2:5432/db"),
        ("postgresql:///db?host=/run/postgresql", "/run/postgresql:5432/db"),
        ("postgresql://[::1]/db", "[::1]:5432/db"),
        ("postgres://u@localhost", "localhost:5432"),
        ("postgresql://u:pw-one@host/db?password=pw-two&port=6000", "host:6000/db"),
    ],
)
def test_postgres_store_describes_its_server(dsn: str, address: str) -> None:
    from koasession.stores.postgres import PostgresStore

    described = repr(PostgresStore(dsn))
    assert f"PostgresStore({address}," in described
    assert "p@ss" not in described and "p%40ss" not in described and "pw-" not in described
