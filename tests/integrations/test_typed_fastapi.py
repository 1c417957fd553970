"""FastAPI: ``TypedSession``, ``typed_session``, ``LoggedIn`` and the session cookie in OpenAPI.

Every app runs in cookie mode and in store mode (a MemoryStore).
"""

from __future__ import annotations

import re
import warnings
from datetime import datetime, timezone
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, WebSocket
from pydantic import BaseModel, ConfigDict, Field

from koasession import MemoryStore, SessionMiddleware, testing
from koasession.integrations.fastapi import (
    LoggedIn,
    SessionDep,
    TypedSession,
    login_required,
    typed_session,
)

from ._support import client, load_example, set_cookie_lines

KEY = "q3Vx8LwN1cZ7tR0pYe5KuB9mHs2JdA6fGi4oWn-XbEk"


class Cart(BaseModel):
    items: list[str] = []
    coupon: str | None = None


class Visit(BaseModel):
    first_seen: datetime | None = None
    tags: tuple[str, ...] = ()


class StrictVisit(BaseModel):
    model_config = ConfigDict(strict=True)

    first_seen: datetime | None = None


# Module level: FastAPI resolves string annotations in the functions' globals.
AdminCart = Annotated[Cart, typed_session(Cart, scope_key="admin")]
admin_login = login_required("admin", cookie="admin.sess", scope_key="admin")
AdminLogin = Annotated[str, Depends(admin_login)]
NamedCart = Annotated[Cart, typed_session(Cart, key="cart")]
UserName = Annotated[str, Depends(login_required("name"))]
ShopLogin = Annotated[int, Depends(login_required(cookie="shop!sess"))]


async def add_to_cart(item: str, cart: TypedSession[Cart]) -> Cart:
    """A sub-dependency using the same model as the handler."""
    cart.items.append(f"{item}-gift")
    return cart


@pytest.fixture(params=["cookie", "store"])
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"keys": [KEY], "store": MemoryStore()} if request.param == "store" else {"keys": [KEY]}


def shop(**options: Any) -> SessionMiddleware:
    api = FastAPI()

    @api.post("/cart/{item}")
    async def add(item: str, cart: TypedSession[Cart]) -> Cart:
        cart.items.append(item)
        return cart

    @api.get("/cart")
    async def show(cart: TypedSession[Cart]) -> Cart:
        return cart

    @api.post("/cart/{item}/fail")
    async def add_then_fail(item: str, cart: TypedSession[Cart]) -> None:
        cart.items.append(item)
        raise HTTPException(409, "out of stock")

    @api.post("/gift/{item}")
    async def gift(cart: TypedSession[Cart], _: Annotated[Cart, Depends(add_to_cart)]) -> Cart:
        cart.coupon = "GIFT"
        return cart

    @api.post("/named/{item}")
    async def named(item: str, cart: NamedCart) -> Cart:
        cart.items.append(item)
        return cart

    @api.post("/visit")
    async def visit(v: TypedSession[Visit]) -> dict[str, Any]:
        if v.first_seen is None:
            v.first_seen = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
            v.tags = ("new",)
        return {"year": v.first_seen.year, "tags": list(v.tags)}

    @api.post("/login")
    async def login(session: SessionDep) -> None:
        session["user_id"] = 42
        session["name"] = "ada"

    @api.post("/logout")
    async def logout(session: SessionDep) -> None:
        session.destroy()

    @api.get("/me")
    async def me(user_id: LoggedIn) -> dict[str, Any]:
        return {"user_id": user_id}

    @api.get("/name")
    async def name(user: UserName) -> dict[str, Any]:
        return {"name": user}

    @api.get("/public")
    async def public(session: SessionDep) -> dict[str, Any]:
        return {"views": session.get("views", 0)}

    return SessionMiddleware(api, **options)


async def test_changes_are_written_back(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        first = await http.post("/cart/apple")
        assert first.json() == {"items": ["apple"], "coupon": None}
        assert await testing.aread_session(first, app) == {"items": ["apple"], "coupon": None}
        second = await http.post("/cart/pear")
        assert second.json()["items"] == ["apple", "pear"]
        assert (await http.get("/cart")).json()["items"] == ["apple", "pear"]


async def test_other_session_keys_are_left_alone(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        await testing.aset_session(http, app, {"user_id": 7, "items": ["fig"]})
        response = await http.post("/cart/kiwi")
    assert await testing.aread_session(response, app) == {
        "user_id": 7,
        "items": ["fig", "kiwi"],
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
    assert not set_cookie_lines(again, "koa.sess")  # unchanged: nothing re-saved


async def test_a_handler_that_raises_writes_nothing(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        await testing.aset_session(http, app, {"items": ["fig"]})
        response = await http.post("/cart/plum/fail")
        assert response.status_code == 409
        assert (await http.get("/cart")).json()["items"] == ["fig"]


async def test_one_instance_per_request(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        response = await http.post("/gift/box", params={"item": "box"})
    assert response.json() == {"items": ["box-gift"], "coupon": "GIFT"}
    assert await testing.aread_session(response, app) == {"items": ["box-gift"], "coupon": "GIFT"}


async def test_model_under_one_key(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        await testing.aset_session(http, app, {"user_id": 7})
        await http.post("/named/apple")
        response = await http.post("/named/pear")
    assert response.json()["items"] == ["apple", "pear"]
    assert await testing.aread_session(response, app) == {
        "user_id": 7,
        "cart": {"items": ["apple", "pear"], "coupon": None},
    }


async def test_invalid_fields_fall_back_to_defaults(
    options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = shop(**options)
    async with client(app) as http:
        # A deploy changed items from a comma-separated string to a list: the coupon survives.
        await testing.aset_session(http, app, {"items": "apple,pear", "coupon": "SPRING"})
        with caplog.at_level("INFO", logger="koasession"):
            response = await http.get("/cart")
        assert response.status_code == 200
        assert response.json() == {"items": [], "coupon": "SPRING"}
        # The repair is written back even though the handler only read the model.
        assert await testing.aread_session(response, app) == {"items": [], "coupon": "SPRING"}
        assert "did not validate" in caplog.text and "items" in caplog.text
        await testing.aset_session(http, app, {"cart": ["not", "an", "object"]})
        named = await http.post("/named/fig")
    assert named.json() == {"items": ["fig"], "coupon": None}
    assert await testing.aread_session(named, app) == {"cart": {"items": ["fig"], "coupon": None}}


async def test_values_round_trip_through_json(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        first = await http.post("/visit")
        assert await testing.aread_session(first, app) == {
            "first_seen": "2024-05-01T12:30:00Z",
            "tags": ["new"],
        }
        second = await http.post("/visit")
    assert second.json() == {"year": 2024, "tags": ["new"]}
    assert not set_cookie_lines(second, "koa.sess")


async def test_logout_is_not_undone_by_an_unchanged_model(options: dict[str, Any]) -> None:
    api = FastAPI()

    @api.post("/logout")
    async def logout(session: SessionDep, cart: TypedSession[Cart]) -> None:
        session.destroy()

    app = SessionMiddleware(api, **options)
    async with client(app) as http:
        await testing.aset_session(http, app, {"items": ["fig"], "user_id": 1})
        response = await http.post("/logout")
    assert testing.session_removed(response, app)


def test_models_must_validate_from_nothing() -> None:
    class Profile(BaseModel):
        user_id: int

    with pytest.raises(TypeError, match="give every field a default"):
        typed_session(Profile)

    class Reserved(BaseModel):
        expire: int = Field(default=0, alias="_expire")

    with pytest.raises(ValueError, match="reserved for session metadata"):
        typed_session(Reserved)
    typed_session(Reserved, key="meta")  # under one key the name is harmless


async def test_logged_in_answers_401_without_a_login(options: dict[str, Any]) -> None:
    app = shop(**options)
    async with client(app) as http:
        response = await http.get("/me")
        assert response.status_code == 401
        assert response.json() == {"detail": "Not logged in"}
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
        schema = (await http.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["koa.sess"]["type"] == "apiKey"
    assert schemes["koa.sess"]["in"] == "cookie"
    assert schemes["koa.sess"]["name"] == "koa.sess"
    paths = schema["paths"]
    assert paths["/me"]["get"]["security"] == [{"koa.sess": []}]
    assert paths["/name"]["get"]["security"] == [{"koa.sess": []}]
    assert "security" not in paths["/public"]["get"]
    assert "security" not in paths["/cart"]["get"]
    # The dependency's own parameters are not request parameters.
    assert "parameters" not in paths["/me"]["get"]


async def test_custom_cookie_name_and_mismatch() -> None:
    api = FastAPI()

    @api.get("/me")
    async def me(user_id: ShopLogin) -> dict[str, Any]:
        return {"user_id": user_id}

    app = SessionMiddleware(api, keys=[KEY], key="shop!sess")
    async with client(app) as http:
        schema = (await http.get("/openapi.json")).json()
        testing.set_session(http, app, {"user_id": 3})
        assert (await http.get("/me")).json() == {"user_id": 3}
    scheme = schema["components"]["securitySchemes"]["shop_sess"]
    assert scheme["name"] == "shop!sess" and scheme["in"] == "cookie"
    assert schema["paths"]["/me"]["get"]["security"] == [{"shop_sess": []}]

    wrong = SessionMiddleware(api, keys=[KEY], key="other.sess")
    async with client(wrong) as http:
        with pytest.raises(RuntimeError, match=r"pass cookie='other\.sess'"):
            await http.get("/me")


def test_logged_in_closes_a_websocket_without_a_login() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette 1.x nudges towards httpx2
        from starlette.testclient import TestClient
        from starlette.websockets import WebSocketDisconnect

    api = FastAPI()

    @api.websocket("/ws")
    async def ws(websocket: WebSocket, user_id: LoggedIn) -> None:
        await websocket.accept()
        await websocket.send_json({"user_id": user_id})
        await websocket.close()

    app = SessionMiddleware(api, keys=[KEY])
    with TestClient(app) as http:
        with pytest.raises(WebSocketDisconnect) as closed, http.websocket_connect("/ws"):
            pass  # pragma: no cover
        assert closed.value.code == 1008
        testing.set_session(http, app, {"user_id": 5})
        with http.websocket_connect("/ws") as socket:
            assert socket.receive_json() == {"user_id": 5}


async def test_example_cart_and_me() -> None:
    example = load_example("fastapi_app")
    app = example.app
    async with client(app) as http:
        assert (await http.get("/me")).status_code == 401
        cart = await http.post("/cart", json={"name": "tea"})
        assert cart.json() == {"cart_items": ["tea"]}
        await http.post("/login", json={"user": "ada"})  # regenerate() keeps the cart
        await http.post("/cart", json={"name": "cake"})
        me = await http.get("/me")
        assert me.json() == {"user": "ada", "cart": ["tea", "cake"]}
        schema = (await http.get("/openapi.json")).json()
    assert schema["paths"]["/me"]["get"]["security"] == [{"koa.sess": []}]
    assert schema["components"]["securitySchemes"]["koa.sess"]["in"] == "cookie"
    assert len(example.store) == 1


async def test_strict_models_read_the_stored_json(options: dict[str, Any]) -> None:
    api = FastAPI()

    @api.get("/visit")
    async def visit(v: TypedSession[StrictVisit]) -> dict[str, Any]:
        assert v.first_seen is not None
        return {"year": v.first_seen.year}

    app = SessionMiddleware(api, **options)
    async with client(app) as http:
        await testing.aset_session(http, app, {"first_seen": "2023-02-03T04:05:06Z"})
        response = await http.get("/visit")
    assert response.json() == {"year": 2023}
    assert not response.headers.get_list("set-cookie")  # valid as stored: nothing to repair


async def test_second_middleware_by_scope_key() -> None:
    api = FastAPI()

    @api.post("/admin/{item}")
    async def admin(item: str, cart: AdminCart, who: AdminLogin) -> dict[str, Any]:
        cart.items.append(f"{who}:{item}")
        return {"items": cart.items}

    inner = SessionMiddleware(api, keys=[KEY], key="admin.sess", scope_key="admin")
    app = SessionMiddleware(inner, keys=[KEY], store=MemoryStore())
    async with client(app) as http:
        assert (await http.post("/admin/x")).status_code == 401
        testing.set_session(http, app, {"admin": "root"}, scope_key="admin")
        response = await http.post("/admin/x")
        assert response.json() == {"items": ["root:x"]}
        schema = (await http.get("/openapi.json")).json()
    assert testing.read_session(response, app, scope_key="admin") == {
        "admin": "root",
        "items": ["root:x"],
        "coupon": None,
    }
    assert schema["paths"]["/admin/{item}"]["post"]["security"] == [{"admin.sess": []}]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        # A key that is no session key answered 401 to every request; a cookie no middleware
        # can have failed each one with the RuntimeError of a mismatch.
        ({"key": 5}, "key must be the session key of the login; got 5"),
        ({"key": ""}, "key must be the session key of the login"),
        ({"cookie": "koa sess"}, "cookie='koa sess' is not a cookie name"),
        ({"scope_key": None}, "scope_key must be a non-empty string"),
    ],
)
def test_login_required_arguments_are_checked_when_declared(
    arguments: dict[str, Any], message: str
) -> None:
    from koasession import ConfigurationError

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        login_required(**arguments)
