"""Shared helpers for the security suite: apps, requests, cookie minting and parsing.

Cookies are minted here from the wire format in the spec (HMAC of ``name=value``, base64url
without padding; base64 of compact JSON), independently of the package's own signer and codec,
so the tests check the wire and not the implementation against itself. Requests go through
``httpx.ASGITransport`` with a fresh client each time and an explicit ``Cookie`` header, never a
client jar.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from koasession import MemoryStore, SessionMiddleware

K1 = "PqKBiSXykKRNDBziDO_NPG5miIoRzr0sqDq-voNnqN0"
K2 = "pW2JBgREX47qiW6VHrodYWS_Ih3A2e803H0GtgHfTmQ"
K3 = "M8qwVwAhsXcmqTQEpPnJRWG8v3RxHVyganjWFz4O7K4"
NAME = "koa.sess"
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
DAY_MS = 86400 * 1000

Handler = Callable[[dict[str, Any], Any], Awaitable[Any]]


# --------------------------------------------------------------------------- minting


def b64json(data: Any) -> str:
    """koa's cookie value: standard base64 of compact JSON."""
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(raw).decode("ascii")


def sign(name: str, value: str, key: str = K1, alg: str = "sha256") -> str:
    """keygrip: HMAC of ``name=value``, base64url without padding."""
    digest = hmac.new(key.encode(), f"{name}={value}".encode(), getattr(hashlib, alg)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def future_ms(seconds: float = 3600) -> int:
    import time

    return int((time.time() + seconds) * 1000)


def payload(data: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    out = dict(data or {})
    out.setdefault("_expire", future_ms())
    out.setdefault("_maxAge", DAY_MS)
    out.update(meta)
    return out


def signed_pair(
    value: str, *, key: str = K1, alg: str = "sha256", name: str = NAME
) -> dict[str, str]:
    return {name: value, f"{name}.sig": sign(name, value, key, alg)}


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


# --------------------------------------------------------------------------- Set-Cookie


@dataclass
class SetCookie:
    name: str
    value: str
    attrs: dict[str, str] = field(default_factory=dict)  # lower-case names; flags map to ""
    raw: str = ""

    @property
    def expired(self) -> bool:
        return self.attrs.get("expires") == EPOCH or self.attrs.get("max-age") == "0"


def parse_set_cookie(line: str) -> SetCookie:
    first, *rest = line.split(";")
    name, _, value = first.partition("=")
    attrs: dict[str, str] = {}
    for part in rest:
        k, _, v = part.strip().partition("=")
        attrs[k.lower()] = v
    return SetCookie(name.strip(), value.strip(), attrs, line)


def set_cookies(resp: httpx.Response) -> list[SetCookie]:
    return [parse_set_cookie(line) for line in resp.headers.get_list("set-cookie")]


def by_name(resp: httpx.Response) -> dict[str, SetCookie]:
    out: dict[str, SetCookie] = {}
    for c in set_cookies(resp):
        out[c.name] = c
    return out


def jar_from(resp: httpx.Response, jar: dict[str, str] | None = None) -> dict[str, str]:
    """Apply a response's Set-Cookie lines to a browser-like jar."""
    jar = dict(jar or {})
    for c in set_cookies(resp):
        if c.expired:
            jar.pop(c.name, None)
        else:
            jar[c.name] = c.value
    return jar


# --------------------------------------------------------------------------- apps


async def read_handler(scope: dict[str, Any], session: Any) -> Any:
    return {"data": dict(session), "is_new": session.is_new}


def plain_app(handler: Handler | None = None) -> Any:
    """A plain ASGI app: runs ``handler(scope, session)`` and answers its JSON."""
    handler = handler or read_handler

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        result = await handler(scope, scope["session"])
        body = json.dumps(result if result is not None else {}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


@dataclass
class Harness:
    app: SessionMiddleware
    events: list[tuple[str, dict[str, Any]]]

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def get(
        self,
        jar: dict[str, str] | str | None = None,
        *,
        headers: Sequence[tuple[str, str]] = (),
        https: bool = False,
        path: str = "/",
        raise_app_exceptions: bool = True,
    ) -> httpx.Response:
        return await request(
            self.app,
            jar,
            headers=headers,
            https=https,
            path=path,
            raise_app_exceptions=raise_app_exceptions,
        )


async def request(
    app: Any,
    jar: dict[str, str] | str | None = None,
    *,
    headers: Sequence[tuple[str, str]] = (),
    https: bool = False,
    path: str = "/",
    raise_app_exceptions: bool = True,
) -> httpx.Response:
    # bytes: any octet, as a client may send it
    hdrs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if jar:
        text = jar if isinstance(jar, str) else cookie_header(jar)
        hdrs.append((b"cookie", text.encode("latin-1")))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    base = "https://testserver" if https else "http://testserver"
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        return await client.get(path, headers=hdrs)


def make(handler: Handler | None = None, *, app: Any = None, **options: Any) -> Harness:
    events: list[tuple[str, dict[str, Any]]] = []
    options.setdefault("keys", [K1])
    options.setdefault("on_event", lambda name, p: events.append((name, p)))
    inner = app if app is not None else plain_app(handler)
    return Harness(SessionMiddleware(inner, **options), events)


class SpyStore:
    """A MemoryStore that records every call made on it."""

    def __init__(self, inner: MemoryStore | None = None) -> None:
        self.inner = inner or MemoryStore()
        self.calls: list[tuple[str, str]] = []

    async def get(self, key: str, max_age: Any, *, rolling: bool, ctx: Any) -> Any:
        self.calls.append(("get", key))
        return await self.inner.get(key, max_age, rolling=rolling, ctx=ctx)

    async def set(
        self, key: str, data: Any, max_age: Any, *, rolling: bool, changed: bool, ctx: Any
    ) -> Any:
        self.calls.append(("set", key))
        return await self.inner.set(key, data, max_age, rolling=rolling, changed=changed, ctx=ctx)

    async def destroy(self, key: str, *, ctx: Any) -> None:
        self.calls.append(("destroy", key))
        await self.inner.destroy(key, ctx=ctx)

    def ops(self, name: str) -> list[str]:
        return [key for op, key in self.calls if op == name]

    def __len__(self) -> int:
        return len(self.inner)

    async def data(self, key: str) -> Any:
        return await self.inner.get(key, None, rolling=False, ctx=None)
