"""Helpers for the port of koa-session's own test suite (koajs/session, test/).

koa's tests build a Koa app with ``app.keys = ['a', 'b']``, mount ``session(opts, app)`` and add
``async (ctx, next) => ...`` middleware. Here the same shape is a small koa-like middleware chain
(:func:`asgi`) turned into a plain ASGI app and wrapped in :class:`koasession.SessionMiddleware`
(:func:`make_app`). Requests go through ``httpx.ASGITransport``; cookies are sent explicitly in a
``Cookie`` header (never through a client jar) so each test controls the exact values.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from koasession import SessionMiddleware

#: koa's tests use ``app.keys = ['a', 'b']``; ours refuses keys under 32 bytes, so the same two
#: keys, made long enough.
KEYS = [
    "kFSpSI4kx0wzAS81HwUnrELn96Wgmu28LkH2xdpjB3Q",
    "zuxBaCBOF2IMses6ypEn3hCzYRrpWtdsdDSHylr8BXQ",
]
COOKIE_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
#: Attribute order the spec fixes ("Wire format"); koa never writes Max-Age.
ATTR_ORDER = [
    "path",
    "expires",
    "domain",
    "priority",
    "samesite",
    "secure",
    "httponly",
    "partitioned",
]


# --------------------------------------------------------------------------- koa-like app


class HTTPError(Exception):
    """koa's ``ctx.throw(status)``."""

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message or _REASONS.get(status, "Error"))
        self.status = status


_REASONS = {401: "Unauthorized", 404: "Not Found", 500: "Internal Server Error"}


class Ctx:
    """A tiny koa ``ctx`` over an ASGI scope: session, request headers/cookies, response."""

    def __init__(self, scope: dict[str, Any], receive: Any) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.status: int | None = None
        self.body: Any = None
        self.response_headers: list[tuple[str, str]] = []

    # koa: ctx.session / ctx.session = value
    @property
    def session(self) -> Any:
        return self.scope["session"]

    @session.setter
    def session(self, value: Any) -> None:
        self.scope["session"] = value

    def get(self, name: str) -> str | None:
        """koa ``ctx.get(header)``."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.scope.get("headers", []):
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    def cookie(self, name: str) -> str | None:
        """koa ``ctx.cookies.get(name)`` (unsigned)."""
        return request_cookie(self.scope, name)

    def set(self, name: str, value: str) -> None:
        """koa ``ctx.set(header, value)``."""
        self.response_headers.append((name, value))

    def throw(self, status: int) -> None:
        raise HTTPError(status)

    async def send(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        body = self.body
        content_type = "text/plain; charset=utf-8"
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode()
        elif isinstance(body, Mapping):
            payload = json.dumps(dict(body)).encode()
            content_type = "application/json"
        else:
            payload = json.dumps(body).encode()
            content_type = "application/json"
        status = self.status
        if status is None:
            status = 404 if body is None else 200
        headers = [(b"content-type", content_type.encode())]
        headers.append((b"content-length", str(len(payload)).encode()))
        headers += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.response_headers
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


Middleware = Callable[..., Awaitable[Any]]


def _takes_next(fn: Middleware) -> bool:
    return len(inspect.signature(fn).parameters) >= 2


def asgi(*middleware: Middleware) -> Callable[..., Awaitable[None]]:
    """A plain ASGI app running koa-style middleware ``async def mw(ctx, next)`` (or a
    terminal ``async def handler(ctx)``) in order, then sending ``ctx``'s response."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        ctx = Ctx(scope, receive)

        async def dispatch(index: int) -> None:
            if index >= len(middleware):
                return
            fn = middleware[index]
            if _takes_next(fn):
                await fn(ctx, lambda: dispatch(index + 1))
            else:
                await fn(ctx)

        await dispatch(0)
        await ctx.send(send)

    return app


def make_app(*middleware: Middleware, keys: Any = KEYS, **options: Any) -> SessionMiddleware:
    """koa's ``App(options)``: keys set, session middleware first, then ``middleware``."""
    if keys is not None:
        options["keys"] = keys
    return SessionMiddleware(asgi(*middleware), **options)


# --------------------------------------------------------------------------- requests


async def request(
    app: Any,
    method: str = "GET",
    path: str = "/",
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    https: bool = False,
    raise_app_exceptions: bool = True,
) -> httpx.Response:
    """One request through a fresh client (no cookie jar carried over)."""
    all_headers = dict(headers or {})
    if cookie is not None:
        all_headers["cookie"] = cookie
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    base = "https://testserver" if https else "http://testserver"
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        return await client.request(method, path, headers=all_headers)


async def request_error(
    app: Any, *args: Any, **kwargs: Any
) -> tuple[httpx.Response | None, BaseException | None]:
    """A request expected to fail (koa: ``.expect(500)``).

    Returns ``(response, None)`` when the app answered (whatever the status), or
    ``(None, exc)`` when the exception escaped the app (an ASGI server answers 500).
    """
    try:
        return await request(app, *args, **kwargs), None
    except Exception as exc:
        return None, exc


def set_cookies(resp: httpx.Response) -> list[str]:
    """The raw Set-Cookie lines of a response."""
    return resp.headers.get_list("set-cookie")


def parse_set_cookie(line: str) -> tuple[str, str, dict[str, str | bool]]:
    """``(name, value, {attr_lower: value or True})`` of one Set-Cookie line."""
    parts = line.split(";")
    name, _, value = parts[0].strip().partition("=")
    attrs: dict[str, str | bool] = {}
    for part in parts[1:]:
        k, eq, v = part.strip().partition("=")
        attrs[k.lower()] = v if eq else True
    return name, value, attrs


def attr_names(line: str) -> list[str]:
    """Attribute names of a Set-Cookie line, in order, lower-cased."""
    return [p.strip().partition("=")[0].lower() for p in line.split(";")[1:] if p.strip()]


def assert_attr_order(line: str) -> None:
    """Attributes appear in koa's order (spec "Wire format"); unknown ones are ignored."""
    names = [n for n in attr_names(line) if n in ATTR_ORDER]
    assert names == sorted(names, key=ATTR_ORDER.index), line


def cookie_map(resp: httpx.Response) -> dict[str, str]:
    """name -> value of the cookies a browser would keep from this response (expired ones are
    dropped, later lines win)."""
    out: dict[str, str] = {}
    for line in set_cookies(resp):
        name, value, attrs = parse_set_cookie(line)
        if attrs.get("expires") == COOKIE_EPOCH:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def cookie_header(resp: httpx.Response, extra: str | None = None) -> str:
    """The ``Cookie`` header a browser would send back (koa tests: ``set-cookie.join(';')``)."""
    parts = [f"{k}={v}" for k, v in cookie_map(resp).items()]
    if extra:
        parts.append(extra)
    return "; ".join(parts)


def request_cookie(scope: Mapping[str, Any], name: str) -> str | None:
    """Value of a request cookie (plain, unsigned), like ``ctx.cookies.get(name)``."""
    for key, value in scope.get("headers", []):
        if key.lower() != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            k, eq, v = part.strip().partition("=")
            if eq and k == name:
                return v
    return None


def ctx_cookie(ctx: Any, name: str) -> str | None:
    """A request cookie from a :class:`koasession.SessionContext` (hooks: valid, before_save)."""
    return request_cookie(ctx.scope, name)


# --------------------------------------------------------------------------- wire format


def sign(name: str, value: str, key: str = KEYS[0], algorithm: str = "sha256") -> str:
    """keygrip signature of ``name=value``: HMAC, base64url without padding."""
    mac = hmac.new(key.encode(), f"{name}={value}".encode(), getattr(hashlib, algorithm))
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def encode_payload(data: Mapping[str, Any]) -> str:
    """koa's cookie value: standard base64 of compact JSON."""
    raw = json.dumps(dict(data), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(raw).decode()


def decode_payload(value: str) -> Any:
    return json.loads(base64.b64decode(value + "=" * (-len(value) % 4)))


def signed_cookie(value: str, name: str = "koa.sess", key: str = KEYS[0]) -> str:
    """A ``Cookie`` header carrying ``name=value`` and its ``.sig``."""
    return f"{name}={value}; {name}.sig={sign(name, value, key)}"


# --------------------------------------------------------------------------- events, stores


class Events:
    """``on_event`` recorder: koa's ``app.on('session:<name>', ...)``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, payload: dict[str, Any]) -> None:
        self.seen.append((name, payload))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [payload for n, payload in self.seen if n == name]


class DictStore:
    """koa's test/store.ts: a plain in-memory object; ``destroy`` sets the key to undefined.

    Also records every call so tests can assert store traffic and TTLs.
    """

    def __init__(self) -> None:
        self.sessions: dict[str, Any] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def get(self, key: str, max_age: Any, *, rolling: bool = False, ctx: Any = None) -> Any:
        self.calls.append(("get", key, {"max_age": max_age, "rolling": rolling, "ctx": ctx}))
        return copy.deepcopy(self.sessions.get(key))

    async def set(
        self,
        key: str,
        data: Any,
        max_age: Any,
        *,
        rolling: bool = False,
        changed: bool = False,
        ctx: Any = None,
    ) -> None:
        self.calls.append(
            ("set", key, {"max_age": max_age, "rolling": rolling, "changed": changed, "ctx": ctx})
        )
        self.sessions[key] = copy.deepcopy(dict(data))

    async def destroy(self, key: str, *, ctx: Any = None) -> None:
        self.calls.append(("destroy", key, {"ctx": ctx}))
        self.sessions[key] = None

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def ctx_state(scope: Mapping[str, Any]) -> dict[str, Any]:
    """koa ``ctx.state`` as seen from the app: the ASGI ``state`` dict of the scope."""
    return scope.setdefault("state", {})  # type: ignore[attr-defined, no-any-return]


SESSION_LINE = re.compile(r"koa\.sess=")
