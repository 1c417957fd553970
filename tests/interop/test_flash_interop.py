"""Flash messages passed between koa-flash 1.0.0 in Node and ``koasession.flash``, both ways.

The Koa app (``koa_app/server.js``) mounts koa-flash under ``/flash/``:

    GET /flash/set?data=JSON   ctx.flash = value      GET /flash/get   {"flash": ctx.flash, ...}

Our side is a plain ASGI app in ``SessionMiddleware`` with ``algorithm="sha1"`` and the same
keys, so the session cookie (or, in store mode, the Redis entry) is shared as is.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import pytest

from koasession import SessionMiddleware, flash, pop_flashes

from .test_koa_interop import COOKIE, DAY_MS, DAY_S, KEY_1, PySide, koa_get, pair, set_cookies

if TYPE_CHECKING:
    from .conftest import KoaFactory


async def flash_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/flash?category=..&message=..`` (repeatable pairs) flashes; ``/pop`` pops them."""
    session = scope["session"]
    query = parse_qsl(scope["query_string"].decode(), keep_blank_values=True)
    if scope["path"] == "/flash":
        for (_, category), (_, message) in zip(query[::2], query[1::2], strict=True):
            flash(session, message, category)
        result: Any = dict(session)
    elif scope["path"] == "/pop":
        result = [list(item) for item in pop_flashes(session)]
    else:
        result = dict(session)
    body = json.dumps(result).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def python_side(**options: Any) -> PySide:
    return PySide(
        SessionMiddleware(flash_app, keys=[KEY_1], algorithm="sha1", max_age=DAY_S, **options)
    )


def flashes(*pairs: tuple[str, str]) -> str:
    return "/flash?" + urlencode([(k, v) for c, m in pairs for k, v in (("c", c), ("m", m))])


async def test_python_flash_is_read_by_koa_flash(koa_server: KoaFactory) -> None:
    koa = koa_server(keys=[KEY_1], algorithm="sha1", max_age=DAY_MS)
    py = python_side()
    jar = pair(await py.get(flashes(("error", "Wrong password"), ("info", "Try again"))))

    seen = (await koa_get(koa, "/flash/get", jar)).json()
    assert seen["flash"] == {"error": "Wrong password", "info": "Try again"}

    # koa-flash removed it from the session it wrote back: nothing left for us to show.
    after = pair(await koa_get(koa, "/flash/get", jar))
    assert (await py.get("/pop", after)).json() == []


async def test_koa_flash_is_popped_here_once(koa_server: KoaFactory) -> None:
    koa = koa_server(keys=[KEY_1], algorithm="sha1", max_age=DAY_MS)
    py = python_side()
    data = json.dumps({"error": "Nope", "success": "Saved"})
    jar = pair(await koa_get(koa, "/flash/set?" + urlencode({"data": data})))

    popped = await py.get("/pop", jar)
    assert popped.json() == [["error", "Nope"], ["success", "Saved"]]
    jar = pair(popped)
    assert (await py.get("/pop", jar)).json() == []
    assert (await koa_get(koa, "/flash/get", jar)).json()["flash"] == {}


@pytest.mark.parametrize(
    ("value", "popped"),
    [("Saved", [["info", "Saved"]]), (["a", "b"], [["info", "a"], ["info", "b"]])],
)
async def test_koa_flash_without_categories_is_info_here(
    koa_server: KoaFactory, value: Any, popped: list[Any]
) -> None:
    koa = koa_server(keys=[KEY_1], algorithm="sha1", max_age=DAY_MS)
    jar = pair(await koa_get(koa, "/flash/set?" + urlencode({"data": json.dumps(value)})))
    assert (await python_side().get("/pop", jar)).json() == popped


async def test_several_python_flashes_in_one_category_reach_koa_as_an_array(
    koa_server: KoaFactory,
) -> None:
    koa = koa_server(keys=[KEY_1], algorithm="sha1", max_age=DAY_MS)
    jar = pair(await python_side().get(flashes(("info", "Saved"), ("info", "Mail sent"))))
    seen = (await koa_get(koa, "/flash/get", jar)).json()
    assert seen["flash"] == {"info": ["Saved", "Mail sent"]}


async def test_flashes_through_a_shared_redis_store(
    koa_server: KoaFactory, redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio as aioredis

    from koasession.stores.redis import RedisStore

    koa = koa_server(
        keys=[KEY_1], max_age=60_000, store="redis", redis_url=redis_url, prefix=redis_prefix
    )
    client = aioredis.Redis.from_url(redis_url)
    try:
        py = python_side(store=RedisStore(client, key_prefix=""), prefix=redis_prefix)
        jar = pair(await py.get(flashes(("warning", "Disk almost full"))))
        assert jar[COOKIE].startswith(redis_prefix)
        seen = (await koa_get(koa, "/flash/get", jar)).json()
        assert seen["flash"] == {"warning": "Disk almost full"}

        data = json.dumps({"success": "Welcome back"})
        changed = await koa_get(koa, "/flash/set?" + urlencode({"data": data}), jar)
        assert COOKIE not in set_cookies(changed) or pair(changed) == jar  # same id
        assert (await py.get("/pop", jar)).json() == [["success", "Welcome back"]]
        assert (await koa_get(koa, "/flash/get", jar)).json()["flash"] == {}
    finally:
        await client.aclose()
