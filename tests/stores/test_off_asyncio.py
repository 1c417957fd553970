"""The bundled stores called outside asyncio (under trio): a ``ConfigurationError`` that says
so, through the middleware too, and never a ``StoreError`` (a 503 that looks like an outage).

Their drivers (redis-py, asyncpg, asyncmy, aiosqlite) run only on asyncio. Each store is first
used on asyncio, so that the check is the one of a store whose connections are open (the hot
path), then under trio, then on asyncio again, where it still works.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _services import require_module
from koasession import SessionMiddleware
from koasession.errors import ConfigurationError

from .conftest import counter_app

trio = require_module("trio")

KEYS = ["Zq8vR2mT9xW4pL7nB3kY6hJ1sD5fG0aQeUoIcV"]
KINDS = ["mysql", "postgres", "redis", "sqlite"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    kind = request.param
    table = f"ks_trio_{secrets.token_hex(4)}"
    if kind == "redis":
        from koasession.stores.redis import RedisStore

        made: Any = RedisStore(request.getfixturevalue("redis_url"), key_prefix=f"{table}:")
    elif kind == "postgres":
        from koasession.stores.postgres import PostgresStore

        made = PostgresStore(request.getfixturevalue("database_url"), table=table)
    elif kind == "mysql":
        from koasession.stores.mysql import MySQLStore

        made = MySQLStore(request.getfixturevalue("mysql_url"), table=table)
    else:
        from koasession.stores.sqlite import SQLiteStore

        made = SQLiteStore(tmp_path / "trio.db")
    yield made

    async def clean_up() -> None:
        if kind == "redis":
            await made.destroy("first-id")
        elif kind != "sqlite":  # its file goes with tmp_path
            await made.drop_table()
        await made.close()

    asyncio.run(clean_up())


def _expected(store: Any) -> str:
    return rf"^{type(store).__name__} needs an asyncio event loop .* under trio: "


def test_a_bundled_store_under_trio_says_it_needs_asyncio(store: Any) -> None:
    assert asyncio.run(store.set("first-id", {"views": 1}, 60_000)) in (True, None)

    async def under_trio() -> None:
        await store.get("first-id")

    with pytest.raises(ConfigurationError, match=_expected(store)):
        trio.run(under_trio)

    # asyncio again: the store still works (a new loop, so its connections are new ones)
    assert asyncio.run(store.get("first-id")) == {"views": 1}


def test_closing_a_bundled_store_under_trio_is_quiet(store: Any) -> None:
    """A trio app's lifespan shutdown closes its stores: nothing to close on trio, so no error
    (the middleware would log one at every shutdown); connections of asyncio loops that are
    gone are dropped, and the store reconnects on its next asyncio call."""
    assert asyncio.run(store.set("first-id", {"views": 1}, 60_000)) in (True, None)
    trio.run(store.close)
    assert asyncio.run(store.get("first-id")) == {"views": 1}


def test_through_the_middleware_the_request_fails_with_that_error(store: Any) -> None:
    """Not a 503 ("Session store unavailable"), which would send users to look for an outage:
    the error escapes to the server, which logs it and answers 500."""
    events: list[str] = []
    app = SessionMiddleware(
        counter_app, keys=KEYS, store=store, on_event=lambda name, payload: events.append(name)
    )

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/")

    with pytest.raises(ConfigurationError, match=_expected(store)):
        trio.run(request)
    assert events == []
