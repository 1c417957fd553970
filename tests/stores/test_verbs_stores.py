"""flush(), reload() and skip_save() through the middleware on every store kind."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from koasession import SessionMiddleware

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

KEYS = ["Wq3bN0f7RkYx2LpVtA9sHcJ4uE6mZi8oD1gKyXnTb5Q"]


def make_app(store: Any) -> SessionMiddleware:
    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        path = scope["path"]
        if path == "/login":
            session["user"] = "ann"
        elif path == "/flush":
            await session.flush()
            session["cart"] = 1
        elif path == "/reload":
            session["user"] = "mallory"
            await session.reload()
        elif path == "/skip":
            session["user"] = "eve"
            session.skip_save()
        body = json.dumps({"data": dict(session), "id": session.external_key}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return SessionMiddleware(inner, keys=KEYS, store=store)


async def test_verbs_on_every_store(harness: Harness) -> None:
    store = await harness.make()
    transport = httpx.ASGITransport(app=make_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        login = await http.get("/login")
        old_id = login.json()["id"]

        reloaded = await http.get("/reload")
        assert reloaded.json()["data"] == {"user": "ann"}
        skipped = await http.get("/skip")
        assert "set-cookie" not in skipped.headers
        assert (await http.get("/")).json()["data"] == {"user": "ann"}

        flushed = await http.get("/flush")
        new_id = flushed.json()["id"]
        assert new_id != old_id
        assert (await http.get("/")).json() == {"data": {"cart": 1}, "id": new_id}
    assert await store.get(old_id, 86400) is None
    entry = await store.get(new_id, 86400)
    assert entry is not None and entry["cart"] == 1 and "user" not in entry


async def test_alogin_and_read_session_on_every_store(harness: Harness) -> None:
    from koasession import testing

    store = await harness.make()
    app = make_app(store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await testing.alogin(http, {"user": "ada"})
        response = await http.get("/")
        assert response.json()["data"] == {"user": "ada"}
        assert await testing.aread_session(http) == {"user": "ada"}
        login = await http.get("/login")
        assert await testing.aread_session(login, app) == {"user": "ann"}
        entry = await testing.aread_session(http, metadata=True)
    assert entry is not None and isinstance(entry["_created"], int)
