"""Issue 12: a request must leave no reference cycles behind for the garbage collector.

After a warm-up, N requests with the collector disabled, then ``gc.collect()``: every object it
finds sat in a cycle that reference counting could not free (scope <-> session <-> per-request
state). Under load such cycles make the collector run on the server's CPU. Speed itself is
measured by ``make bench``, never here; this only counts objects, which is deterministic.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest

from koasession import MemoryStore, SessionMiddleware

from ._app import http_scope

KEY = "I1cqobbcERqZlXvRYLhB82BbjJ7sjJtktOu_Skgzmw8"
REQUESTS = 500


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    session = scope["session"]
    session["views"] = session.get("views", 0) + 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _scope(cookie: bytes | None) -> dict[str, Any]:
    headers = [(b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie))
    return http_scope(headers)


async def _cookie_after(app: Any, cookie: bytes | None) -> bytes:
    """The Cookie header a browser sends back after one request."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(cookie), _receive, send)
    pairs = [
        value.split(b";", 1)[0] for key, value in sent[0]["headers"] if key.lower() == b"set-cookie"
    ]
    return b"; ".join(pairs) or (cookie or b"")


class _Connection:
    """A server's per-request object as uvicorn has one: its ``send`` holds the scope, so a
    middleware that kept the send past the request would close a cycle through the scope."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self.sent = 0

    async def send(self, message: dict[str, Any]) -> None:
        self.sent += 1


async def _discard(message: dict[str, Any]) -> None:
    return None


async def _collected_per_request(app: Any, cookie: bytes | None, *, server: bool = False) -> float:
    async def one() -> None:
        scope = _scope(cookie)
        await app(scope, _receive, _Connection(scope).send if server else _discard)

    for _ in range(50):  # warm-up: caches and lazily built tables are not garbage
        await one()
    gc.collect()
    gc.disable()
    try:
        for _ in range(REQUESTS):
            await one()
        found = gc.collect()
    finally:
        gc.enable()
    return found / REQUESTS


async def test_the_measurement_sees_no_garbage_from_a_bare_app() -> None:
    """The control: the harness itself (scopes, messages, coroutines) leaves nothing."""
    assert await _collected_per_request(_bare, None) == 0


async def test_cookie_mode_leaves_no_cycles_per_request() -> None:
    app = SessionMiddleware(_app, keys=[KEY])
    cookie = await _cookie_after(app, await _cookie_after(app, None))
    assert await _collected_per_request(app, cookie) == 0


async def test_memory_store_mode_leaves_no_cycles_per_request() -> None:
    app = SessionMiddleware(_app, keys=[KEY], store=MemoryStore(max_entries=100))
    cookie = await _cookie_after(app, await _cookie_after(app, None))
    assert await _collected_per_request(app, cookie) == 0


@pytest.mark.parametrize("handler", [_app, _bare], ids=["counter", "untouched"])
async def test_a_send_that_holds_the_scope_is_let_go(handler: Any) -> None:
    """The app's send is a method of the session; after the request the session must no
    longer reach the server's send, whose connection holds the scope that holds the session."""
    app = SessionMiddleware(handler, keys=[KEY])
    cookie = await _cookie_after(SessionMiddleware(_app, keys=[KEY]), None)
    assert await _collected_per_request(_bare, None, server=True) == 0  # the control
    assert await _collected_per_request(app, cookie, server=True) == 0


class _DownStore:
    """A store whose writes fail, asynchronously: the outage path runs each call as a task
    bounded by the store timeout (no ``call_deadline``)."""

    def __init__(self) -> None:
        self.writes = 0

    async def get(self, key: str, max_age: Any, *, rolling: bool, ctx: Any) -> Any:
        return None

    async def set(
        self, key: str, data: Any, max_age: Any, *, rolling: bool, changed: bool, ctx: Any
    ) -> Any:
        self.writes += 1
        raise ConnectionError("store down")

    async def destroy(self, key: str, *, ctx: Any) -> None:
        return None


async def test_a_store_outage_leaves_no_cycles_per_request() -> None:
    """Every write fails and each response is our 503: the failure, its traceback and the
    task that ran the store call must not hold each other in a cycle."""
    store = _DownStore()
    app = SessionMiddleware(_app, keys=[KEY], store=store, on_event=lambda name, payload: None)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(None), _receive, send)
    assert sent[0]["status"] == 503 and store.writes == 1
    # pytest keeps every logged record, and with it each failure: that would hide a cycle.
    logging.disable(logging.ERROR)
    try:
        assert await _collected_per_request(app, None, server=True) == 0
    finally:
        logging.disable(logging.NOTSET)
