"""Encryption at rest (koasession.atrest): what is sealed into the store opens again, whatever
its size, on every store-mode path (store=, context_store=, regenerate)."""

from __future__ import annotations

from typing import Any

import pytest

from koasession import atrest
from koasession.crypto import MAX_TOKEN_LENGTH
from koasession.stores.memory import MemoryStore

from ._app import KEY, client, cookie_header, cookie_pairs, wrap

# Just past the cookie bound once sealed (about 12 KB of JSON), and far past it.
SIZES = [12_200, 200_000]


def test_a_sealed_value_far_over_the_cookie_bound_opens() -> None:
    cipher = atrest.make_cipher([KEY])
    payload = {"v": "x" * 200_000, "_expire": 1700000000000, "_maxAge": 86400000}
    stored = atrest.seal_value(cipher, payload, b"some-id")
    assert len(stored[atrest.SEALED_KEY]) > MAX_TOKEN_LENGTH
    assert atrest.open_value(cipher, stored, b"some-id") == (payload, False, None)
    # Still bound to its id, and not a cookie: size is the only check this lifts.
    assert atrest.open_value(cipher, stored, b"other-id")[2] == atrest.CANNOT_OPEN


class SharedStore:
    """A ``context_store`` class: built per request, backed by one MemoryStore."""

    backing = MemoryStore()

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    async def get(self, key: str, max_age: Any, **kw: Any) -> Any:
        return await self.backing.get(key, max_age, **kw)

    async def set(self, key: str, value: Any, max_age: Any, **kw: Any) -> Any:
        return await self.backing.set(key, value, max_age, **kw)

    async def destroy(self, key: str, **kw: Any) -> Any:
        return await self.backing.destroy(key, **kw)


async def handler(scope: dict[str, Any]) -> dict[str, Any]:
    session = scope["session"]
    query = scope["query_string"].decode()
    if query.startswith("set="):
        session["v"] = "x" * int(query[4:])
    elif query == "login":
        await session.regenerate()
    return {"len": len(session.get("v", ""))}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["store", "context_store"])
async def test_a_large_sealed_session_is_read_back_and_survives_regenerate(
    mode: str, size: int
) -> None:
    if mode == "store":
        store = MemoryStore()
        options: dict[str, Any] = {"store": store}
    else:
        store = SharedStore.backing = MemoryStore()
        options = {"context_store": SharedStore}
    app = wrap(handler, encrypt=True, **options)
    async with client(app) as c:
        saved = await c.get(f"/?set={size}", headers={"cookie": ""})
        stored = await store.get(cookie_pairs(saved)["koa.sess"])
        assert stored is not None and len(stored[atrest.SEALED_KEY]) > MAX_TOKEN_LENGTH
        read = await c.get("/", headers={"cookie": cookie_header(saved)})
        assert read.json() == {"len": size}

        login = await c.get("/?login", headers={"cookie": cookie_header(saved)})
        new_id = cookie_pairs(login)["koa.sess"]
        assert login.json() == {"len": size} and new_id != cookie_pairs(saved)["koa.sess"]
        after = await c.get("/", headers={"cookie": cookie_header(login)})
        assert after.json() == {"len": size}
    assert len(store) == 1  # regenerate destroyed the old entry
