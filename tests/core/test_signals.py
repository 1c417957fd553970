"""Clear signals instead of silent surprises (issue 9 §5, issue 16 §6).

A cookie written in the other mode, a change that cannot be delivered (after the response
started, on a WebSocket), an ``owner()`` bug and a bad configuration each say what happened.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from koasession import ConfigurationError, MemoryStore, SessionMiddleware, testing
from koasession.errors import ResponseStartedError
from koasession.lifecycle import _is_cookie_payload

from ._app import KEY, client, cookie_pairs, set_cookies, sign, signed_cookie, wrap

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette 1.x nudges towards httpx2
    from starlette.testclient import TestClient


@pytest.fixture
def koasession_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the ``koasession`` logger at INFO and above."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("koasession")
    handler = Collect(logging.INFO)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


class CountingStore(MemoryStore):
    """A MemoryStore that records the ids it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.gets.append(key)
        return await super().get(key, *args, **kwargs)


def recorder() -> tuple[list[tuple[str, Any]], Any]:
    events: list[tuple[str, Any]] = []
    return events, lambda name, payload: events.append((name, payload.get("reason")))


def read_data(scope: dict[str, Any]) -> Any:
    return dict(scope["session"])


# -- a cookie from the other mode --------------------------------------------------------------


async def test_cookie_mode_cookie_at_a_store_mode_app(
    koasession_log: list[logging.LogRecord],
) -> None:
    store = CountingStore()
    events, on_event = recorder()
    app = wrap(read_data, store=store, on_event=on_event)
    cookie = signed_cookie({"n": 1, "_expire": 9_999_999_999_999, "_maxAge": 86400000})
    async with client(app) as c:
        for _ in range(2):
            response = await c.get("/", headers={"cookie": cookie})
            assert response.status_code == 200
            assert response.json() == {}
    assert store.gets == []  # recognised without a store call
    assert events == [("invalid", "cookie from cookie mode")] * 2
    infos = [r for r in koasession_log if r.levelno == logging.INFO]
    assert len(infos) == 1  # explained once per middleware
    assert "cookie from cookie mode" in infos[0].getMessage()


async def test_encrypted_cookie_at_a_store_mode_app_is_not_reported_as_tampering() -> None:
    sealer = wrap(lambda scope: scope["session"].update(n=1), encrypt=True)
    async with client(sealer) as c:
        value = cookie_pairs(await c.get("/"))["koa.sess"]
    store = CountingStore()
    events, on_event = recorder()
    app = wrap(read_data, store=store, on_event=on_event)
    async with client(app) as c:
        response = await c.get("/", headers={"cookie": f"koa.sess={value}"})
    assert response.json() == {}
    assert events == [("invalid", "cookie from cookie mode")]
    assert store.gets == []


@pytest.mark.parametrize("encrypt", [False, True])
async def test_store_mode_cookie_at_a_cookie_mode_app(encrypt: bool) -> None:
    sid = secrets.token_urlsafe(32)
    events, on_event = recorder()
    app = wrap(read_data, on_event=on_event, encrypt=encrypt)
    cookie = f"koa.sess={sid}; koa.sess.sig={sign('koa.sess', sid)}"
    async with client(app) as c:
        response = await c.get("/", headers={"cookie": cookie})
    assert response.status_code == 200
    assert response.json() == {}
    assert events == [("invalid", "cookie from store mode")]


async def test_a_signed_payload_that_is_not_an_object_is_still_malformed() -> None:
    events, on_event = recorder()
    async with client(wrap(read_data, on_event=on_event)) as c:
        await c.get("/", headers={"cookie": signed_cookie([1, 2])})  # type: ignore[arg-type]
    assert events == [("invalid", "malformed payload")]


async def test_an_unsigned_garbage_value_is_still_tampering_in_encrypted_mode() -> None:
    events, on_event = recorder()
    app = wrap(read_data, on_event=on_event, encrypt=True)
    sid = secrets.token_urlsafe(32)
    async with client(app) as c:
        await c.get("/", headers={"cookie": f"koa.sess={sid}; koa.sess.sig=forged"})
    assert events == [("tampered", "cannot decrypt")]


async def test_a_store_id_that_starts_like_json_is_still_looked_up() -> None:
    # 'eyJ' is three base64 characters: about one default id in 260,000 starts with it.
    ids = iter(["eyJ" + secrets.token_urlsafe(30) for _ in range(2)])
    store = CountingStore()
    events, on_event = recorder()

    def handler(scope: dict[str, Any]) -> Any:
        scope["session"]["n"] = scope["session"].get("n", 0) + 1
        return dict(scope["session"])

    app = wrap(handler, store=store, genid=lambda ctx: next(ids), on_event=on_event)
    async with client(app) as c:
        first = await c.get("/")
        sid = cookie_pairs(first)["koa.sess"]
        assert sid.startswith("eyJ") and not _is_cookie_payload(sid)
        second = await c.get("/")
    assert second.json() == {"n": 2}
    assert store.gets == [sid]
    assert events == []


# -- a change that cannot be delivered ---------------------------------------------------------


def websocket_app(**options: Any) -> tuple[SessionMiddleware, list[Any]]:
    outcomes: list[Any] = []

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        session = websocket.session
        session["seen"] = session.get("seen", 0) + 1
        action = websocket.query_params.get("do")
        try:
            if action == "save":
                await session.save()
            elif action == "regenerate":
                await session.regenerate()
            outcomes.append("ok")
        except ResponseStartedError as exc:
            outcomes.append(str(exc))
        await websocket.close()

    options.setdefault("keys", [KEY])
    return SessionMiddleware(Starlette(routes=[WebSocketRoute("/ws", ws)]), **options), outcomes


def test_websocket_change_in_cookie_mode_is_reported_lost(
    koasession_log: list[logging.LogRecord],
) -> None:
    events, on_event = recorder()
    app, outcomes = websocket_app(on_event=on_event)
    with TestClient(app) as tc:
        for path in ("/ws", "/ws", "/ws?do=save"):
            with tc.websocket_connect(path):
                pass
    assert outcomes[:2] == ["ok", "ok"]
    assert "cookie mode a WebSocket can only read the session" in outcomes[2]
    assert events == [("lost", "websocket in cookie mode")] * 3
    warnings = [r for r in koasession_log if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "WebSocket in cookie mode" in warnings[0].getMessage()


def test_websocket_save_in_store_mode_writes_the_store() -> None:
    store = MemoryStore()
    events, on_event = recorder()
    app, outcomes = websocket_app(store=store, on_event=on_event)
    cookies = asyncio.run(testing.asession_cookies(app, {"seen": 5}))
    sid = cookies["koa.sess"]
    with TestClient(app, cookies=cookies) as tc:
        with tc.websocket_connect("/ws?do=save"):
            pass
        with tc.websocket_connect("/ws?do=regenerate"):
            pass
        with tc.websocket_connect("/ws"):
            pass
    assert outcomes[0] == "ok"
    assert "regenerate() on a WebSocket" in outcomes[1]
    assert (asyncio.run(store.get(sid)) or {}).get("seen") == 6
    # A change without save() on a WebSocket is reported, not silently dropped.
    assert events == [("lost", "websocket changes not saved")] * 2


# -- owner() bugs --------------------------------------------------------------------------------


async def test_owner_returning_a_non_string_is_an_application_error() -> None:
    events, on_event = recorder()
    store = MemoryStore(owner=lambda data: True)
    app = wrap(lambda scope: scope["session"].update(user="ada"), store=store, on_event=on_event)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(TypeError, match="owner"):
            await c.get("/")
    assert events == []  # no store_error: the store is fine
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert len(store) == 0


async def test_logs_and_store_errors_show_a_fingerprint_not_the_session_id(
    koasession_log: list[logging.LogRecord],
) -> None:
    """A live store id is a credential: the ``store_error`` log line and the ``StoreError``
    (which reaches tracebacks and error trackers) show its fingerprint; the listener still gets
    koa's payload with the id itself."""
    from koasession.errors import StoreError
    from koasession.ids import fingerprint

    class Failing(MemoryStore):
        down = False

        async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise ConnectionError("store down")
            return await super().get(key, *args, **kwargs)

    store = Failing()
    keys: list[object] = []
    raised: list[StoreError] = []

    async def handler(scope: dict[str, Any]) -> dict[str, Any]:
        session = scope["session"]
        try:
            await session.load()
        except StoreError as exc:
            raised.append(exc)
            raise
        session["n"] = 1
        return {}

    app = wrap(
        handler,
        store=store,
        lazy=True,
        on_event=lambda name, payload: (
            keys.append(payload["key"]) if name == "store_error" else None
        ),
    )
    async with client(app) as http:
        await http.get("/")
        sid = http.cookies["koa.sess"]  # the id the first request saved
        store.down = True
        assert (await http.get("/")).status_code == 503
    assert keys == [sid]
    (record,) = [r for r in koasession_log if "store_error" in r.getMessage()]
    assert sid not in record.getMessage()
    assert fingerprint(sid) in record.getMessage()
    (error,) = raised
    assert sid not in str(error)
    assert f"get({fingerprint(sid)}) failed" in str(error)


# -- configuration errors ------------------------------------------------------------------------


def test_configuration_error_is_logged_when_raised(
    koasession_log: list[logging.LogRecord],
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        pass

    with pytest.raises(ConfigurationError, match="bytes"):
        SessionMiddleware(app, keys=["short"])
    (record,) = [r for r in koasession_log if r.levelno == logging.ERROR]
    assert "keys[0] is 5 bytes" in record.getMessage()
