"""Reference middlewares for the in-process harness: the limits koasession is measured against.

``PassThrough`` does nothing but wrap ``send``: the cost any middleware pays to see the response
start, so it is the floor for the *untouched* scenario.

``Floor`` is the same wire work as koasession's counter in cookie mode, written as tightly as
plain Python allows, with none of koasession's options, events or error handling: parse the
``koa.sess`` and ``koa.sess.sig`` cookies, verify the HMAC-SHA256 (keygrip's base64url digest of
``name=value``), base64 and JSON decode, check ``_expire``, then on a change JSON encode, base64,
sign and send two Set-Cookie lines plus ``Cache-Control: private`` and ``Vary: Cookie``. It is a
measuring stick, not a session library: one key, one algorithm, one cookie layout. Nothing here is
imported by koasession.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from harness import ASGIApp, Message, Scope

Send = Callable[[Message], Any]


class PassThrough:
    """A do-nothing middleware that still has to watch ``http.response.start``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                pass  # where a session middleware would add its headers
            await send(message)

        await self.app(scope, receive, watched)


class _Hmac:
    """HMAC-SHA256 with the inner and outer states (RFC 2104 ipad/opad) keyed once.

    ``hmac.new`` per message rebuilds both padded keys; copying two prepared ``hashlib``
    states gives the same digest with only public API and about half the work.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def sign(self, message: bytes) -> str:
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        # keygrip's digest: base64url without padding (43 characters for SHA-256). Translated
        # as bytes: str.translate takes a slow path here (about 1.4 us a call on Python 3.11,
        # 3 us on 3.13, against 0.05 us), which made this row about 3 us slower than its work.
        b64 = binascii.b2a_base64(outer.digest(), newline=False)
        return b64.translate(_URLSAFE, b"=").decode()


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_MAX_AGE_MS = 86_400_000
_ATTRS = "; path=/; expires={}; max-age=86400; samesite=lax; httponly"
Loads = Callable[[str], Any]
Dumps = Callable[[Any], str]


class _Expires:
    """The cookie attributes with an HTTP date, formatted once per second rather than per
    request (the date only has one-second resolution)."""

    second = -1
    text = ""

    @classmethod
    def attrs(cls, expire_ms: int) -> str:
        second = expire_ms // 1000
        if second != cls.second:
            cls.second = second
            date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(second))
            cls.text = _ATTRS.format(date)
        return cls.text


class FloorSession:
    """Loads on first use, marks itself changed on assignment; just what the counter calls."""

    __slots__ = ("_cookie", "_loads", "_signer", "changed", "data")

    def __init__(self, cookie: bytes | None, signer: _Hmac, loads: Loads) -> None:
        self._cookie = cookie
        self._signer = signer
        self._loads = loads
        self.data: dict[str, Any] | None = None
        self.changed = False

    def _load(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        header = self._cookie
        if header:
            value = sig = None
            for part in header.decode("latin-1").split(";"):
                name, _, val = part.strip().partition("=")
                if name == "koa.sess":
                    value = val
                elif name == "koa.sess.sig":
                    sig = val
            if (
                value
                and sig
                and hmac.compare_digest(self._signer.sign(b"koa.sess=" + value.encode()), sig)
            ):
                try:
                    loaded = self._loads(binascii.a2b_base64(value).decode())
                except ValueError:
                    loaded = None
                if isinstance(loaded, dict) and loaded.get("_expire", 0) > time.time() * 1000:
                    loaded.pop("_expire", None)
                    loaded.pop("_maxAge", None)
                    data = loaded
        self.data = data
        return data

    def get(self, key: str, default: Any = None) -> Any:
        data = self.data if self.data is not None else self._load()
        return data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        data = self.data if self.data is not None else self._load()
        return data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        data = self.data if self.data is not None else self._load()
        data[key] = value
        self.changed = True


_STD_LOADS: Loads = json.JSONDecoder().decode
# koa's JSON.stringify: no spaces, non-ASCII kept as is.
_STD_DUMPS: Dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Floor:
    """The counter's wire work and nothing else (see the module docstring).

    ``loads``/``dumps`` default to the standard library's C codec, built once.
    """

    def __init__(
        self, app: ASGIApp, key: str, loads: Loads = _STD_LOADS, dumps: Dumps = _STD_DUMPS
    ) -> None:
        self.app = app
        self.signer = _Hmac(key.encode())
        self.loads = loads
        self.dumps = dumps

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value
                break
        signer = self.signer
        session = FloorSession(cookie, signer, self.loads)
        scope["session"] = session
        dumps = self.dumps

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and session.data is not None:
                headers = list(message.get("headers", ()))
                headers.append((b"cache-control", b"private"))
                headers.append((b"vary", b"Cookie"))
                if session.changed:
                    expire = int(time.time() * 1000) + _MAX_AGE_MS
                    payload = {**session.data, "_expire": expire, "_maxAge": _MAX_AGE_MS}
                    raw = dumps(payload).encode()
                    value = binascii.b2a_base64(raw, newline=False).decode()
                    attrs = _Expires.attrs(expire)
                    sig = signer.sign(b"koa.sess=" + value.encode())
                    headers.append((b"set-cookie", f"koa.sess={value}{attrs}".encode()))
                    headers.append((b"set-cookie", f"koa.sess.sig={sig}{attrs}".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, watched)


def orjson_codec() -> tuple[Loads, Dumps] | None:
    """orjson's loads/dumps, or ``None`` when it is not installed.

    For the counter's payload (ints and ASCII strings) orjson writes the same compact bytes as
    ``JSON.stringify``; it is measured here only, never wired into koasession.
    """
    try:
        import orjson
    except ImportError:
        return None

    def dumps(value: Any) -> str:
        return orjson.dumps(value).decode()

    return orjson.loads, dumps
