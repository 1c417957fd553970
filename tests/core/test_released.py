"""A session kept past its request (issue 12 cuts its link to the request's engine)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from koasession import SessionMiddleware
from koasession.errors import ResponseStartedError

from ._app import http_scope

KEY = "q7Xv2m9LrT4pWc8ZbN1yKfGh3sDj6AeUo0iHtR5lMxE"


async def _run(read: bool) -> Any:
    kept: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        if read:
            session["n"] = 1
        kept.append(session)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "scheme": "http"}
    await SessionMiddleware(app, keys=[KEY])(scope, receive, send)
    return kept[0]


async def test_data_read_during_the_request_stays_readable() -> None:
    session = await _run(read=True)
    assert dict(session) == {"n": 1}


async def test_saving_after_the_request_is_refused_clearly() -> None:
    session = await _run(read=True)
    with pytest.raises(ResponseStartedError, match="request is over"):
        await session.save()


async def test_a_session_first_read_after_the_request_is_refused_clearly() -> None:
    session = await _run(read=False)
    with pytest.raises(ResponseStartedError, match="never read during it"):
        session.get("n")


async def test_an_async_listener_gets_its_event_before_the_request_lets_go() -> None:
    """The end of a request whose engine has events pending (an ``async`` listener): the
    adapter awaits them, then releases the engine as after any other request."""
    delivered: list[tuple[str, Any]] = []
    kept: list[Any] = []

    async def on_event(name: str, payload: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # a listener that really waits
        delivered.append((name, payload.get("reason")))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        session["n"] = 1
        kept.append(session)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        session["n"] = 2  # after the start: reported lost
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = SessionMiddleware(app, keys=[KEY], on_event=on_event)
    scope = http_scope([])
    gc.collect()
    gc.disable()
    try:
        await middleware(scope, receive, send)
        assert delivered == [("lost", "changed after the response started")]
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        cookies = [v.split(b"=")[0] for k, v in sent[0]["headers"] if k == b"set-cookie"]
        assert cookies == [b"koa.sess", b"koa.sess.sig"]  # n=1 went out at the start
        session = kept.pop()
        assert dict(session) == {"n": 2}  # still readable, as any session kept past its request
        with pytest.raises(ResponseStartedError, match="request is over"):
            await session.save()  # the request let go of its engine
        del session, scope
        sent.clear()
        assert gc.collect() == 0  # nothing of the request left in a reference cycle
    finally:
        gc.enable()
