"""The everyday verbs and the session's times, through HTTP, in cookie and store mode."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from koasession import codec
from koasession.errors import ResponseStartedError
from koasession.stores import MemoryStore

from ._app import client, cookie_header, cookie_pairs, sign, wrap

COOKIE = "koa.sess"


async def verbs(scope: dict[str, Any]) -> Any:
    session = scope["session"]
    path = scope["path"]
    query = scope["query_string"].decode()
    if path == "/set":
        session["user"] = query or "ann"
    elif path == "/flush":
        await session.flush()
        if query.startswith("then-set"):
            session["cart"] = 1
    elif path == "/flush-sync":
        session.flush_sync()
    elif path == "/reload":
        session["user"] = "mallory"
        await session.reload()
    elif path == "/reload-sync":
        session["user"] = "mallory"
        session.reload_sync()
    elif path == "/skip":
        session["user"] = "changed"
        session.skip_save()
    elif path == "/skip-destroy":
        session.destroy()
        session.skip_save()
    elif path == "/times":
        created, accessed, expires = session.created_at, session.accessed_at, session.expires_at
        return {
            "created": None if created is None else created.timestamp(),
            "accessed": None if accessed is None else accessed.timestamp(),
            "expires": None if expires is None else expires.timestamp(),
            "remaining": session.remaining,
            "utc": created is None or created.tzinfo is timezone.utc,
            "data": session.to_json(),
        }
    return {"data": dict(session), "id": session.external_key}


def cookie_app(**options: Any) -> Any:
    return wrap(verbs, **options)


def store_app(store: MemoryStore | None = None, **options: Any) -> Any:
    return wrap(verbs, store=MemoryStore() if store is None else store, **options)


async def login(http: Any) -> str:
    response = await http.get("/set")
    return cookie_header(response)


def cookie_value(response: Any) -> str | None:
    return cookie_pairs(response).get(COOKIE)


# -- flush -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/flush", "/flush-sync"])
async def test_flush_in_cookie_mode_clears_the_cookie(path: str) -> None:
    async with client(cookie_app()) as http:
        cookie = await login(http)
        response = await http.get(path, headers={"cookie": cookie})
    assert response.json()["data"] == {}
    assert cookie_value(response) == ""
    assert "expires=Thu, 01 Jan 1970" in response.headers["set-cookie"]


async def test_flush_then_set_starts_a_new_cookie_session() -> None:
    async with client(cookie_app()) as http:
        cookie = await login(http)
        response = await http.get("/flush", params="then-set", headers={"cookie": cookie})
        payload = codec.decode(cookie_pairs(response)[COOKIE])
        again = await http.get("/times", headers={"cookie": cookie_header(response)})
    assert payload is not None and payload["cart"] == 1 and "user" not in payload
    assert again.json()["data"] == {"cart": 1}


async def test_flush_in_store_mode_destroys_the_entry_and_changes_the_id() -> None:
    store = MemoryStore()
    async with client(store_app(store)) as http:
        first = await http.get("/set")
        old_id = first.json()["id"]
        assert await store.get(old_id, 86400) is not None
        response = await http.get(
            "/flush", params="then-set", headers={"cookie": cookie_header(first)}
        )
        new_id = response.json()["id"]
        assert new_id != old_id and cookie_value(response) == new_id
        assert await store.get(old_id, 86400) is None
        stored = await store.get(new_id, 86400)
        assert stored is not None and stored["cart"] == 1 and "user" not in stored
        # The old cookie no longer logs anyone in.
        replay = await http.get("/times", headers={"cookie": cookie_header(first)})
    assert replay.json()["data"] == {}


async def test_flush_of_an_empty_store_session_writes_nothing() -> None:
    store = MemoryStore()
    async with client(store_app(store)) as http:
        first = await http.get("/set")
        response = await http.get("/flush", headers={"cookie": cookie_header(first)})
    assert cookie_value(response) == ""
    assert await store.get(first.json()["id"], 86400) is None
    assert await store.get(response.json()["id"], 86400) is None


async def test_flush_sync_refuses_store_mode() -> None:
    app = store_app()
    async with client(app) as http:
        with pytest.raises(TypeError, match=r"await session\.flush"):
            await http.get("/flush-sync")


# -- reload ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/reload", "/reload-sync"])
async def test_reload_in_cookie_mode_discards_local_changes(path: str) -> None:
    async with client(cookie_app()) as http:
        cookie = await login(http)
        response = await http.get(path, headers={"cookie": cookie})
    assert response.json()["data"] == {"user": "ann"}
    assert COOKIE not in cookie_pairs(response)  # nothing changed, nothing written


async def test_reload_in_store_mode_reads_what_another_request_saved() -> None:
    store = MemoryStore()

    async def handler(scope: dict[str, Any]) -> Any:
        session = scope["session"]
        if scope["path"] == "/race":
            session["user"] = "mallory"
            stored = await store.get(session.external_key, 86400)
            stored["user"] = "bob"  # another request's save, meanwhile
            await store.set(session.external_key, stored, 86400)
            await session.reload()
        else:
            session["user"] = "ann"
        return dict(session)

    async with client(wrap(handler, store=store)) as http:
        first = await http.get("/")
        response = await http.get("/race", headers={"cookie": cookie_header(first)})
    assert response.json() == {"user": "bob"}


async def test_reload_sync_refuses_store_mode() -> None:
    async with client(store_app()) as http:
        with pytest.raises(TypeError, match=r"await session\.reload"):
            await http.get("/reload-sync")


# -- skip_save ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cookie", "store"])
async def test_skip_save_writes_nothing(mode: str) -> None:
    store = MemoryStore()
    app = cookie_app(rolling=True) if mode == "cookie" else store_app(store, rolling=True)
    async with client(app) as http:
        first = await http.get("/set")
        cookie = cookie_header(first)
        skipped = await http.get("/skip", headers={"cookie": cookie})
        assert "set-cookie" not in skipped.headers  # neither the change nor rolling's refresh
        destroyed = await http.get("/skip-destroy", headers={"cookie": cookie})
        assert "set-cookie" not in destroyed.headers
        after = await http.get("/times", headers={"cookie": cookie})
    assert after.json()["data"] == {"user": "ann"}
    if mode == "store":
        stored = await store.get(first.json()["id"], 86400)
        assert stored is not None and stored["user"] == "ann"


# -- times -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cookie", "store"])
async def test_times_of_a_new_and_a_loaded_session(mode: str) -> None:
    app = cookie_app(max_age=3600) if mode == "cookie" else store_app(max_age=3600)
    before = time.time()
    async with client(app) as http:
        fresh = (await http.get("/times")).json()
        first = await http.get("/set")
        loaded = (await http.get("/times", headers={"cookie": cookie_header(first)})).json()
    after = time.time()
    assert before - 1 <= fresh["created"] <= after + 1 and fresh["utc"]
    assert fresh["accessed"] is None
    assert 3590 <= fresh["remaining"] <= 3600
    assert abs(fresh["expires"] - (fresh["created"] + 3600)) < 2
    assert before - 1 <= loaded["created"] <= after + 1
    assert 3590 <= loaded["remaining"] <= 3600
    assert "_created" not in loaded["data"]  # metadata stays out of the data


@pytest.mark.parametrize("signed", [True, False])
async def test_times_past_year_9999_read_as_the_latest_datetime(signed: bool) -> None:
    """koa-session reads JavaScript dates, up to 8.64e15 ms (year 275760); Python's datetime
    stops at year 9999. Such a payload (signed, or any client's with ``signed=False``) loads,
    and its times read as ``datetime.max`` instead of failing the request."""
    latest = datetime.max.replace(tzinfo=timezone.utc).timestamp()
    payload = {
        "user": "ann",
        "_expire": 8.64e15,
        "_maxAge": 86_400_000,
        "_created": 8.64e15,
        "_accessed": 8.64e15,
    }
    value = base64.b64encode(json.dumps(payload).encode()).decode()
    cookie = (
        f"{COOKIE}={value}; {COOKIE}.sig={sign(COOKIE, value)}" if signed else f"{COOKIE}={value}"
    )
    async with client(cookie_app(signed=signed, idle_timeout=600)) as http:
        response = await http.get("/times", headers={"cookie": cookie})
    assert response.status_code == 200
    times = response.json()
    assert times["data"]["user"] == "ann"
    assert times["created"] == times["accessed"] == times["expires"] == latest
    assert times["remaining"] > 8e12  # seconds: the payload's own expiry, not the clamp


async def test_created_at_survives_saves() -> None:
    async with client(cookie_app()) as http:
        first = await http.get("/set")
        created = (await http.get("/times", headers={"cookie": cookie_header(first)})).json()
        changed = await http.get("/set", params="bob", headers={"cookie": cookie_header(first)})
        again = (await http.get("/times", headers={"cookie": cookie_header(changed)})).json()
    assert again["created"] == created["created"]


async def test_browser_session_has_no_expiry_and_idle_timeout_records_access() -> None:
    async with client(cookie_app(max_age="session", idle_timeout=600)) as http:
        first = await http.get("/set")
        times = (await http.get("/times", headers={"cookie": cookie_header(first)})).json()
    assert times["expires"] is None and times["remaining"] is None
    assert times["accessed"] is not None and abs(times["accessed"] - time.time()) < 60


@pytest.mark.parametrize("how", ["option", "koa_middleware"])
async def test_record_created_false_keeps_koa_bytes(how: str) -> None:
    if how == "option":
        app = cookie_app(record_created=False)
    else:
        from koasession.koa import koa_middleware

        from ._app import KEY

        app = koa_middleware(wrap(verbs, keys=[KEY]).app, [KEY])
    async with client(app) as http:
        first = await http.get("/set")
        times = (await http.get("/times", headers={"cookie": cookie_header(first)})).json()
    payload = codec.decode(cookie_pairs(first)[COOKIE])
    assert payload is not None and set(payload) == {"user", "_expire", "_maxAge"}
    assert times["created"] is None


async def test_record_created_must_be_a_bool() -> None:
    from koasession.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="record_created"):
        cookie_app(record_created="yes")


async def test_created_cannot_be_set_by_the_app() -> None:
    async def handler(scope: dict[str, Any]) -> Any:
        scope["session"]["_created"] = 1
        return None

    async with client(wrap(handler)) as http:
        with pytest.raises(KeyError, match="reserved"):
            await http.get("/")


async def test_verbs_after_the_response_started_are_refused() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with pytest.raises(ResponseStartedError):
            await scope["session"].flush()
        await send({"type": "http.response.body", "body": b"ok"})

    from koasession import SessionMiddleware

    from ._app import KEY

    async with client(SessionMiddleware(app, keys=[KEY])) as http:
        response = await http.get("/")
    assert response.text == "ok"
