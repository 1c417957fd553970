"""``lazy=True`` store loads and ``exclude=``: requests that do not use the session cost no store
call and carry no session headers."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest

from koasession import SessionMiddleware, SessionNotLoaded, load_session
from koasession.errors import ConfigurationError
from koasession.stores import MemoryStore

KEYS = ["q3Vt8ZrLw0Ny5sKd2Hm7PbXe4Fj9UgCa1TiRo6YlEnQ"]


class CountingStore:
    """A MemoryStore that counts the calls the middleware makes."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.calls: Counter[str] = Counter()

    async def get(self, key: str, max_age: Any, *, rolling: bool, ctx: Any) -> Any:
        self.calls["get"] += 1
        return await self.inner.get(key, max_age, rolling=rolling, ctx=ctx)

    async def set(self, key: str, data: Any, max_age: Any, **kw: Any) -> Any:
        self.calls["set"] += 1
        return await self.inner.set(key, data, max_age, **kw)

    async def destroy(self, key: str, *, ctx: Any) -> None:
        self.calls["destroy"] += 1
        await self.inner.destroy(key, ctx=ctx)


async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    body = b"ok"
    if path == "/count":
        session = await scope["session"].load()
        session["n"] = session.get("n", 0) + 1
        body = str(session["n"]).encode()
    elif path == "/read":
        body = str((await load_session(scope)).get("n")).encode()
    elif path == "/sync":
        try:
            scope["session"].get("n")
        except SessionNotLoaded as exc:
            body = str(exc).encode()
    elif path.startswith("/static/") or path == "/health":
        body = b"session" if "session" in scope else b"none"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def client(app: Any) -> httpx.AsyncClient:
    # Not closed: the ASGI transport holds nothing to release.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def logged_in(store: CountingStore, **options: Any) -> tuple[httpx.AsyncClient, Any]:
    app = SessionMiddleware(inner, keys=KEYS, store=store, **options)
    c = client(app)
    assert (await c.get("/count")).text == "1"
    store.calls.clear()
    return c, app


async def test_lazy_untouched_request_with_a_cookie_makes_no_store_call() -> None:
    store = CountingStore()
    c, _ = await logged_in(store, lazy=True)
    response = await c.get("/untouched")
    assert response.status_code == 200 and "set-cookie" not in response.headers
    assert store.calls == Counter()
    assert (await c.get("/read")).text == "1"
    assert store.calls == Counter(get=1)
    assert (await c.get("/count")).text == "2"
    assert store.calls == Counter(get=2, set=1)


async def test_without_lazy_every_request_with_a_cookie_reads_the_store() -> None:
    store = CountingStore()
    c, _ = await logged_in(store)
    assert (await c.get("/untouched")).status_code == 200
    assert store.calls == Counter(get=1)


async def test_lazy_sync_use_before_load_says_what_to_do() -> None:
    store = CountingStore()
    c, _ = await logged_in(store, lazy=True)
    response = await c.get("/sync")
    assert "await session.load()" in response.text
    assert store.calls == Counter()


async def test_lazy_with_an_async_valid_still_loads_before_the_handler() -> None:
    async def valid(ctx: Any, data: Any) -> bool:
        return True

    store = CountingStore()
    c, _ = await logged_in(store, lazy=True, valid=valid)
    assert (await c.get("/sync")).status_code == 200
    assert store.calls == Counter(get=1)


@pytest.mark.parametrize(
    "exclude",
    [["/static/", "/health"], lambda scope: scope["path"] in ("/health", "/static/app.css")],
    ids=["prefixes", "callable"],
)
async def test_excluded_paths_get_no_session(exclude: Any) -> None:
    store = CountingStore()
    c, _ = await logged_in(store, exclude=exclude, rolling=True)
    for path in ("/static/app.css", "/health"):
        response = await c.get(path)
        assert response.text == "none" and "set-cookie" not in response.headers
    assert store.calls == Counter()
    assert (await c.get("/count")).text == "2"  # other paths keep their session


@pytest.mark.parametrize("exclude", ["/static/", ["static/"], [b"/static/"], 3])
def test_a_bad_exclude_is_a_clear_error(exclude: Any) -> None:
    with pytest.raises(ConfigurationError, match="exclude"):
        SessionMiddleware(inner, keys=KEYS, exclude=exclude)
