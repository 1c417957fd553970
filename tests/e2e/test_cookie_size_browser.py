"""Chunked and compressed session cookies in a real browser (headless system Chromium).

The browser enforces the cookie limits: a Set-Cookie line it refuses is silently dropped, so the
session only survives if every chunk (and the one signature) was stored and sent back.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from koasession import SessionMiddleware

from .conftest import DemoServer

pytestmark = pytest.mark.timeout(120)

KEYS = ["Wm5Qa8Zr2Tk7Xc1Vn4Bj9Hd3Lf6Ps0Ge8Yu2Io5Kq7"]


def size_app(**options: Any) -> SessionMiddleware:
    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        query = scope["query_string"].decode()
        if scope["path"] == "/fill":
            # Random text does not compress: it takes several 4 KiB chunks.
            session["blob"] = secrets.token_hex(int(query)) if query else "ab" * 5000
        elif scope["path"] == "/count":
            session["count"] = session.get("count", 0) + 1
        body = json.dumps({"length": len(session.get("blob", "")), "count": session.get("count")})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})

    return SessionMiddleware(inner, keys=KEYS, **options)


@pytest.fixture
def page_for(browser: Any) -> Iterator[Callable[[str], Any]]:
    contexts: list[Any] = []

    def new(base_url: str) -> Any:
        context = browser.new_context(base_url=base_url)
        context.set_default_timeout(15000)
        contexts.append(context)
        return context.new_page()

    yield new
    for context in contexts:
        context.close()


def read(page: Any, path: str) -> Any:
    page.goto(path)
    return json.loads(page.inner_text("body"))


def test_a_chunked_session_survives_in_a_browser(
    serve: Callable[[Any], DemoServer], page_for: Callable[[str], Any]
) -> None:
    page = page_for(serve(size_app(chunk=True)).url)
    assert read(page, "/fill?4000") == {"length": 8000, "count": None}
    names = {cookie["name"] for cookie in page.context.cookies()}
    assert {"koa.sess.1", "koa.sess.2", "koa.sess.3", "koa.sess.sig"} <= names
    assert read(page, "/count") == {"length": 8000, "count": 1}
    assert read(page, "/count") == {"length": 8000, "count": 2}


def test_a_compressed_session_survives_in_a_browser(
    serve: Callable[[Any], DemoServer], page_for: Callable[[str], Any]
) -> None:
    page = page_for(serve(size_app(compress=True)).url)
    assert read(page, "/fill") == {"length": 10000, "count": None}  # over 4 KiB uncompressed
    value = {c["name"]: c["value"] for c in page.context.cookies()}["koa.sess"]
    assert value.startswith("~") and len(value) < 1000
    assert read(page, "/count") == {"length": 10000, "count": 1}
    assert read(page, "/count") == {"length": 10000, "count": 2}
