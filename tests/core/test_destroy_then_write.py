"""Writing to a session after its removal was committed in the same request.

README: writing to the session after ``destroy()`` starts it again. Once ``await save()`` (or
``manually_commit()``) has committed the removal, the session is a new one: data written
afterwards is a change even when it equals what the request loaded, and in store mode it is
saved under a new id, never under the destroyed one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from koasession import SessionMiddleware, codec, testing
from koasession.errors import ResponseStartedError
from koasession.stores import MemoryStore

from ._app import KEY, OLD_KEY, client, cookie_header, cookie_pairs, set_cookies, sign, wrap

COOKIE = "koa.sess"
DAY_MS = 86_400_000
Events = list[tuple[str, Any]]


async def handler(scope: dict[str, Any]) -> Any:
    """``/login`` stores alice, ``/read`` reads; the others remove, commit, then write."""
    session = scope["session"]
    path = scope["path"]
    user = scope["query_string"].decode() or "alice"
    if path == "/login":
        session["user"] = "alice"
    elif path == "/replace":  # koa's ctx.session = null, a save, then ctx.session = {...}
        assert session.get("user") == "alice"  # loaded: what the request read is known
        scope["session"] = None
        await session.save()
        scope["session"] = {"user": user}
    elif path != "/read":
        session.destroy()
        await (session.manually_commit() if path == "/manual" else session.save())
        removed_id = session.external_key
        session["user"] = user
        if path == "/restore-save":
            await session.save()
        elif path == "/manual":
            await session.manually_commit()
        return {"removed_id": removed_id, "id": session.external_key}
    return {"data": dict(session), "id": session.external_key}


def app(events: Events | None = None, **options: Any) -> Any:
    if events is not None:
        options["on_event"] = lambda name, payload: events.append((name, payload))
    return wrap(handler, **options)


def jar(*responses: Any) -> str:
    """The Cookie header a browser sends after receiving ``responses`` in order."""
    cookies: dict[str, str] = {}
    for response in responses:
        for name, value in cookie_pairs(response).items():
            if value:
                cookies[name] = value
            else:
                cookies.pop(name, None)  # expired
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def assert_one_line_per_cookie(response: Any) -> None:
    names = [line.split("=", 1)[0] for line in set_cookies(response)]
    assert len(names) == len(set(names)), names


# -- cookie mode -----------------------------------------------------------------------------

#: Options the cookie was written with at login, and the options of the later requests.
COOKIE_CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "default": ({}, {}),
    "encrypt": ({"encrypt": True}, {"encrypt": True}),
    "chunk": ({"chunk": True}, {"chunk": True}),
    "rotation": ({"keys": [OLD_KEY]}, {"keys": [KEY, OLD_KEY]}),
}


# Not "/restore-save": a forced save writes whether or not the data looks changed.
@pytest.mark.parametrize("path", ["/restore", "/replace"])
@pytest.mark.parametrize("config", list(COOKIE_CONFIGS))
async def test_cookie_mode_saves_the_loaded_data_written_back_after_a_committed_removal(
    config: str, path: str
) -> None:
    at_login, options = COOKIE_CONFIGS[config]
    events: Events = []
    async with client(app(**at_login)) as http:
        login = await http.get("/login")
    async with client(app(events, **options)) as http:
        response = await http.get(path, headers={"cookie": jar(login)})
        again = await http.get("/read", headers={"cookie": jar(login, response)})
    assert cookie_pairs(response)[COOKIE] != ""  # the session's cookie, not its removal
    assert_one_line_per_cookie(response)
    assert again.json()["data"] == {"user": "alice"}
    assert [name for name, _ in events if name in ("lost", "missed")] == []


@pytest.mark.parametrize("mode", ["cookie", "store"])
async def test_manual_commits_save_a_write_after_the_committed_removal(mode: str) -> None:
    store = MemoryStore() if mode == "store" else None
    async with client(app(store=store, auto_commit=False)) as http:
        login = await http.get("/manual?alice")  # a first visit: nothing to remove
        response = await http.get("/manual", headers={"cookie": jar(login)})
        again = await http.get("/read", headers={"cookie": jar(login, response)})
    assert again.json()["data"] == {"user": "alice"}
    if store is not None:
        old_id, new_id = login.json()["id"], response.json()["id"]
        assert new_id != old_id and cookie_pairs(response)[COOKIE] == new_id
        assert len(store) == 1 and await store.get(old_id) is None


async def test_cookie_mode_data_after_a_committed_removal_is_a_new_session() -> None:
    """Its ``_created`` is the time of the new session, not the removed one's."""
    expire = int(time.time() * 1000) + DAY_MS
    value = codec.encode({"user": "alice", "_expire": expire, "_maxAge": DAY_MS, "_created": 1})
    cookie = f"{COOKIE}={value}; {COOKIE}.sig={sign(COOKIE, value)}"
    async with client(app()) as http:
        response = await http.get("/restore?bob", headers={"cookie": cookie})
    payload = codec.decode(cookie_pairs(response)[COOKIE])
    assert payload is not None and payload["user"] == "bob"
    assert payload["_created"] > 1


# -- store mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["bob", "alice"])
@pytest.mark.parametrize("path", ["/restore", "/restore-save", "/replace"])
async def test_store_mode_saves_a_write_after_a_committed_removal_under_a_new_id(
    path: str, user: str
) -> None:
    store = MemoryStore()
    events: Events = []
    async with client(app(events, store=store)) as http:
        login = await http.get("/login")
        old_id = login.json()["id"]
        response = await http.get(f"{path}?{user}", headers={"cookie": cookie_header(login)})
        new_id = cookie_pairs(response)[COOKIE]
        during = [name for name, _ in events]
        again = await http.get("/read", headers={"cookie": jar(login, response)})
        replay = await http.get("/read", headers={"cookie": cookie_header(login)})
    assert new_id not in ("", old_id)
    assert_one_line_per_cookie(response)
    assert await store.get(old_id) is None  # the destroyed id stays destroyed
    stored = await store.get(new_id)
    assert stored is not None and stored["user"] == user and len(store) == 1
    assert again.json() == {"data": {"user": user}, "id": new_id}
    assert replay.json()["data"] == {}
    assert "missed" not in during and "lost" not in during


async def test_store_mode_id_between_the_removal_and_the_next_save() -> None:
    """No id while the session is removed; the new one once the write is saved."""
    async with client(app(store=MemoryStore())) as http:
        login = await http.get("/login")
        response = await http.get("/restore-save", headers={"cookie": cookie_header(login)})
    assert response.json() == {"removed_id": None, "id": cookie_pairs(response)[COOKIE]}


async def test_store_mode_no_id_after_a_removal_committed_again_after_a_flush() -> None:
    """A removal committed, then ``flush()`` draws an id, then the removal is committed again:
    the id was never stored, and the session has none until a save."""

    async def steps(scope: dict[str, Any]) -> Any:
        session = scope["session"]
        session.destroy()
        await session.regenerate()
        await session.flush()
        drawn = session.external_key
        session.destroy()
        await session.save()
        return {"drawn": drawn, "id": session.external_key}

    store = MemoryStore()
    async with client(app(store=store)) as http:
        login = await http.get("/login")
    async with client(wrap(steps, store=store)) as http:
        response = await http.get("/", headers={"cookie": cookie_header(login)})
    assert response.json()["drawn"] is not None
    assert response.json()["id"] is None
    assert len(store) == 0


async def test_store_mode_data_after_a_committed_removal_is_a_new_session() -> None:
    """Its ``_created`` is the time of the new session, not the removed one's."""
    store = MemoryStore()
    expire = int(time.time() * 1000) + DAY_MS
    old_id = "a" * 32
    await store.set(old_id, {"user": "alice", "_expire": expire, "_maxAge": DAY_MS, "_created": 1})
    cookie = f"{COOKIE}={old_id}; {COOKIE}.sig={sign(COOKIE, old_id)}"
    async with client(app(store=store)) as http:
        response = await http.get("/restore?bob", headers={"cookie": cookie})
    stored = await store.get(cookie_pairs(response)[COOKIE])
    assert stored is not None and stored["user"] == "bob"
    assert stored["_created"] > 1


def test_websocket_write_after_a_committed_removal_is_refused_and_reported_lost() -> None:
    """A WebSocket cannot send the new id's cookie: the save is refused, and the write (equal
    to what was loaded) is reported lost at the end, not taken for unchanged."""
    outcomes: list[str] = []
    events: Events = []

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        session = websocket.session
        session.destroy()
        await session.save()
        session["user"] = "alice"
        try:
            await session.save()
        except ResponseStartedError as exc:
            outcomes.append(str(exc))
        await websocket.close()

    store = MemoryStore()
    app = SessionMiddleware(
        Starlette(routes=[WebSocketRoute("/ws", ws)]),
        keys=[KEY],
        store=store,
        on_event=lambda name, payload: events.append((name, payload.get("reason"))),
    )
    cookies = asyncio.run(testing.asession_cookies(app, {"user": "alice"}))
    with TestClient(app, cookies=cookies) as tc, tc.websocket_connect("/ws"):
        pass
    assert len(outcomes) == 1 and "no stored id" in outcomes[0]
    assert len(store) == 0
    assert events == [("lost", "websocket changes not saved")]
