"""A tiny harness for core tests: build a middleware around a handler and call it."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from koasession import SessionMiddleware

KEY = "xZqTBffAl431XeYZcNG6xjzkB2O-ln8mGRKOPBZEH9I"
OLD_KEY = "Jft5LuFcN5Fh6pSwk9QHmhfoW8dNDyMBQ12iqtAC75s"
Handler = Callable[[dict[str, Any]], Awaitable[Any] | Any]


def http_scope(headers: list[tuple[bytes, bytes]], *, https: bool = False) -> dict[str, Any]:
    """An HTTP ``GET /`` scope with ``headers``, as a server makes it (for tests that drive the
    ASGI app directly, without an HTTP client merging or reordering headers)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https" if https else "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443 if https else 80),
    }


def wrap(handler: Handler, **options: Any) -> SessionMiddleware:
    """A plain ASGI app whose body is the JSON of what ``handler(scope)`` returns."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        result = handler(scope)
        if hasattr(result, "__await__"):
            result = await result
        body = json.dumps(result).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    options.setdefault("keys", [KEY])
    return SessionMiddleware(app, **options)


def client(app: Any, *, https: bool = False) -> httpx.AsyncClient:
    base = "https://testserver" if https else "http://testserver"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def cookie_pairs(response: httpx.Response) -> dict[str, str]:
    """``{name: value}`` of the response's Set-Cookie lines."""
    pairs = {}
    for line in set_cookies(response):
        name, _, rest = line.partition("=")
        pairs[name] = rest.split(";", 1)[0]
    return pairs


def cookie_header(response: httpx.Response) -> str:
    """A Cookie header that sends back what the response set."""
    return "; ".join(f"{k}={v}" for k, v in cookie_pairs(response).items() if v)


def sign(name: str, value: str, key: str = KEY, alg: str = "sha256") -> str:
    digest = hmac.new(key.encode(), f"{name}={value}".encode(), alg).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_cookie(
    data: dict[str, Any], name: str = "koa.sess", key: str = KEY, alg: str = "sha256"
) -> str:
    value = base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
    return f"{name}={value}; {name}.sig={sign(name, value, key, alg)}"


def decode_value(value: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(base64.b64decode(value))
    return result
