"""Session ids koa-session makes and keeps, made and kept here too (issue 10 §1, issue 15 §1).

koa-session prepends its ``prefix`` to a uuid and keeps any such id; so must we. One Redis is
shared through koa-redis (the session id, prefix included, is the Redis key on both sides), and
a session started on either side is read, changed and kept by the other, with an ``@`` prefix
that the old id alphabet refused.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from .test_koa_interop import COOKIE, KEY_1, PySide, koa_get, pair, py_side, set_cookies

if TYPE_CHECKING:
    from .conftest import KoaFactory, KoaServer


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@asynccontextmanager
async def py_store_side(redis_url: str, prefix: str) -> AsyncIterator[PySide]:
    """Our middleware in store mode on koa-redis's keys, with koa's ``prefix``."""
    import redis.asyncio as aioredis

    from koasession.stores.redis import RedisStore

    client = aioredis.Redis.from_url(redis_url)
    try:
        yield py_side([KEY_1], store=RedisStore(client, key_prefix=""), prefix=prefix, max_age=60)
    finally:
        await client.aclose()


def at_prefix(redis_prefix: str) -> str:
    # The fixture's run-unique prefix keeps the keys apart and gets them deleted at the end.
    return f"u@{redis_prefix}"


def koa(koa_server: KoaFactory, redis_url: str, prefix: str) -> KoaServer:
    return koa_server(
        keys=[KEY_1], max_age=60_000, store="redis", redis_url=redis_url, prefix=prefix
    )


async def test_at_prefixed_session_made_here_is_kept_here_and_by_koa(
    koa_server: KoaFactory, redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    prefix = at_prefix(redis_prefix)
    server = koa(koa_server, redis_url, prefix)
    async with py_store_side(redis_url, prefix) as py:
        minted = await py.get("/set?" + urlencode({"user": "uma"}))
        jar = pair(minted)
        sid = jar[COOKIE]
        assert sid.startswith("u@")
        assert json.loads(redis_client.get(sid))["user"] == "uma"

        # Kept here on the next requests (before: refused as a malformed id, then 503s).
        again = await py.get("/set?views=1", jar)
        assert again.json()["session"] == {"user": "uma", "views": "1"}
        assert again.json()["isNew"] is False
        assert COOKIE not in set_cookies(again) or set_cookies(again)[COOKIE].value == sid

        # Kept by koa, and koa's change is read back here under the same id.
        seen = (await koa_get(server, "/get", jar)).json()
        assert seen["session"] == {"user": "uma", "views": "1"}
        assert seen["externalKey"] == sid
        await koa_get(server, "/set?views=2", jar)
        back = await py.get("/get", jar)
        assert back.json()["session"] == {"user": "uma", "views": "2"}
        assert back.json()["externalKey"] == sid


async def test_at_prefixed_session_made_by_koa_is_kept_here(
    koa_server: KoaFactory, redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    prefix = at_prefix(redis_prefix)
    server = koa(koa_server, redis_url, prefix)
    minted = await koa_get(server, "/set?" + urlencode({"user": "vic"}))
    jar = pair(minted)
    sid = jar[COOKIE]
    assert sid.startswith("u@")  # koa: prefix + uuid

    async with py_store_side(redis_url, prefix) as py:
        for views in ("1", "2"):
            read = await py.get("/set?" + urlencode({"views": views}), jar)
            assert read.json()["session"] == {"user": "vic", "views": views}
            assert read.json()["isNew"] is False
            assert read.json()["externalKey"] == sid
        assert json.loads(redis_client.get(sid))["views"] == "2"

    seen = (await koa_get(server, "/get", jar)).json()
    assert seen["session"] == {"user": "vic", "views": "2"}
