"""Flash messages through real requests: flashed on one, shown once on a later one."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from koasession import MemoryStore, SessionMiddleware, flash, peek_flashes, pop_flashes

from ._app import KEY, decode_value


async def post_flash(request: Request) -> Response:
    for category, message in json.loads(await request.body()):
        flash(request.session, message, category)
    return RedirectResponse("/show", status_code=303)


async def show(request: Request) -> Response:
    return JSONResponse([list(f) for f in pop_flashes(request.session)])


async def peek(request: Request) -> Response:
    return JSONResponse([[f.category, f.message] for f in peek_flashes(request.session)])


async def raw(request: Request) -> Response:
    return JSONResponse(dict(request.session))


async def set_raw(request: Request) -> Response:
    request.session["koa-flash"] = json.loads(await request.body())
    return JSONResponse(None)


ROUTES = [
    Route("/flash", post_flash, methods=["POST"]),
    Route("/show", show),
    Route("/peek", peek),
    Route("/raw", raw),
    Route("/raw", set_raw, methods=["POST"]),
]


def make(store: Any) -> Any:
    return SessionMiddleware(Starlette(routes=ROUTES), keys=[KEY], store=store)


@pytest.fixture(params=["cookie", "memory"])
def app(request: pytest.FixtureRequest) -> Any:
    return make(MemoryStore() if request.param == "memory" else None)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_a_flash_is_shown_on_the_next_page_once(app: Any) -> None:
    async with client(app) as http:
        shown = await http.post(
            "/flash", json=[["success", "Saved"], ["error", "Mail not sent"]], follow_redirects=True
        )
        assert shown.json() == [["success", "Saved"], ["error", "Mail not sent"]]
        assert (await http.get("/show")).json() == []
        assert (await http.get("/raw")).json() == {}


async def test_peek_leaves_them_for_later(app: Any) -> None:
    async with client(app) as http:
        await http.post("/flash", json=[["info", "Hello"]])
        assert (await http.get("/peek")).json() == [["info", "Hello"]]
        assert (await http.get("/peek")).json() == [["info", "Hello"]]
        assert (await http.get("/show")).json() == [["info", "Hello"]]
        assert (await http.get("/peek")).json() == []


async def test_stored_as_koa_flash_object_of_categories(app: Any) -> None:
    async with client(app) as http:
        await http.post("/flash", json=[["error", "One"], ["info", "Two"], ["error", "Three"]])
        assert (await http.get("/raw")).json() == {
            "koa-flash": {"error": ["One", "Three"], "info": "Two"}
        }
        # Grouped by category, in the order categories first appeared.
        assert (await http.get("/show")).json() == [
            ["error", "One"],
            ["error", "Three"],
            ["info", "Two"],
        ]


@pytest.mark.parametrize(
    ("stored", "popped"),
    [
        ({"error": "Nope"}, [["error", "Nope"]]),
        ("Saved", [["info", "Saved"]]),
        (["a", "b"], [["info", "a"], ["info", "b"]]),
        ({"form": {"name": "too long"}}, [["form", {"name": "too long"}]]),
        ({}, []),
        (None, []),
        ("", []),
        (False, []),
    ],
)
async def test_any_value_koa_flash_may_hold_is_read(
    app: Any, stored: Any, popped: list[Any]
) -> None:
    async with client(app) as http:
        await http.post("/raw", content=json.dumps(stored))
        assert (await http.get("/show")).json() == popped
        assert "koa-flash" not in (await http.get("/raw")).json()


async def test_flashing_onto_a_bare_koa_value_keeps_it() -> None:
    async with client(make(None)) as http:
        await http.post("/raw", json="From Koa")
        await http.post("/flash", json=[["error", "From Python"]])
        assert (await http.get("/show")).json() == [["info", "From Koa"], ["error", "From Python"]]


async def test_reading_no_flashes_writes_nothing() -> None:
    async with client(make(None)) as http:
        await http.post("/raw", content=b"null")
        cookie = http.cookies["koa.sess"]
        assert decode_value(cookie)["koa-flash"] is None
        await http.post("/flash", json=[["info", "x"]])
        await http.get("/show")
        quiet = await http.get("/show")
        assert quiet.headers.get_list("set-cookie") == []


def test_category_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="category"):
        flash({}, "message", 3)  # type: ignore[arg-type]
