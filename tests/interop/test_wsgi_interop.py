"""The WSGI adapter's interop promises, on the wire.

- A Flask app (koasession.flask) and a Starlette app (koasession's ASGI middleware) with the same
  keys and store prefix share sessions through Redis: each reads and updates what the other
  wrote.
- A WSGI app and Node's koa-session 7 share cookie-mode sessions (keygrip SHA-1): a cookie
  minted by either side is read, and updated, by the other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from flask import Flask, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.test import TestResponse

from koasession import SessionMiddleware as ASGISessionMiddleware
from koasession.flask import init_app, koasession_session

from .conftest import KoaFactory
from .test_koa_interop import COOKIE, DAY_MS, DAY_S, KEY_1, KEY_2, SIG, keygrip_sign, koa_get, pair


def flask_app(keys: list[str], **options: Any) -> Flask:
    """Flask with the Koa app's /set and /get routes."""
    app = Flask(__name__)

    @app.get("/set")
    def set_fields() -> dict[str, Any]:
        session = koasession_session()
        for name, value in request.args.items():
            session[name] = value
        return {"session": dict(session)}

    @app.get("/get")
    def get() -> dict[str, Any]:
        session = koasession_session()
        return {"session": dict(session), "isNew": session.is_new, "maxAge": session.max_age}

    init_app(app, keys, **options)
    return app


def werkzeug_pair(response: TestResponse) -> dict[str, str]:
    """The session cookie and its signature a Flask response set, as a request cookie jar."""
    jar = {}
    for line in response.headers.getlist("Set-Cookie"):
        name, _, rest = line.partition("=")
        if name in (COOKIE, SIG):
            jar[name] = rest.split(";", 1)[0]
    assert COOKIE in jar, response.headers.getlist("Set-Cookie")
    return jar


def flask_get(app: Flask, path: str, jar: dict[str, str]) -> TestResponse:
    """One request with exactly the cookies given (no client-side jar)."""
    header = "; ".join(f"{k}={v}" for k, v in jar.items())
    response = app.test_client(use_cookies=False).get(path, headers={"Cookie": header})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_wsgi_cookie_is_accepted_by_koa_and_back(koa_server: KoaFactory) -> None:
    keys = [KEY_1, KEY_2]
    app = flask_app(keys, algorithm="sha1", max_age=DAY_S)
    koa = koa_server(keys=keys, algorithm="sha1", max_age=DAY_MS)

    minted = app.test_client(use_cookies=False).get("/set?" + urlencode({"user": "alice"}))
    jar = werkzeug_pair(minted)
    assert jar[SIG] == keygrip_sign(KEY_1, f"{COOKIE}={jar[COOKIE]}", "sha1")
    seen = asyncio.run(koa_get(koa, "/get", jar)).json()
    assert seen["session"] == {"user": "alice"} and seen["isNew"] is False

    # koa updates it; the WSGI side reads koa's cookie, changes it, and koa reads that.
    from_koa = pair(asyncio.run(koa_get(koa, "/set?views=1", jar)))
    read = flask_get(app, "/get", from_koa).json
    assert read == {"session": {"user": "alice", "views": "1"}, "isNew": False, "maxAge": DAY_S}
    changed = werkzeug_pair(flask_get(app, "/set?views=2", from_koa))
    assert asyncio.run(koa_get(koa, "/get", changed)).json()["session"] == {
        "user": "alice",
        "views": "2",
    }


@pytest.fixture
async def redis_prefix_key(redis_url: str) -> AsyncIterator[str]:
    """A store key prefix of this test; its keys are deleted afterwards."""
    import redis

    prefix = f"koasession-wsgi-interop:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


async def test_flask_and_starlette_share_sessions_through_redis(
    redis_url: str, redis_prefix_key: str
) -> None:
    from koasession.stores.redis import RedisStore

    keys = [KEY_1]

    async def starlette_get(request: Request) -> JSONResponse:
        return JSONResponse({"session": dict(request.session)})

    async def starlette_set(request: Request) -> JSONResponse:
        for name, value in request.query_params.items():
            request.session[name] = value
        return JSONResponse({"session": dict(request.session)})

    starlette = ASGISessionMiddleware(
        Starlette(routes=[Route("/get", starlette_get), Route("/set", starlette_set)]),
        keys=keys,
        store=RedisStore(redis_url, key_prefix=redis_prefix_key),
    )
    flask = flask_app(keys, store=RedisStore(redis_url, key_prefix=redis_prefix_key))

    # Flask writes; Starlette reads it and updates it.
    jar = werkzeug_pair(flask_get(flask, "/set?by=flask&n=1", {}))
    transport = httpx.ASGITransport(app=starlette)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        header = {"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        read = await http.get("/get", headers=header)
        assert read.json() == {"session": {"by": "flask", "n": "1"}}
        updated = await http.get("/set?n=2&seen=starlette", headers=header)
        assert updated.status_code == 200
        # Same id, so the cookie is unchanged; Flask sees Starlette's update.
        assert flask_get(flask, "/get", jar).json["session"] == {
            "by": "flask",
            "n": "2",
            "seen": "starlette",
        }
        # Starlette writes a new session; Flask reads and updates it; Starlette sees that.
        http.cookies.clear()
        fresh = await http.get("/set?by=starlette")
        fresh_jar = pair(fresh)
        assert flask_get(flask, "/get", fresh_jar).json["session"] == {"by": "starlette"}
        flask_get(flask, "/set?also=flask", fresh_jar)
        header = {"cookie": "; ".join(f"{k}={v}" for k, v in fresh_jar.items())}
        final = await http.get("/get", headers=header)
        assert final.json() == {"session": {"by": "starlette", "also": "flask"}}
    flask.extensions["koasession"].close()
    await starlette.close()
