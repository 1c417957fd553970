"""The store guarantees seen through the middleware, on real servers.

Concurrency, strict ids and no-resurrection run for every store kind; the failure policy
(``on_store_error``, ``store_timeout``, event ``store_error``) runs against a private
redis-server that the tests pause (``CLIENT PAUSE``), kill and restart.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from koasession import SessionMiddleware
from koasession.devices import DevicePolicy

from .conftest import Harness, PrivateRedis

pytestmark = pytest.mark.timeout(90)

KEYS = ["A7UKOI0D6ss5xOLURUcF2DI5W2fVBzjA_qee5llpzkw"]
COOKIE = "koa.sess"


def make_app(store: Any, **options: Any) -> tuple[SessionMiddleware, list[tuple[str, Any]]]:
    """A small app over ``store``; returns it and the list of events it emitted."""
    events: list[tuple[str, Any]] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        session = scope["session"]
        query = parse_qs(scope["query_string"].decode())
        path = scope["path"]
        if path == "/set":
            session["v"] = int(query["v"][0])
            session["pad"] = "p" * (int(query["v"][0]) % 17)
        elif path == "/inc":
            session["views"] = session.get("views", 0) + 1
        elif path == "/slow":
            await asyncio.sleep(float(query["t"][0]))
            session["views"] = session.get("views", 0) + 100
        elif path == "/logout":
            session.destroy()
        elif path == "/login":
            session["user"] = "ann"
            await session.regenerate()
        body = b"null" if path == "/logout" else json.dumps(dict(session)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def on_event(name: str, payload: Any) -> None:
        events.append((name, payload))

    app = SessionMiddleware(inner, keys=KEYS, store=store, on_event=on_event, **options)
    return app, events


async def call(app: Any, path: str, cookie: str | None = None) -> httpx.Response:
    """One request from a fresh client (no cookie jar shared between concurrent requests)."""
    headers = {"cookie": cookie} if cookie else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """name -> value of each Set-Cookie ("" for a removal)."""
    out = {}
    for line in response.headers.get_list("set-cookie"):
        name, _, rest = line.partition("=")
        value = rest.split(";", 1)[0]
        out[name] = "" if "1970" in line else value
    return out


def cookie_header(response: httpx.Response) -> str:
    cookies = set_cookies(response)
    assert cookies.get(COOKIE), f"no session cookie in {response.headers}"
    return "; ".join(f"{k}={v}" for k, v in cookies.items() if v)


# -- every store -------------------------------------------------------------------------------


async def test_200_concurrent_requests_on_one_session(harness: Harness) -> None:
    store = await harness.make()
    app, events = make_app(store)
    first = await call(app, "/set?v=-1")
    cookie = cookie_header(first)
    sid = set_cookies(first)[COOKIE]

    responses = await asyncio.gather(*(call(app, f"/set?v={i}", cookie) for i in range(200)))
    assert [r.status_code for r in responses] == [200] * 200
    for r in responses:
        # Every save updated the same session: no request was moved to another id.
        assert set_cookies(r).get(COOKIE) in (None, sid)
    assert not [e for e in events if e[0] == "store_error"]

    final = (await call(app, "/get", cookie)).json()
    assert 0 <= final["v"] < 200
    assert final == {"v": final["v"], "pad": "p" * (final["v"] % 17)}
    stored = await store.get(sid)
    assert stored is not None and stored["v"] == final["v"]


def devices_app(store: Any) -> SessionMiddleware:
    """Log in with device facts, list "your sessions", end one: as a real app would."""

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        query = parse_qs(scope["query_string"].decode())
        body: Any = None
        if scope["path"] == "/login":
            session["user"] = "ann"
            await session.regenerate()
        elif scope["path"] == "/sessions":
            entries = await store.list_owner(session["user"], current=session.external_key)
            body = [
                {"handle": e.handle, "device": e.device, "current": e.is_current}
                | {"seen": e.last_seen}
                for e in entries
            ]
        elif scope["path"] == "/revoke":
            body = await store.revoke(session["user"], query["h"][0])
        elif scope["path"] == "/others":
            body = await store.destroy_owner(session["user"], keep=session.external_key)
        elif scope["path"] == "/me":
            body = session.get("user")
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return SessionMiddleware(inner, keys=KEYS, store=store, device_policy=DevicePolicy(ip="prefix"))


async def agent_call(app: Any, path: str, cookie: str | None, agent: str) -> httpx.Response:
    headers = {"user-agent": agent, **({"cookie": cookie} if cookie else {})}
    transport = httpx.ASGITransport(app=app, client=("198.51.100.23", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize("hashed", [False, True], ids=["raw_ids", "hash_ids"])
async def test_where_you_are_signed_in(harness: Harness, hashed: bool) -> None:
    options: dict[str, Any] = {"hash_ids": True, "hash_key": "h" * 32} if hashed else {}
    store = await harness.make(owner=lambda data: data.get("user"), **options)
    app = devices_app(store)
    cookies = {}
    for agent in ("Laptop/1", "Phone/2", "Tablet/3"):
        cookies[agent] = cookie_header(await agent_call(app, "/login", None, agent))

    listed = (await agent_call(app, "/sessions", cookies["Laptop/1"], "Laptop/1")).json()
    assert sorted(e["device"]["user_agent"] for e in listed) == ["Laptop/1", "Phone/2", "Tablet/3"]
    assert [e["device"]["user_agent"] for e in listed if e["current"]] == ["Laptop/1"]
    assert {e["device"]["ip"] for e in listed} == {"198.51.100.0/24"}
    assert all(isinstance(e["seen"], float) for e in listed)
    for cookie in cookies.values():
        sid = cookie.split(f"{COOKIE}=", 1)[1].split(";", 1)[0]
        assert all(sid not in e["handle"] for e in listed)

    phone = next(e["handle"] for e in listed if e["device"]["user_agent"] == "Phone/2")
    revoked = await agent_call(app, f"/revoke?h={phone}", cookies["Laptop/1"], "Laptop/1")
    assert revoked.json() is True
    assert (await agent_call(app, "/me", cookies["Phone/2"], "Phone/2")).json() is None

    others = await agent_call(app, "/others", cookies["Laptop/1"], "Laptop/1")
    assert others.json() == 1
    assert (await agent_call(app, "/me", cookies["Tablet/3"], "Tablet/3")).json() is None
    assert (await agent_call(app, "/me", cookies["Laptop/1"], "Laptop/1")).json() == "ann"
    await store.destroy_owner("ann")


async def test_signed_unknown_id_creates_nothing(harness: Harness) -> None:
    store = await harness.make()
    app, events = make_app(store)
    first = await call(app, "/inc")
    cookie = cookie_header(first)
    sid = set_cookies(first)[COOKIE]
    await store.destroy(sid)  # the server forgot it; the client still has a validly signed id
    before = await harness.dump(store)
    for _ in range(100):
        r = await call(app, "/get", cookie)
        assert r.status_code == 200
        assert r.json() == {}
        assert not set_cookies(r).get(COOKIE)
    assert await harness.dump(store) == before
    assert [name for name, _ in events].count("missed") == 100


async def test_logout_during_in_flight_request_is_not_undone(harness: Harness) -> None:
    store = await harness.make()
    app, _ = make_app(store)
    first = await call(app, "/inc")
    cookie = cookie_header(first)
    sid = set_cookies(first)[COOKIE]

    async def logout_later() -> httpx.Response:
        await asyncio.sleep(0.15)
        return await call(app, "/logout", cookie)

    slow, logout = await asyncio.gather(call(app, "/slow?t=0.4", cookie), logout_later())
    assert logout.status_code == 200
    assert set_cookies(logout)[COOKIE] == ""
    assert slow.status_code == 200
    # The slow request loaded the session before the logout; its save must not recreate it,
    # and its cookie must not point at it any more.
    assert set_cookies(slow).get(COOKIE, "") == ""
    assert await store.get(sid) is None
    assert (await call(app, "/get", cookie)).json() == {}


async def test_login_during_in_flight_request_is_not_undone(harness: Harness) -> None:
    """A request whose session vanished (a concurrent login's regenerate()) leaves the cookie.

    Clearing it by name would make the browser drop the login cookie that the login response
    set meanwhile: the user would be logged out right after logging in.
    """
    store = await harness.make()
    app, events = make_app(store)
    first = await call(app, "/inc")
    cookie = cookie_header(first)
    old_sid = set_cookies(first)[COOKIE]

    async def login_later() -> httpx.Response:
        await asyncio.sleep(0.15)
        return await call(app, "/login", cookie)

    slow, login = await asyncio.gather(call(app, "/slow?t=0.4", cookie), login_later())
    assert login.status_code == 200 and slow.status_code == 200
    new_sid = set_cookies(login)[COOKIE]
    assert new_sid and new_sid != old_sid
    # The slow request saved nothing (no resurrection) and set no cookie at all.
    assert COOKIE not in set_cookies(slow)
    assert await store.get(old_sid) is None
    assert ("missed", old_sid) in [(name, p["key"]) for name, p in events]
    # A browser applies both responses in the order they arrive: the login sticks.
    jar: dict[str, str] = {}
    for response in (login, slow):
        jar.update(set_cookies(response))
    assert jar[COOKIE] == new_sid
    after = await call(app, "/get", "; ".join(f"{k}={v}" for k, v in jar.items() if v))
    assert after.json() == {"views": 1, "user": "ann"}
    # The old cookie, replayed, finds its id missing and starts afresh.
    assert (await call(app, "/get", cookie)).json() == {}


async def test_regenerate_replay_of_old_cookie_is_empty(harness: Harness) -> None:
    store = await harness.make()
    events: list[Any] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        if scope["path"] == "/login":
            session["user"] = "ann"
            await session.regenerate()
        body = json.dumps(dict(session)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    app = SessionMiddleware(inner, keys=KEYS, store=store, on_event=lambda n, p: events.append(n))
    anon = await call(app, "/login")
    old_cookie = cookie_header(anon)
    old_sid = set_cookies(anon)[COOKIE]
    again = await call(app, "/login", old_cookie)
    new_sid = set_cookies(again)[COOKIE]
    assert new_sid and new_sid != old_sid
    assert await store.get(old_sid) is None
    assert (await store.get(new_sid) or {}).get("user") == "ann"
    assert (await call(app, "/get", old_cookie)).json() == {}


# -- Redis specifics ---------------------------------------------------------------------------


async def test_session_lifetime_gets_a_finite_redis_ttl(redis_url: str) -> None:
    from koasession.stores.redis import RedisStore

    async with RedisStore(redis_url, key_prefix=f"kstest-ttl:{time.time_ns()}:") as store:
        app, _ = make_app(store, max_age="session", session_store_ttl=120)
        r = await call(app, "/inc")
        sid = set_cookies(r)[COOKIE]
        key = store.key_prefix + sid
        try:
            ttl = await store.client.ttl(key)
            assert 118 <= ttl <= 120
            entry = json.loads(await store.client.get(key))
            assert entry.pop("_created") > 0
            assert entry == {"views": 1, "_session": True}
        finally:
            await store.client.delete(key)


def _pause(server: PrivateRedis, ms: int) -> None:
    # A raw socket, so the pausing client is not one of the store's pooled connections.
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.sendall(f"CLIENT PAUSE {ms} ALL\r\n".encode())
        assert s.recv(16).startswith(b"+OK")


async def _wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


def _store_errors(events: list[tuple[str, Any]]) -> list[str]:
    return [p.get("operation", "?") for n, p in events if n == "store_error"]


async def test_paused_redis_with_raise_policy_gives_503_then_recovers(
    private_redis: PrivateRedis,
) -> None:
    from koasession.stores.redis import RedisStore

    async with RedisStore(private_redis.url) as store:
        app, events = make_app(store, on_store_error="raise", store_timeout=0.3)
        first = await call(app, "/inc")
        cookie = cookie_header(first)

        _pause(private_redis, 2000)
        t0 = time.monotonic()
        r = await call(app, "/inc", cookie)  # load times out
        assert r.status_code == 503
        assert time.monotonic() - t0 < 1.5, "store_timeout was not applied"
        assert COOKIE not in set_cookies(r)
        r = await call(app, "/inc")  # no cookie: no load; the save times out
        assert r.status_code == 503
        assert COOKIE not in set_cookies(r)
        assert _store_errors(events) == ["get", "set"]

        async def recovered() -> bool:
            return (await call(app, "/get", cookie)).status_code == 200

        await _wait_until(recovered)
        r = await call(app, "/inc", cookie)
        assert r.status_code == 200
        assert r.json() == {"views": 2}  # the data survived the outage


async def test_paused_redis_with_new_session_policy_serves_fresh_sessions(
    private_redis: PrivateRedis,
) -> None:
    from koasession.stores.redis import RedisStore

    async with RedisStore(private_redis.url) as store:
        app, events = make_app(store, on_store_error="new_session", store_timeout=0.3)
        first = await call(app, "/inc")
        cookie = cookie_header(first)
        sid = set_cookies(first)[COOKIE]

        _pause(private_redis, 2000)
        r = await call(app, "/inc", cookie)
        assert r.status_code == 200
        assert r.json() == {"views": 1}  # a fresh session, not the stored one
        # The save failed too: the cookie must not point at data that was not saved.
        assert not set_cookies(r).get(COOKIE)
        assert _store_errors(events) == ["get", "set"]

        async def recovered() -> bool:
            return (await call(app, "/get", cookie)).json() == {"views": 1}

        await _wait_until(recovered)
        r = await call(app, "/inc", cookie)
        assert r.status_code == 200 and r.json() == {"views": 2}
        assert (await store.get(sid) or {}).get("views") == 2


async def test_stopped_redis_then_restarted(private_redis: PrivateRedis) -> None:
    from koasession.stores.redis import RedisStore

    async with RedisStore(private_redis.url, socket_connect_timeout=0.5) as store:
        strict, strict_events = make_app(store, on_store_error="raise", store_timeout=1.0)
        lenient, _ = make_app(store, on_store_error="new_session", store_timeout=1.0)
        cookie = cookie_header(await call(strict, "/inc"))

        private_redis.stop()
        r = await call(strict, "/inc", cookie)
        assert r.status_code == 503
        assert _store_errors(strict_events) == ["get"]
        r = await call(lenient, "/inc", cookie)
        assert r.status_code == 200 and not set_cookies(r).get(COOKIE)

        private_redis.start()  # same port, empty (no persistence): the old id is now unknown

        async def recovered() -> bool:
            return (await call(strict, "/get", cookie)).status_code == 200

        await _wait_until(recovered)
        r = await call(strict, "/inc", cookie)
        assert r.status_code == 200 and r.json() == {"views": 1}
        assert set_cookies(r)[COOKIE]  # a new id, saved
