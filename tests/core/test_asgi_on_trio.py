"""The middleware under trio (Hypercorn's trio worker, anyio's trio backend), in process.

Cookie mode, ``MemoryStore`` and stores of the application's own run on any async library; a
store's ``store_timeout`` holds there too (through anyio). The bundled stores that need asyncio
are tested in ``tests/stores/test_off_asyncio.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from _services import require_module
from koasession import MemoryStore, SessionMiddleware

trio = require_module("trio")

KEYS = ["Zq8vR2mT9xW4pL7nB3kY6hJ1sD5fG0aQeUoIcV"]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/`` counts in the session, ``/login`` regenerates it."""
    session = scope["session"]
    if scope["path"] == "/login":
        session["user"] = "ada"
        await session.regenerate()
    else:
        session["views"] = session.get("views", 0) + 1
    body = f"{session.get('views', 0)} {session.get('user', '-')}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


class TrioStore:
    """A store of the application's own whose calls wait on trio, as a trio driver's would."""

    def __init__(self, delay: float = 0.0) -> None:
        self.entries: dict[str, Any] = {}
        self.delay = delay

    async def get(self, key: str, max_age: Any = None, **kwargs: Any) -> Any:
        await trio.sleep(self.delay)
        return self.entries.get(key)

    async def set(self, key: str, data: Any, max_age: Any = None, **kwargs: Any) -> None:
        await trio.sleep(self.delay)
        self.entries[key] = data

    async def destroy(self, key: str, **kwargs: Any) -> None:
        await trio.sleep(self.delay)
        self.entries.pop(key, None)


def _requests(middleware: Any, *paths: str) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path) for path in paths]

    return trio.run(main)  # type: ignore[no-any-return]


def test_cookie_mode_counts_under_trio() -> None:
    responses = _requests(SessionMiddleware(app, keys=KEYS), "/", "/", "/")
    assert [r.text for r in responses] == ["1 -", "2 -", "3 -"]
    assert all(r.headers.get_list("set-cookie") for r in responses)


@pytest.mark.parametrize("make", [MemoryStore, TrioStore], ids=["memory", "own"])
def test_a_store_counts_and_regenerates_under_trio(make: Any) -> None:
    store = make()
    responses = _requests(SessionMiddleware(app, keys=KEYS, store=store), "/", "/", "/login", "/")
    assert [r.status_code for r in responses] == [200] * 4
    assert [r.text for r in responses] == ["1 -", "2 -", "2 ada", "3 ada"]
    first = responses[0].cookies["koa.sess"]
    after_login = responses[2].cookies["koa.sess"]
    assert after_login != first
    if isinstance(store, TrioStore):
        assert list(store.entries) == [after_login]  # the old id destroyed


def test_store_timeout_holds_under_trio() -> None:
    """A stalled store answers 503 after ``store_timeout`` (with ``store_error``), not never."""
    events: list[tuple[str, str]] = []

    def on_event(name: str, payload: dict[str, Any]) -> None:
        events.append((name, repr(payload.get("error"))))

    middleware = SessionMiddleware(
        app, keys=KEYS, store=TrioStore(delay=60), store_timeout=0.05, on_event=on_event
    )
    [response] = _requests(middleware, "/")
    assert response.status_code == 503
    assert not response.headers.get_list("set-cookie")
    assert [name for name, _ in events] == ["store_error"]
    assert "TimeoutError" in events[0][1]
