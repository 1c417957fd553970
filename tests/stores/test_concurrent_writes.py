"""Concurrent requests on one session, on every store: a refresh keeps other requests' writes.

The interleaving is driven by events, not sleeps: request A loads the session and waits inside
its handler until request B has finished writing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs

import pytest

from koasession import SessionMiddleware
from koasession.errors import ConfigurationError
from koasession.stores.memory import MemoryStore

from .conftest import Harness
from .test_through_middleware import COOKIE, KEYS, call, cookie_header, set_cookies

pytestmark = pytest.mark.timeout(90)


def gated_app(store: Any, gate: asyncio.Event, loaded: asyncio.Event, **options: Any) -> Any:
    """``/set?k=..&v=..`` writes one key; ``/read`` loads, then waits for ``gate``;
    ``/slowset?k=..&v=..`` loads, waits, then writes one key and deletes ``gone``; ``/get``."""

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        if scope["path"] == "/set":
            session[query["k"]] = int(query["v"])
        elif scope["path"] == "/nul":
            session["s"] = "a\x00b"
        elif scope["path"] == "/read":
            len(session)  # loaded: what this request saw
            loaded.set()
            await gate.wait()
        elif scope["path"] == "/slowset":
            len(session)
            loaded.set()
            await gate.wait()
            session[query["k"]] = int(query["v"])
            session.pop("gone", None)
        body = json.dumps(dict(session)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return SessionMiddleware(inner, keys=KEYS, store=store, **options)


async def interleave(app: Any, cookie: str, gate: asyncio.Event, loaded: asyncio.Event) -> Any:
    """A reads and waits; B writes x=2 meanwhile; then A finishes. Returns A's response."""
    slow = asyncio.ensure_future(call(app, "/read", cookie))
    await loaded.wait()
    written = await call(app, "/set?k=x&v=2", cookie)
    assert written.status_code == 200
    gate.set()
    return await slow


@pytest.mark.parametrize(
    "options",
    [{"rolling": True}, {"renew": True, "max_age": 100}, {"idle_timeout": 600}],
    ids=["rolling", "renew", "idle"],
)
async def test_read_only_refresh_keeps_a_concurrent_write(
    harness: Harness, options: dict[str, Any]
) -> None:
    store = await harness.make()
    gate, loaded = asyncio.Event(), asyncio.Event()
    app = gated_app(store, gate, loaded, **options)
    first = await call(app, "/set?k=x&v=1")
    cookie = cookie_header(first)
    sid = set_cookies(first)[COOKIE]
    before = await store.get(sid)
    if "renew" in options:
        # Near its end, so that the read-only request renews it.
        before["_expire"] -= 60_000
    if "rolling" in options:
        # A second back, so that the refresh moves it even within the millisecond of the first
        # write (the requests of this test can all run in one).
        before["_expire"] -= 1_000
    if "idle_timeout" in options:
        # Last active two minutes ago, so that the read-only request records activity.
        before["_accessed"] -= 120_000
    await store.set(sid, before, 110)

    slow = await interleave(app, cookie, gate, loaded)

    assert slow.status_code == 200 and slow.json() == {"x": 1}  # A saw the old value
    assert set_cookies(slow).get(COOKIE) == sid  # and refreshed the session's cookie
    stored = await store.get(sid)
    assert stored["x"] == 2  # B's write survived A's refresh
    if "idle_timeout" in options:
        assert stored["_accessed"] > before["_accessed"]
    else:
        assert stored["_expire"] > before["_expire"]
    assert (await call(app, "/get", cookie)).json() == {"x": 2}


async def test_refresh_of_a_destroyed_session_creates_nothing(harness: Harness) -> None:
    store = await harness.make()
    gate, loaded = asyncio.Event(), asyncio.Event()
    app = gated_app(store, gate, loaded, rolling=True)
    first = await call(app, "/set?k=x&v=1")
    sid = set_cookies(first)[COOKIE]
    slow = asyncio.ensure_future(call(app, "/read", cookie_header(first)))
    await loaded.wait()
    await store.destroy(sid)
    gate.set()
    response = await slow
    assert response.status_code == 200
    assert COOKIE not in set_cookies(response)
    assert await harness.dump(store) == {}


class WithoutTouch:
    """A store with only koa's get/set/destroy: the middleware must rewrite to refresh."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    async def get(self, key: str, max_age: Any, *, rolling: bool, ctx: Any) -> Any:
        return await self.inner.get(key, max_age, rolling=rolling, ctx=ctx)

    async def set(self, key: str, data: Any, max_age: Any, **kw: Any) -> Any:
        return await self.inner.set(key, data, max_age, **kw)

    async def destroy(self, key: str, *, ctx: Any) -> None:
        await self.inner.destroy(key, ctx=ctx)


async def test_a_store_without_touch_keeps_last_writer_wins() -> None:
    store = WithoutTouch()
    gate, loaded = asyncio.Event(), asyncio.Event()
    app = gated_app(store, gate, loaded, rolling=True)
    first = await call(app, "/set?k=x&v=1")
    sid = set_cookies(first)[COOKIE]
    slow = await interleave(app, cookie_header(first), gate, loaded)
    assert set_cookies(slow).get(COOKIE) == sid
    stored = await store.get(sid, None, rolling=True, ctx=None)
    assert stored is not None and stored["x"] == 1  # koa's behaviour: the refresh rewrote it


async def test_refresh_of_a_value_holding_nul(harness: Harness) -> None:
    # PostgreSQL's jsonb refuses U+0000: its touch hands such an entry back for a full save.
    store = await harness.make()
    app = gated_app(store, asyncio.Event(), asyncio.Event(), rolling=True)
    first = await call(app, "/nul")
    sid = set_cookies(first)[COOKIE]
    stale = {**(await store.get(sid)), "_expire": 1_000_000}
    stale["_expire"] += int(time.time() * 1000)
    await store.set(sid, stale, 110)
    again = await call(app, "/get", cookie_header(first))
    assert again.status_code == 200 and again.json() == {"s": "a\x00b"}
    stored = await store.get(sid)
    assert stored["s"] == "a\x00b" and stored["_expire"] > stale["_expire"]


async def two_writers(app: Any, gate: asyncio.Event, loaded: asyncio.Event) -> str:
    """A loads, B writes b=2, A writes a=1 and deletes ``gone``; returns the session id."""
    first = await call(app, "/set?k=gone&v=0")
    cookie = cookie_header(first)
    slow = asyncio.ensure_future(call(app, "/slowset?k=a&v=1", cookie))
    await loaded.wait()
    assert (await call(app, "/set?k=b&v=2", cookie)).status_code == 200
    gate.set()
    assert (await slow).status_code == 200
    return set_cookies(first)[COOKIE]


async def test_merge_lands_writes_of_different_keys(harness: Harness) -> None:
    store = await harness.make()
    gate, loaded = asyncio.Event(), asyncio.Event()
    app = gated_app(store, gate, loaded, merge=True)
    sid = await two_writers(app, gate, loaded)
    stored = await store.get(sid)
    assert {k: v for k, v in stored.items() if not k.startswith("_")} == {"a": 1, "b": 2}
    assert stored["_expire"] > time.time() * 1000


async def test_without_merge_the_last_writer_wins(harness: Harness) -> None:
    store = await harness.make()
    gate, loaded = asyncio.Event(), asyncio.Event()
    app = gated_app(store, gate, loaded)
    sid = await two_writers(app, gate, loaded)
    stored = await store.get(sid)
    assert {k: v for k, v in stored.items() if not k.startswith("_")} == {"a": 1}


async def test_merge_of_a_destroyed_session_creates_nothing(harness: Harness) -> None:
    store = await harness.make()
    gate, loaded = asyncio.Event(), asyncio.Event()
    app = gated_app(store, gate, loaded, merge=True)
    first = await call(app, "/set?k=x&v=1")
    slow = asyncio.ensure_future(call(app, "/slowset?k=a&v=1", cookie_header(first)))
    await loaded.wait()
    await store.destroy(set_cookies(first)[COOKIE])
    gate.set()
    response = await slow
    assert response.status_code == 200 and COOKIE not in set_cookies(response)
    assert await harness.dump(store) == {}


def test_merge_needs_store_mode_and_a_merging_store() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(ConfigurationError, match=r"merge=True .* needs store mode"):
        SessionMiddleware(app, keys=KEYS, merge=True)
    with pytest.raises(ConfigurationError, match="merge=True needs a store with a merge"):
        SessionMiddleware(app, keys=KEYS, store=WithoutTouch(), merge=True)
