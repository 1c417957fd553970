"""A session kept past its request (issue 12 cuts its link to the request's engine)."""

from __future__ import annotations

from typing import Any

import pytest

from koasession import SessionMiddleware
from koasession.errors import ResponseStartedError

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
