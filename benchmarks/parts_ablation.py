"""What each check of koasession's parts costs on the counter: the *parts* row
(``benchmarks/parts.py``) with one piece at a time done the floor's way instead.

Each variant drops a promise, so none is a way to run koasession; the differences say what the
promises cost, in process, next to the floor with orjson (which keeps none of them):

- ``floor's cookie lookup``: the two cookies picked out of the header, no jar (first cookie of a
  name wins, quoted values, every cookie kept for the general engine);
- ``no read-back``: orjson's value taken without writing it back and comparing (the read-back
  is what makes orjson read a payload exactly as the json module and koa would);
- ``no metadata checks``: only ``_expire`` compared with now (no type or range checks, no
  refusal of other reserved names), and no read-back;
- ``floor's headers``: ``Cache-Control``, ``Vary`` and the cookie lines appended, without
  looking at the application's own ``Set-Cookie``, ``Cache-Control`` or ``Vary``;
- ``floor's payload``: one encoder call on the data merged with its metadata, without the
  snapshot kept for change detection or the test for JavaScript's number and key layout.

Run ``.venv/bin/python benchmarks/parts_ablation.py`` (about 30 seconds); needs orjson.
"""

from __future__ import annotations

import asyncio
import binascii
import statistics
import sys
import time
from typing import Any

import orjson
from floor import Floor, orjson_codec
from harness import KEY, Config, Message, Scope, batch, call, make_app, make_scope, prime
from parts import Parts, _PartsSession

from koasession import codec, cookies
from koasession.plaincookie import _OTHER_META, MAX_TIME_MS


class _FloorLookup(_PartsSession):
    __slots__ = ()

    def _jar(self) -> dict[str, str]:
        assert self._scope is not None
        found = {}
        for name, value in self._scope["headers"]:
            if name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    key, _, text = part.strip().partition("=")
                    if key in ("koa.sess", "koa.sess.sig"):
                        found[key] = text
        return found

    def _load(self) -> dict[str, Any]:
        plain = self._cfg.plain_cookie
        assert plain is not None
        return self._adopt(plain.read(self._jar(), time.time() * 1000))

    def _adopt(self, data: dict[str, Any] | None) -> dict[str, Any]:
        if data is None:
            data = {}
        else:
            del data["_expire"]
            data.pop("_maxAge", None)
            self._created = data.pop("_created", None)
        self.data = data
        if codec.is_flat(data):
            self._prev = dict(data)
            self._clean = self._writes
        return data


class _NoReadBack(_FloorLookup):
    __slots__ = ()
    checks = True

    def _jar(self) -> dict[str, str]:
        assert self._scope is not None
        headers = self._scope["headers"]
        values = [value.decode("latin-1") for name, value in headers if name == b"cookie"]
        return cookies.parse_cookie_header(values)

    def _load(self) -> dict[str, Any]:
        jar = self._jar()
        value, signature = jar.get("koa.sess"), jar.get("koa.sess.sig")
        signer = self._cfg.signer
        assert signer is not None
        data = None
        if value and signature and signer.verify_first(f"koa.sess={value}", signature):
            data = orjson.loads(codec.strict_b64decode(value))
            if not self.checks:
                if data.get("_expire", 0) <= time.time() * 1000:
                    data = None
            elif not _metadata_ok(data):
                data = None
        return self._adopt(data)


def _metadata_ok(data: dict[str, Any]) -> bool:
    """PlainCookie.read's checks of the metadata."""
    expire = data.get("_expire")
    if type(expire) is not int or not time.time() * 1000 <= expire <= MAX_TIME_MS:
        return False
    for name in ("_maxAge", "_created"):
        stamp = data.get(name)
        if stamp is not None and (type(stamp) is not int or not 0 <= stamp <= MAX_TIME_MS):
            return False
    return _OTHER_META.isdisjoint(data)


class _NoChecks(_NoReadBack):
    __slots__ = ()
    checks = False


class _FloorHeaders(_PartsSession):
    __slots__ = ()

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
            headers = list(message.get("headers") or [])
            headers.append((b"cache-control", b"private"))
            headers.append((b"vary", b"Cookie"))
            for _, line in self._lines:
                headers.append((b"set-cookie", line.encode("latin-1")))
            message["headers"] = headers
        return self._send(message)


class _FloorPayload(_PartsSession):
    __slots__ = ()

    def _cookie_lines(self, data: dict[str, Any], scope: Scope) -> list[tuple[str, str]]:
        plain = self._cfg.plain_cookie
        assert plain is not None
        now_ms = int(time.time() * 1000)
        expire = now_ms + plain.max_age_ms
        created = now_ms if self._created is None else self._created
        meta = {"_expire": expire, "_maxAge": plain.max_age_ms, "_created": created}
        raw = orjson.dumps({**data, **meta})
        value = binascii.b2a_base64(raw, newline=False).decode("ascii")
        lines = plain.lines(value, expire, scope.get("scheme") == "https")
        assert lines is not None
        self._prev = None
        return lines


def _variant(session: type[_PartsSession]) -> Any:
    class Variant(Parts):
        async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
            one = scope["session"] = session(self.config, scope, send)
            try:
                await self.app(scope, receive, one.send_message)
            finally:
                one._send = one._scope = None

    return Variant(make_app("counter"), KEY)


async def main(rounds: int = 15, n: int = 5000) -> None:
    codec_ = orjson_codec()
    if codec_ is None:
        sys.exit("parts_ablation.py needs orjson (pip install orjson)")
    rows = {
        "bare app": make_app("untouched"),
        "floor with orjson": Floor(make_app("counter"), KEY, *codec_),
        "parts": Parts(make_app("counter"), KEY),
        "parts, floor's cookie lookup": _variant(_FloorLookup),
        "parts, no read-back": _variant(_NoReadBack),
        "parts, no metadata checks": _variant(_NoChecks),
        "parts, floor's headers": _variant(_FloorHeaders),
        "parts, floor's payload": _variant(_FloorPayload),
    }
    primed = Config("parts", "reference", lambda app: Parts(app, KEY))
    primed.build()
    await prime(primed)
    scope = make_scope(primed.cookie)
    for name, app in rows.items():
        if name != "bare app" and len(await call(app, scope)) != 2:
            sys.exit(f"{name}: the counter did not answer")
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):  # round-robin, so every row shares the machine's slow stretches
        for name, app in rows.items():
            times[name].append(await batch(app, scope, n))
    bare = statistics.median(times["bare app"])
    parts = statistics.median(times["parts"]) - bare
    print(f"counter overhead over the bare app, median of {rounds} rounds (us):")
    for name in list(rows)[1:]:
        overhead = statistics.median(times[name]) - bare
        print(f"  {name:32s} {overhead:6.2f}  ({overhead - parts:+.2f} against parts)")


if __name__ == "__main__":
    asyncio.run(main())
