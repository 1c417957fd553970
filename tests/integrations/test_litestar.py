"""Litestar: ``request.session`` / ``set_session()`` / ``clear_session()`` with koa semantics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, get, post
from litestar.types import Empty
from pydantic import BaseModel

from koasession import ConfigurationError, MemoryStore, Session, testing
from koasession.integrations.litestar import (
    LitestarSessionMiddleware,
    session_middleware,
    to_koa_value,
)

from ._support import check_counter, check_login_logout, client, load_example

KEY = "0VKQuJGwN8wMp8rvuDZfja4u98Y1rX3aMmkjtND_5sU"


async def test_counter() -> None:
    http = await check_counter(load_example("litestar_app").app)
    await http.aclose()


async def test_login_with_set_session_and_logout_with_clear_session() -> None:
    # set_session({"user": ...}) replaces the data: the views counter is gone after login.
    await check_login_logout(load_example("litestar_app").app, keeps_data=False)


@dataclass
class Profile:
    user: str
    level: int


class PydanticProfile(BaseModel):
    user: str


class StructProfile(msgspec.Struct):
    user: str


def test_to_koa_value() -> None:
    assert to_koa_value(Empty) is None
    assert to_koa_value(None) is None
    data = {"a": 1}
    assert to_koa_value(data) is data
    assert to_koa_value(Profile("ada", 2)) == {"user": "ada", "level": 2}
    assert to_koa_value(PydanticProfile(user="ada")) == {"user": "ada"}
    assert to_koa_value(StructProfile(user="ada")) == {"user": "ada"}
    with pytest.raises(TypeError, match="JSON object"):
        to_koa_value([1, 2])
    with pytest.raises(TypeError, match="cannot use a object"):
        to_koa_value(object())


def _app(*handlers: Any, **options: Any) -> LitestarSessionMiddleware:
    return LitestarSessionMiddleware(Litestar(route_handlers=list(handlers)), keys=[KEY], **options)


async def test_set_session_keeps_the_session_object() -> None:
    """koa: after ``ctx.session = {...}``, ``ctx.session`` is a Session with its methods."""

    @post("/set")
    async def set_it(request: Request[Any, Any, Any]) -> dict[str, Any]:
        request.set_session(Profile("ada", 1))
        session: object = request.session
        assert isinstance(session, Session)
        assert dict(session) == {"user": "ada", "level": 1}
        await session.save()
        return {}

    app = _app(set_it)
    async with client(app) as http:
        testing.set_session(http, app, {"old": True})
        response = await http.post("/set")
    assert response.status_code == 201, response.text
    assert testing.read_session(response, app) == {"user": "ada", "level": 1}


async def test_clear_session_removes_then_set_session_revives() -> None:
    @post("/clear")
    async def clear(request: Request[Any, Any, Any]) -> None:
        request.clear_session()
        assert request.scope["session"] is None  # Empty translated: koa's ctx.session = null

    @post("/clear-then-set")
    async def clear_then_set(request: Request[Any, Any, Any]) -> None:
        request.clear_session()
        request.set_session({"fresh": 1})

    @post("/clear-then-save")
    async def clear_then_save(request: Request[Any, Any, Any]) -> None:
        session: object = request.session
        assert isinstance(session, Session)
        request.clear_session()
        await session.manually_commit()  # a manual commit sees the removal, no TypeError

    app = _app(clear, clear_then_set, clear_then_save)
    async with client(app) as http:
        testing.set_session(http, app, {"user": "ada"})
        response = await http.post("/clear")
        assert testing.session_removed(response, app)
        testing.set_session(http, app, {"user": "ada"})
        response = await http.post("/clear-then-set")
        assert testing.read_session(response, app) == {"fresh": 1}
        testing.set_session(http, app, {"user": "ada"})
        response = await http.post("/clear-then-save")
        assert response.status_code == 201, response.text
        assert testing.session_removed(response, app)


async def test_set_session_empty_dict_saves_an_empty_session() -> None:
    @post("/empty")
    async def empty(request: Request[Any, Any, Any]) -> None:
        request.set_session({})

    app = _app(empty)
    async with client(app) as http:
        testing.set_session(http, app, {"user": "ada"})
        response = await http.post("/empty")
    assert testing.read_session(response, app) == {}


async def test_set_session_rejects_reserved_keys() -> None:
    @post("/bad")
    async def bad(request: Request[Any, Any, Any]) -> None:
        request.set_session({"_expire": 1, "x": 1})

    app = _app(bad)
    async with client(app) as http:
        testing.set_session(http, app, {"user": "ada"})
        response = await http.post("/bad")
    assert response.status_code == 500
    assert not response.headers.get_list("set-cookie")


async def test_store_mode_and_regenerate() -> None:
    store = MemoryStore()

    @get("/")
    async def home(request: Request[Any, Any, Any]) -> dict[str, Any]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    @post("/login")
    async def login(request: Request[Any, Any, Any]) -> None:
        request.set_session({"user": "ada"})
        session: object = request.session
        assert isinstance(session, Session)
        await session.regenerate()

    app = _app(home, login, store=store)
    async with client(app) as http:
        first = await http.get("/")
        old = testing.response_session_id(first, app)
        login_response = await http.post("/login")
        new = testing.response_session_id(login_response, app)
        assert old and new and old != new
        assert await store.get(old) is None
        assert await testing.aread_session(login_response, app) == {"user": "ada"}


async def test_define_middleware_in_litestar_middleware_list() -> None:
    @get("/")
    async def home(request: Request[Any, Any, Any]) -> dict[str, Any]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    @post("/logout")
    async def logout(request: Request[Any, Any, Any]) -> None:
        request.clear_session()

    app = Litestar(route_handlers=[home, logout], middleware=[session_middleware(keys=[KEY])])
    async with client(app) as http:
        assert (await http.get("/")).json() == {"n": 1}
        response = await http.get("/")
        assert response.json() == {"n": 2}
        assert testing.read_session(response, app) == {"n": 2}
        response = await http.post("/logout")
        assert testing.session_removed(response, app)


def test_session_middleware_validates_at_once() -> None:
    with pytest.raises(ConfigurationError):
        session_middleware(keys=["short"])


async def test_route_opt_skip_session_gets_no_session_and_no_store_call() -> None:
    store = MemoryStore()
    seen: list[str] = []

    @get("/")
    async def home(request: Request[Any, Any, Any]) -> dict[str, Any]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    @get("/health", opt={"skip_session": True})
    async def health(request: Request[Any, Any, Any]) -> str:
        return "session" if "session" in request.scope else "none"

    async def get_spy(key: str, *args: Any, **kw: Any) -> Any:
        seen.append(key)
        return await MemoryStore.get(store, key, *args, **kw)

    store.get = get_spy  # type: ignore[method-assign]
    middleware = [session_middleware(keys=[KEY], store=store, rolling=True)]
    app = Litestar(route_handlers=[home, health], middleware=middleware)
    async with client(app) as http:
        assert (await http.get("/")).json() == {"n": 1}
        seen.clear()
        response = await http.get("/health")
        assert response.text == "none" and "set-cookie" not in response.headers
        assert seen == []
        assert (await http.get("/")).json() == {"n": 2}


async def test_the_lifespan_shutdown_closes_the_store() -> None:
    """The lifespan reaches Litestar (its shutdown hooks run) and then the store is closed, as
    the core middleware does for any ASGI app."""
    events: list[str] = []

    class Store(MemoryStore):
        async def close(self) -> None:
            events.append("store closed")

    litestar_app = Litestar([], on_shutdown=[lambda: events.append("app shutdown")])
    app = LitestarSessionMiddleware(litestar_app, keys=[KEY], store=Store())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["app shutdown", "store closed"]
