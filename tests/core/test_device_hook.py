"""The device_policy option: device facts recorded by the middleware, through HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from koasession.devices import DevicePolicy
from koasession.errors import ConfigurationError
from koasession.stores import MemoryStore

from ._app import client, cookie_header, wrap


async def handler(scope: dict[str, Any]) -> Any:
    session = scope["session"]
    path = scope["path"]
    if path == "/login":
        session["user"] = "ann"
        await session.regenerate()
    elif path == "/anon":
        session["cart"] = 1
    elif path == "/visit":
        session["visits"] = session.get("visits", 0) + 1
    elif path == "/forge":
        session["_device"] = {"user_agent": "forged"}
    return {"data": session.to_json(), "id": session.external_key}


def owned_store() -> MemoryStore:
    return MemoryStore(owner=lambda data: data.get("user"))


def app(store: MemoryStore, **options: Any) -> Any:
    options.setdefault("device_policy", DevicePolicy(ip="prefix"))
    return wrap(handler, store=store, **options)


async def entry(store: MemoryStore, key: str) -> dict[str, Any]:
    data = await store.get(key, 86400)
    assert data is not None
    return data


async def test_login_records_the_device_and_the_app_cannot_see_or_forge_it() -> None:
    store = owned_store()
    async with client(app(store)) as http:
        login = await http.get("/login", headers={"user-agent": "Laptop/1"})
        assert login.json()["data"] == {"user": "ann"}  # to_json() hides _device
        device = (await entry(store, login.json()["id"]))["_device"]
        assert device["user_agent"] == "Laptop/1"
        assert device["ip"] == "127.0.0.0/24"  # httpx's ASGITransport client address
        assert abs(device["created_at"] - time.time()) < 60
        with pytest.raises(KeyError, match="reserved"):
            await http.get("/forge", headers={"cookie": cookie_header(login)})


async def test_the_device_is_kept_through_saves_and_renewed_at_login() -> None:
    store = owned_store()
    async with client(app(store)) as http:
        login = await http.get("/login", headers={"user-agent": "Laptop/1"})
        first = (await entry(store, login.json()["id"]))["_device"]
        visit = await http.get(
            "/visit", headers={"cookie": cookie_header(login), "user-agent": "Other/9"}
        )
        assert visit.json()["data"] == {"user": "ann", "visits": 1}
        kept = (await entry(store, login.json()["id"]))["_device"]
        assert kept["user_agent"] == "Laptop/1" and kept["created_at"] == first["created_at"]
        again = await http.get(
            "/login", headers={"cookie": cookie_header(login), "user-agent": "Phone/2"}
        )
    assert (await entry(store, again.json()["id"]))["_device"]["user_agent"] == "Phone/2"


async def test_last_seen_refreshes_only_when_due() -> None:
    store = owned_store()
    async with client(app(store)) as http:
        login = await http.get("/login")
        key = login.json()["id"]
        data = await entry(store, key)
        data["_device"] = {**data["_device"], "last_seen": 5}
        await store.set(key, data, 86400)
        await http.get("/visit", headers={"cookie": cookie_header(login)})
        refreshed = (await entry(store, key))["_device"]["last_seen"]
        assert abs(refreshed - time.time()) < 60
        await http.get("/visit", headers={"cookie": cookie_header(login)})
        # Saved again at once: last_seen is due only after touch_interval (60 s).
        assert (await entry(store, key))["_device"]["last_seen"] == refreshed


async def test_sessions_without_an_owner_record_nothing() -> None:
    store = owned_store()
    async with client(app(store)) as http:
        anon = await http.get("/anon", headers={"user-agent": "Laptop/1"})
    assert "_device" not in await entry(store, anon.json()["id"])


async def test_no_policy_records_nothing() -> None:
    store = owned_store()
    async with client(wrap(handler, store=store)) as http:
        login = await http.get("/login", headers={"user-agent": "Laptop/1"})
    assert "_device" not in await entry(store, login.json()["id"])


@pytest.mark.parametrize("proxy", [False, True])
async def test_forwarded_for_is_trusted_only_behind_a_proxy(proxy: bool) -> None:
    store = owned_store()
    async with client(app(store, proxy=proxy)) as http:
        login = await http.get("/login", headers={"x-forwarded-for": "203.0.113.9, 10.0.0.1"})
    ip = (await entry(store, login.json()["id"]))["_device"]["ip"]
    assert ip == ("203.0.113.0/24" if proxy else "127.0.0.0/24")


def test_device_policy_needs_an_owned_store() -> None:
    with pytest.raises(ConfigurationError, match="owner="):
        wrap(handler, device_policy=DevicePolicy())
    with pytest.raises(ConfigurationError, match="owner="):
        wrap(handler, store=MemoryStore(), device_policy=DevicePolicy())
    with pytest.raises(ConfigurationError, match="DevicePolicy"):
        wrap(handler, store=owned_store(), device_policy={"ip": "full"})
