"""Litestar: ``typed_session``, ``LoginRequired`` and the session cookie in its OpenAPI schema.

Every app runs in cookie mode and in store mode (a MemoryStore).
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from litestar import Litestar, Request, get, post, websocket
from litestar.connection import WebSocket
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import FromPath
from pydantic import BaseModel

from koasession import MemoryStore, Session, testing
from koasession.integrations.litestar import (
    LitestarSessionMiddleware,
    LoginRequired,
    typed_session,
)

from ._support import client, load_example, set_cookie_lines

KEY = "Zt4pQ9wXc2Lr7Hn0VbK5sMe8JfYa3Ud6GiTo1Ny-RqE"


class Cart(BaseModel):
    items: list[str] = []
    coupon: str | None = None


login = LoginRequired()
name_login = LoginRequired("name")


def session_of(request: Request[Any, Any, Any]) -> Session:
    session: object = request.session
    assert isinstance(session, Session)
    return session


@post("/cart/{item:str}", dependencies={"cart": typed_session(Cart)}, status_code=200)
async def add(item: FromPath[str], cart: NamedDependency[Cart]) -> Cart:
    cart.items.append(item)
    return cart


@get("/cart", dependencies={"cart": typed_session(Cart)})
async def show(cart: NamedDependency[Cart]) -> Cart:
    return cart


@post("/cart/{item:str}/fail", dependencies={"cart": typed_session(Cart)})
async def add_then_fail(item: FromPath[str], cart: NamedDependency[Cart]) -> None:
    cart.items.append(item)
    raise HTTPException(status_code=409, detail="out of stock")


@post("/named/{item:str}", dependencies={"cart": typed_session(Cart, key="cart")}, status_code=200)
async def named(item: FromPath[str], cart: NamedDependency[Cart]) -> Cart:
    cart.items.append(item)
    return cart


@post("/login", status_code=200)
async def do_login(request: Request[Any, Any, Any]) -> None:
    request.session["user_id"] = 42
    request.session["name"] = "ada"


@post("/logout", status_code=200)
async def do_logout(request: Request[Any, Any, Any]) -> None:
    request.clear_session()


@get("/me", dependencies={"user_id": login.dependency}, security=login.security)
async def me(user_id: NamedDependency[int]) -> dict[str, Any]:
    return {"user_id": user_id}


@get("/name", dependencies={"user": name_login.dependency}, security=name_login.security)
async def name(user: NamedDependency[str]) -> dict[str, Any]:
    return {"name": user}


@get("/public")
async def public(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"views": session_of(request).get("views", 0)}


@websocket("/ws", dependencies={"user_id": login.dependency})
async def ws(socket: WebSocket[Any, Any, Any], user_id: NamedDependency[int]) -> None:
    await socket.accept()
    await socket.send_json({"user_id": user_id})
    await socket.close()


HANDLERS = [add, show, add_then_fail, named, do_login, do_logout, me, name, public, ws]


@pytest.fixture(params=["cookie", "store"])
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"keys": [KEY], "store": MemoryStore()} if request.param == "store" else {"keys": [KEY]}


def shop(**options: Any) -> LitestarSessionMiddleware:
    return LitestarSessionMiddleware(Litestar(HANDLERS, plugins=[login]), **options)


async def test_changes_are_written_back(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        await testing.aset_session(http, app, {"user_id": 7})
        first = await http.post("/cart/apple")
        assert first.json() == {"items": ["apple"], "coupon": None}
        second = await http.post("/cart/pear")
        assert second.json()["items"] == ["apple", "pear"]
        assert (await http.get("/cart")).json()["items"] == ["apple", "pear"]
    assert await testing.aread_session(second, app) == {
        "user_id": 7,
        "items": ["apple", "pear"],
        "coupon": None,
    }


async def test_reading_only_creates_no_session(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        response = await http.get("/cart")
        assert response.json() == {"items": [], "coupon": None}
        assert not response.headers.get_list("set-cookie")
        await testing.aset_session(http, app, {"items": ["fig"]})
        again = await http.get("/cart")
    assert again.json()["items"] == ["fig"]
    assert not set_cookie_lines(again, "koa.sess")


async def test_a_handler_that_raises_writes_nothing(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        await testing.aset_session(http, app, {"items": ["fig"]})
        response = await http.post("/cart/plum/fail")
        assert response.status_code == 409
        assert (await http.get("/cart")).json()["items"] == ["fig"]


async def test_model_under_one_key_and_repair(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        await testing.aset_session(http, app, {"cart": {"items": 3, "coupon": "SPRING"}})
        response = await http.post("/named/apple")
    assert response.json() == {"items": ["apple"], "coupon": "SPRING"}
    assert await testing.aread_session(response, app) == {
        "cart": {"items": ["apple"], "coupon": "SPRING"}
    }


async def test_login_required_answers_401_without_a_login(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        response = await http.get("/me")
        assert response.status_code == 401
        assert response.json() == {"status_code": 401, "detail": "Not logged in"}
        assert "www-authenticate" not in response.headers
        await http.post("/login")
        assert (await http.get("/me")).json() == {"user_id": 42}
        assert (await http.get("/name")).json() == {"name": "ada"}
        await http.post("/logout")
        assert (await http.get("/me")).status_code == 401
        assert (await http.get("/name")).status_code == 401


async def test_openapi_declares_the_session_cookie() -> None:
    app = shop(keys=[KEY])
    async with client(app) as http:
        schema = (await http.get("/schema/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["koa.sess"]
    assert scheme == {
        "type": "apiKey",
        "name": "koa.sess",
        "in": "cookie",
        "description": "The session cookie set by koasession; log in to get one.",
    }
    paths = schema["paths"]
    assert paths["/me"]["get"]["security"] == [{"koa.sess": []}]
    assert paths["/name"]["get"]["security"] == [{"koa.sess": []}]
    assert "security" not in paths["/public"]["get"]
    assert "security" not in paths["/cart"]["get"]
    # The dependencies' own parameters (the scope) are not request parameters.
    assert "parameters" not in paths["/me"]["get"]
    assert "parameters" not in paths["/cart"]["get"]


async def test_plugin_keeps_the_apps_own_components() -> None:
    shop_login = LoginRequired(cookie="shop.sess", scheme_name="shopSession")
    bearer = SecurityScheme(type="http", scheme="bearer")

    @get("/me", dependencies={"user_id": shop_login.dependency}, security=shop_login.security)
    async def whoami(user_id: NamedDependency[int]) -> dict[str, Any]:
        return {"user_id": user_id}

    config = OpenAPIConfig(
        title="Shop",
        version="1.0",
        components=Components(security_schemes={"bearer": bearer}),
    )
    inner = Litestar([whoami], plugins=[shop_login], openapi_config=config)
    app = LitestarSessionMiddleware(inner, keys=[KEY], key="shop.sess")
    async with client(app) as http:
        schema = (await http.get("/schema/openapi.json")).json()
        testing.set_session(http, app, {"user_id": 3})
        assert (await http.get("/me")).json() == {"user_id": 3}
    schemes = schema["components"]["securitySchemes"]
    assert set(schemes) == {"bearer", "shopSession"}
    assert schemes["shopSession"]["name"] == "shop.sess"
    assert schema["paths"]["/me"]["get"]["security"] == [{"shopSession": []}]

    # The middleware's cookie is not the declared one: the docs would be wrong, so it fails.
    wrong = LitestarSessionMiddleware(Litestar([whoami]), keys=[KEY])
    async with client(wrong) as http:
        assert (await http.get("/me")).status_code == 500


def test_login_required_closes_a_websocket_without_a_login() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette 1.x nudges towards httpx2
        from starlette.testclient import TestClient
        from starlette.websockets import WebSocketDisconnect

    app = shop(keys=[KEY])
    with TestClient(app) as http:
        with pytest.raises(WebSocketDisconnect) as closed, http.websocket_connect("/ws") as socket:
            socket.receive_json()
        assert closed.value.code == 1008
        testing.set_session(http, app, {"user_id": 5})
        with http.websocket_connect("/ws") as socket:
            assert socket.receive_json() == {"user_id": 5}


def test_models_must_validate_from_nothing() -> None:
    class Profile(BaseModel):
        user_id: int

    with pytest.raises(TypeError, match="give every field a default"):
        typed_session(Profile)


@pytest.mark.slow
def test_imports_without_pydantic() -> None:
    """pydantic is optional: the core and the Litestar integration import and serve without it."""
    code = f"""
import sys
sys.modules["pydantic"] = None  # any import of pydantic now fails
import koasession
from koasession.integrations.litestar import LitestarSessionMiddleware, LoginRequired
from litestar import Litestar, get
from litestar.di import NamedDependency
from starlette.testclient import TestClient

login = LoginRequired()

@get("/me", dependencies={{"user_id": login.dependency}}, security=login.security)
async def me(user_id: NamedDependency[int]) -> dict:
    return {{"user_id": user_id}}

app = LitestarSessionMiddleware(Litestar([me], plugins=[login]), keys=[{KEY!r}])
with TestClient(app) as http:
    print(http.get("/me").status_code)
try:
    import koasession.integrations.fastapi
except ImportError:
    print("fastapi needs pydantic")
"""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["401", "fastapi", "needs", "pydantic"]


async def test_example_cart_and_me() -> None:
    app = load_example("litestar_app").app
    async with client(app) as http:
        assert (await http.get("/me")).status_code == 401
        cart = await http.post("/cart", json={"name": "tea"})
        assert cart.json() == {"cart_items": ["tea"]}
        await http.post("/login", json={"user": "ada"})  # set_session() replaces the data
        await http.post("/cart", json={"name": "cake"})
        me = await http.get("/me")
        assert me.json() == {"user": "ada", "cart": ["cake"]}
        schema = (await http.get("/schema/openapi.json")).json()
    assert schema["paths"]["/me"]["get"]["security"] == [{"koa.sess": []}]
    assert schema["components"]["securitySchemes"]["koa.sess"]["in"] == "cookie"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"key": 5}, "key must be the session key of the login; got 5"),
        ({"cookie": "koa;sess"}, "cookie='koa;sess' is not a cookie name"),
    ],
)
def test_login_required_arguments_are_checked_when_made(
    arguments: dict[str, Any], message: str
) -> None:
    from koasession import ConfigurationError

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        LoginRequired(**arguments)
