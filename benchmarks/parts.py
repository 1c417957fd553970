"""A reference middleware that splits koasession's counter cost in two: its parts, and its engine.

``Parts`` calls the pieces koasession's plain path is built from, for the default cookie, in a
row, with no engine around them: the cookie jar (``cookies.parse_cookie_header``), the fast lane
(``PlainCookie.read``: signature, strict base64, JSON with orjson's checks, the metadata's
ranges; ``PlainCookie.lines``: attributes, size check, signature), the key check of an
assignment (``session.check_key``), change detection by a copy of flat data, the codec's
snapshot and the cookie value with its metadata (``codec.snapshot_flat``,
``plainrequest.cookie_value``, which runs ``codec.join_payload``'s JavaScript-layout test), the
request's scheme (``enginestate.request_is_secure``) and the header merge
(``responding.merge_session_headers``). What it leaves out is the engine: the deferred
``Session`` and ``PlainRequest``, the hand-over to the general engine (a cookie the fast lane
refuses, a ``_maxAge`` of its own, ``fallback`` readers), ``rolling``/``renew``, the check for a
change made after the response started, and the release at the end of the request.

So this row minus the floor with orjson (koasession uses orjson when it is installed) is what
koasession's checks and wire rules cost, and koasession's row minus this one is what its
engine costs. It only handles what the benchmark's scenarios do (a valid cookie, a read, a flat
change) and is not a session library. Its steps are methods (``_jar``, ``_read``, ``_value``,
``_headers``) so that ``parts_ablation.py`` can swap one at a time through
``Parts.session_class``; each is one more call than written in line, a few hundredths of a
microsecond.
"""

from __future__ import annotations

import time
from typing import Any

from harness import ASGIApp, Message, Scope

from koasession import SessionMiddleware, codec, cookies
from koasession.config import SessionConfig
from koasession.enginestate import request_is_secure
from koasession.plaincookie import PlainCookie, Read
from koasession.plainrequest import cookie_value
from koasession.responding import merge_session_headers
from koasession.session import check_key


class _PartsSession:
    """Loads on first use with the fast lane; adds the session's headers to the response start."""

    __slots__ = (
        "_cfg",
        "_clean",
        "_created",
        "_lines",
        "_prev",
        "_scope",
        "_send",
        "_writes",
        "data",
    )

    def __init__(self, cfg: SessionConfig, scope: Scope, send: Any) -> None:
        self._cfg = cfg
        self._scope: Scope | None = scope
        self._send = send
        self.data: dict[str, Any] | None = None
        self._prev: dict[str, Any] | None = None
        self._created: int | None = None
        self._writes = 0
        self._clean = -1
        self._lines: list[tuple[str, str]] | tuple[()] = ()

    def _load(self) -> dict[str, Any]:
        assert self._scope is not None
        plain = self._cfg.plain_cookie
        assert plain is not None
        found = self._read(plain, self._jar(self._scope))
        if found is None:
            data: dict[str, Any] = {}
        else:
            data, _, self._created = found
        self.data = data
        if codec.is_flat(data):
            self._prev = dict(data)
            self._clean = self._writes
        return data

    def _jar(self, scope: Scope) -> dict[str, str]:
        values = []
        for name, value in scope["headers"]:
            if name == b"cookie":
                values.append(value.decode("latin-1"))
        return cookies.parse_cookie_header(values) if values else {}

    def _read(self, plain: PlainCookie, jar: dict[str, str]) -> Read | None:
        return plain.read(jar, time.time() * 1000)

    def get(self, key: str, default: Any = None) -> Any:
        data = self.data
        return (self._load() if data is None else data).get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        data = self.data
        if data is None:
            data = self._load()
        data[check_key(key)] = value
        self._writes += 1

    def send_message(self, message: Message) -> Any:
        scope = self._scope
        if (
            message["type"] == "http.response.start"
            and self.data is not None
            and scope is not None
            and message.get("status", 200) < 500
            and scope.get("session") is self
        ):
            data = self.data
            if self._writes != self._clean and codec.is_flat(data) and data != self._prev:
                self._lines = self._cookie_lines(data, scope)
            message["headers"] = self._headers(message.get("headers") or [])
        return self._send(message)

    def _headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return merge_session_headers(headers, self._lines, (), read=True, overwrite=True)

    def _cookie_lines(self, data: dict[str, Any], scope: Scope) -> list[tuple[str, str]]:
        plain = self._cfg.plain_cookie
        assert plain is not None
        value, expire = self._value(data)
        secure = request_is_secure(scope.get("scheme"), scope["headers"], self._cfg.options.proxy)
        lines = plain.lines(value, expire, secure)
        assert lines is not None
        self._prev = None
        self._clean = self._writes  # flat data holds no container (as in PlainRequest._save)
        return lines

    def _value(self, data: dict[str, Any]) -> tuple[str, int]:
        """The cookie value for flat ``data`` and its expiry, as the plain engine makes them."""
        value, expire, self._created = cookie_value(
            self._cfg, data, codec.snapshot_flat(data), self._created, True
        )
        return value, expire


class Parts:
    """koasession's plain-path parts for the default cookie, without its engine (module doc)."""

    #: The per-request session; ``parts_ablation.py`` swaps in variants.
    session_class: type[_PartsSession] = _PartsSession

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        # The configuration koasession builds for these options, fast lane included.
        self.config = SessionMiddleware(app, keys=[key]).config
        if self.config.plain_cookie is None:
            raise RuntimeError("the default options no longer give the cookie fast lane")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = scope["session"] = self.session_class(self.config, scope, send)
        try:
            await self.app(scope, receive, session.send_message)
        finally:
            session._send = session._scope = None
