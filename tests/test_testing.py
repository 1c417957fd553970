"""koasession.testing: cookies made as the middleware makes them, sessions read from responses."""

from __future__ import annotations

import base64
import hmac
import json
import time
import warnings
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from _services import require_module
from koasession import MemoryStore, SessionMiddleware, codec, testing
from koasession.asgi import Receive, Scope, Send

KEY = "PG09srHzA4A2oOPHBLc9zqgTP8jclCl8mQyKfXgmzeY"
OLD_KEY = "P1PUAA5e_CxDe8BV621CBWiAKxbGcB8g1_ColJ35-to"


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Returns the session's data; ``?set=<json>`` merges values, ``?drop=1`` removes it."""
    session = scope["session"]
    query = scope.get("query_string", b"").decode()
    params = dict(unquote(part).split("=", 1) for part in query.split("&") if "=" in part)
    if "set" in params:
        session.update(json.loads(params["set"]))
    if params.get("drop"):
        session.destroy()
    body = json.dumps(dict(session)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def middleware(**options: Any) -> SessionMiddleware:
    options.setdefault("keys", [KEY])
    return SessionMiddleware(echo, **options)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def sha(name: str, value: str, key: str = KEY, alg: str = "sha256") -> str:
    digest = hmac.new(key.encode(), f"{name}={value}".encode(), alg).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def response_with(*set_cookies: str) -> httpx.Response:
    return httpx.Response(200, headers=[("set-cookie", line) for line in set_cookies])


# -- session_cookies ----------------------------------------------------------------------


async def test_session_cookies_are_what_the_middleware_accepts() -> None:
    app = middleware()
    cookies = testing.session_cookies(app, {"user": "ada", "n": [1, 2]})
    assert set(cookies) == {"koa.sess", "koa.sess.sig"}
    payload = codec.decode(cookies["koa.sess"])
    assert payload is not None
    assert payload["user"] == "ada" and payload["_maxAge"] == 86400000
    assert abs(payload["_expire"] - (time.time() * 1000 + 86400000)) < 5000
    assert cookies["koa.sess.sig"] == sha("koa.sess", cookies["koa.sess"])
    async with client(app) as http:
        testing.set_session(http, app, {"user": "ada", "n": [1, 2]})
        response = await http.get("/")
    assert response.json() == {"user": "ada", "n": [1, 2]}


async def test_max_age_override_and_browser_session() -> None:
    app = middleware()
    payload = codec.decode(testing.session_cookies(app, {"a": 1}, max_age=3600)["koa.sess"])
    assert payload is not None and payload["_maxAge"] == 3600000
    payload = codec.decode(testing.session_cookies(app, {"a": 1}, max_age="session")["koa.sess"])
    assert payload is not None and payload["_session"] is True and "_maxAge" not in payload
    assert {k: v for k, v in payload.items() if k != "_created"} == {"a": 1, "_session": True}


async def test_sha1_cookies_match_koa() -> None:
    app = middleware(algorithm="sha1", keys=[KEY, OLD_KEY])
    cookies = testing.session_cookies(app, {"a": 1})
    assert cookies["koa.sess.sig"] == sha("koa.sess", cookies["koa.sess"], alg="sha1")


async def test_custom_name_unsigned_and_custom_codec() -> None:
    app = middleware(key="sid", signed=False)
    assert set(testing.session_cookies(app, {"a": 1})) == {"sid"}

    def encode(data: dict[str, Any]) -> str:
        return json.dumps(data, separators=(",", ":")).encode().hex()

    def decode(value: str) -> Any:
        return json.loads(bytes.fromhex(value))

    app = middleware(encode=encode, decode=decode)
    cookies = testing.session_cookies(app, {"a": 1})
    assert decode(cookies["koa.sess"])["a"] == 1
    async with client(app) as http:
        testing.set_session(http, app, {"a": 1})
        response = await http.get('/?set={"b":2}')
    assert response.json() == {"a": 1, "b": 2}
    assert testing.read_session(response, app) == {"a": 1, "b": 2}


async def test_encrypted_cookies() -> None:
    require_module("cryptography")
    app = middleware(encrypt=True)
    cookies = testing.session_cookies(app, {"secret": "x"})
    assert set(cookies) == {"koa.sess"}
    assert codec.decode(cookies["koa.sess"]) is None  # not readable base64 JSON
    async with client(app) as http:
        testing.set_session(http, app, {"secret": "x"})
        response = await http.get('/?set={"more":1}')
    assert response.json() == {"secret": "x", "more": 1}
    assert testing.read_session(response, app) == {"secret": "x", "more": 1}


async def test_timeouts_add_their_metadata() -> None:
    app = middleware(idle_timeout=60, absolute_timeout=3600)
    payload = codec.decode(testing.session_cookies(app, {"a": 1})["koa.sess"])
    assert payload is not None and "_created" in payload and "_accessed" in payload


async def test_bad_data_is_refused() -> None:
    app = middleware()
    with pytest.raises(KeyError, match="reserved"):
        testing.session_cookies(app, {"_expire": 1})
    with pytest.raises(TypeError, match="JSON"):
        testing.session_cookies(app, {"a": object()})


async def test_secure_configuration_still_makes_cookies() -> None:
    app = middleware(secure=True, same_site="none")
    assert set(testing.session_cookies(app, {"a": 1})) == {"koa.sess", "koa.sess.sig"}


# -- clients ------------------------------------------------------------------------------


async def test_set_session_replaces_cookies_a_response_set() -> None:
    app = middleware()
    async with client(app) as http:
        await http.get('/?set={"from":"server"}')
        assert "koa.sess" in http.cookies
        testing.set_session(http, app, {"from": "test"})
        response = await http.get("/")
        assert response.json() == {"from": "test"}
        # And the server's next cookie replaces ours in the jar again.
        await http.get('/?set={"n":1}')
        assert (await http.get("/")).json() == {"from": "test", "n": 1}


def test_starlette_test_client() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette 1.x nudges towards httpx2
        from starlette.testclient import TestClient

    async def home(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse({"n": request.session["n"]})

    app = Starlette(
        routes=[Route("/", home)],
        middleware=[Middleware(SessionMiddleware, keys=[KEY])],
    )
    with TestClient(app) as http:
        testing.set_session(http, app, {"n": 10})
        response = http.get("/")
        assert response.json() == {"n": 11}
        assert testing.read_session(response, app) == {"n": 11}
        assert http.get("/").json() == {"n": 12}


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_sync_client(library: str) -> None:
    lib = httpx if library == "httpx" else pytest.importorskip("httpx2", reason="needs 3.11")
    app = middleware()
    with lib.Client(base_url="http://example.com") as http:
        cookies = testing.set_session(http, app, {"a": 1})
        assert http.cookies["koa.sess"] == cookies["koa.sess"]


# -- reading responses --------------------------------------------------------------------


async def test_read_session_none_when_untouched_and_removed() -> None:
    app = middleware()
    async with client(app) as http:
        untouched = await http.get("/")
        assert testing.read_session(untouched, app) is None
        assert not testing.session_removed(untouched, app)
        testing.set_session(http, app, {"a": 1})
        dropped = await http.get("/?drop=1")
    assert testing.read_session(dropped, app) is None
    assert testing.session_removed(dropped, app)


async def test_read_session_metadata() -> None:
    app = middleware()
    async with client(app) as http:
        response = await http.get('/?set={"a":1}')
    data = testing.read_session(response, app, metadata=True)
    assert data is not None and data["a"] == 1 and data["_maxAge"] == 86400000


async def test_read_session_rejects_bad_cookies() -> None:
    app = middleware()
    value = codec.encode({"a": 1})
    with pytest.raises(testing.InvalidSessionCookie, match="without"):
        testing.read_session(response_with(f"koa.sess={value}; path=/"), app)
    bad = response_with(f"koa.sess={value}; path=/", "koa.sess.sig=nope; path=/")
    with pytest.raises(testing.InvalidSessionCookie, match="does not verify"):
        testing.read_session(bad, app)
    old = response_with(
        f"koa.sess={value}; path=/", f"koa.sess.sig={sha('koa.sess', value, OLD_KEY)}; path=/"
    )
    with pytest.raises(testing.InvalidSessionCookie):
        testing.read_session(old, middleware(keys=[KEY, OLD_KEY]))  # not the signing key
    garbage = response_with("koa.sess=!!!; path=/", f"koa.sess.sig={sha('koa.sess', '!!!')}")
    with pytest.raises(testing.InvalidSessionCookie, match="decode"):
        testing.read_session(garbage, app)
    good = response_with(f"koa.sess={value}; path=/", f"koa.sess.sig={sha('koa.sess', value)}")
    assert testing.read_session(good, app) == {"a": 1}


# -- store mode ---------------------------------------------------------------------------


async def test_store_mode() -> None:
    store = MemoryStore()
    app = middleware(store=store)
    with pytest.raises(TypeError, match="asession_cookies"):
        testing.session_cookies(app, {"a": 1})
    with pytest.raises(TypeError, match="aread_session"):
        testing.read_session(response_with(), app)
    cookies = await testing.asession_cookies(app, {"a": 1})
    stored = await store.get(cookies["koa.sess"])
    assert stored is not None and stored["a"] == 1 and stored["_maxAge"] == 86400000
    assert cookies["koa.sess.sig"] == sha("koa.sess", cookies["koa.sess"])

    async with client(app) as http:
        await testing.aset_session(http, app, {"user": "ada"})
        response = await http.get('/?set={"n":1}')
        assert response.json() == {"user": "ada", "n": 1}
        assert await testing.aread_session(response, app) == {"user": "ada", "n": 1}
        key = testing.response_session_id(response, app)
        assert key is not None and key == http.cookies["koa.sess"]
        dropped = await http.get("/?drop=1")
        assert testing.session_removed(dropped, app)
        assert await testing.aread_session(dropped, app) is None
        assert await store.get(key) is None

    key = await testing.store_session(app, {"b": 2}, max_age=60)
    stored = await store.get(key)
    assert stored is not None and stored["b"] == 2 and stored["_maxAge"] == 60000


async def test_async_variants_work_in_cookie_mode() -> None:
    app = middleware()
    cookies = await testing.asession_cookies(app, {"a": 1})
    assert set(cookies) == {"koa.sess", "koa.sess.sig"}
    async with client(app) as http:
        await testing.aset_session(http, app, {"a": 1})
        response = await http.get('/?set={"b":2}')
    assert await testing.aread_session(response, app) == {"a": 1, "b": 2}
    with pytest.raises(TypeError, match="store_session"):
        await testing.store_session(app, {"a": 1})
    with pytest.raises(TypeError, match="read_session"):
        testing.response_session_id(response, app)


async def test_external_key_uses_store_session() -> None:
    class HeaderKey:
        def get(self, ctx: Any) -> str | None:
            value: str | None = ctx.get_header("x-session")
            return value

        def set(self, ctx: Any, key: str) -> None:
            ctx.set_header("x-session", key)

    app = middleware(store=MemoryStore(), external_key=HeaderKey())
    with pytest.raises(TypeError, match="store_session"):
        await testing.asession_cookies(app, {"a": 1})
    key = await testing.store_session(app, {"a": 1})
    async with client(app) as http:
        response = await http.get("/", headers={"x-session": key})
    assert response.json() == {"a": 1}


# -- finding the middleware ---------------------------------------------------------------


async def test_find_middleware() -> None:
    inner = middleware(key="b", scope_key="b")
    outer = SessionMiddleware(inner, keys=[KEY])
    assert testing.find_middleware(outer) is outer
    assert testing.find_middleware(outer, "b") is inner
    assert testing.session_cookies(outer.config, {"a": 1}).keys() == {"koa.sess", "koa.sess.sig"}
    with pytest.raises(LookupError, match="scope_key='c'"):
        testing.find_middleware(outer, "c")
    with pytest.raises(LookupError):
        testing.find_middleware(echo)

    # mypy cannot infer the ParamSpec of a `**options` signature (pyright can).
    entry = Middleware(SessionMiddleware, keys=[KEY], key="decl")
    declared = Starlette(middleware=[entry])
    found = testing.find_middleware(declared)
    assert found.config.options.key == "decl"
