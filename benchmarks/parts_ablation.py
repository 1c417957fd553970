"""What each check of koasession's parts costs on the counter: the *parts* row
(``benchmarks/parts.py``) with one piece at a time done the floor's way instead.

Each variant drops a promise, so none is a way to run koasession; the differences say what the
promises cost, in process, next to the floor with orjson (which keeps none of them). Each one
replaces a single step (method) of the parts' session:

- ``floor's cookie lookup``: the two cookies picked out of the header, no jar (first cookie of a
  name wins, quoted values, every cookie kept for the general engine);
- ``orjson taken as read``: orjson's object taken as read, without the tests that make it read
  a payload exactly as the json module and koa would (the value types of a flat object, else a
  read-back and the depth limit); the test for an object stays;
- ``no metadata checks``: only ``_expire`` compared with now (no type or range checks, no
  refusal of other reserved names); orjson's agreement test stays;
- ``floor's headers``: ``Cache-Control``, ``Vary`` and the cookie lines appended, without
  looking at the application's own ``Set-Cookie``, ``Cache-Control`` or ``Vary``;
- ``floor's payload``: one encoder call on the data merged with its metadata, without the
  snapshot kept for change detection or the test for JavaScript's number and key layout.

Run ``.venv/bin/python benchmarks/parts_ablation.py`` (about 30 seconds); needs orjson. With
``--instructions`` it counts each row's machine instructions under valgrind instead of timing
it (``instructions.py``; a few minutes): the same figures on any machine, however busy. It is
not part of ``make bench``: docs/performance.md quotes its figures.
"""

from __future__ import annotations

import asyncio
import binascii
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import instructions
import orjson
from floor import Floor, orjson_codec
from harness import (
    KEY,
    Config,
    Scope,
    batch,
    call,
    make_app,
    make_scope,
    prime,
    set_cookie_count,
    views_seen,
)
from parts import Parts, _PartsSession

from koasession import codec
from koasession.plaincookie import _ABSENT, MAX_TIME_MS, PlainCookie, Read


def _read(
    plain: PlainCookie,
    jar: dict[str, str],
    now_ms: float,
    loads: Callable[[bytes], dict[str, Any] | None],
    checks: bool,
) -> Read | None:
    """``PlainCookie.read`` for a signed cookie, with the JSON reader ``loads`` and, unless
    ``checks``, only ``_expire`` checked. (A copy: keep it in step with PlainCookie.read.)"""
    value = jar.get("koa.sess")
    if not value:
        return None
    signature = jar.get("koa.sess.sig")
    if signature is None or len(value) % 4:
        return None
    signer = plain._signer
    assert signer is not None
    if not signer.verify_first(f"koa.sess={value}", signature):
        return None
    try:
        raw = codec.strict_b64decode(value)
    except ValueError:
        return None
    data = loads(raw)
    if data is None:
        return None
    if not checks:
        expire = data.pop("_expire", None)
        data.pop("_maxAge", None)
        created = data.pop("_created", None)
        return (data, expire, created) if expire is not None and expire > now_ms else None
    try:
        expire = data.pop("_expire")
        max_age = data.pop("_maxAge")
    except KeyError:
        return None
    created = data.pop("_created", _ABSENT)
    if (
        type(expire) is not int
        or type(max_age) is not int
        or not now_ms <= expire <= MAX_TIME_MS
        or max_age != plain._read_max_age
        or "_session" in data
        or "_accessed" in data
        or "_device" in data
    ):
        return None
    if created is _ABSENT:
        return data, expire, None
    if type(created) is not int or not 0 <= created <= MAX_TIME_MS:
        return None
    return data, expire, created


def _loads_taken_as_read(raw: bytes) -> dict[str, Any] | None:
    """``codec.loads_object_utf8`` without its tests that orjson reads as the json module:
    orjson's object taken as read (no test of its value types, no read-back, no depth test)."""
    try:
        data = orjson.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class _FloorLookup(_PartsSession):
    __slots__ = ()

    def _jar(self, scope: Scope) -> dict[str, str]:
        found = {}
        for name, value in scope["headers"]:
            if name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    key, _, text = part.strip().partition("=")
                    if key in ("koa.sess", "koa.sess.sig"):
                        found[key] = text
        return found


class _TakenAsRead(_PartsSession):
    __slots__ = ()

    def _read(self, plain: PlainCookie, jar: dict[str, str]) -> Read | None:
        return _read(plain, jar, time.time() * 1000, _loads_taken_as_read, True)


class _NoMetadataChecks(_PartsSession):
    __slots__ = ()

    def _read(self, plain: PlainCookie, jar: dict[str, str]) -> Read | None:
        return _read(plain, jar, time.time() * 1000, codec.loads_object_utf8, False)


class _FloorHeaders(_PartsSession):
    __slots__ = ()

    def _headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        headers = list(headers)
        headers.append((b"cache-control", b"private"))
        headers.append((b"vary", b"Cookie"))
        for _, line in self._lines:
            headers.append((b"set-cookie", line.encode("latin-1")))
        return headers


class _FloorPayload(_PartsSession):
    __slots__ = ()

    def _value(self, data: dict[str, Any]) -> tuple[str, int]:
        plain = self._cfg.plain_cookie
        assert plain is not None
        now_ms = int(time.time() * 1000)
        expire = now_ms + plain.max_age_ms
        created = now_ms if self._created is None else self._created
        meta = {"_expire": expire, "_maxAge": plain.max_age_ms, "_created": created}
        raw = orjson.dumps({**data, **meta})
        return binascii.b2a_base64(raw, newline=False).decode("ascii"), expire


def _variant(session: type[_PartsSession]) -> Callable[[Any], Parts]:
    class Variant(Parts):
        session_class = session

    return lambda app: Variant(app, KEY)


async def build_rows() -> tuple[dict[str, Any], Scope]:
    """The rows (name -> app) and the request scope, every variant checked to read and write."""
    codec_ = orjson_codec()
    if codec_ is None:
        sys.exit("parts_ablation.py needs orjson (pip install orjson)")
    rows = {
        "bare app": make_app("untouched"),
        "floor with orjson": Floor(make_app("counter"), KEY, *codec_),
        "parts": Parts(make_app("counter"), KEY),
    }
    variants = {
        "parts, floor's cookie lookup": _FloorLookup,
        "parts, orjson taken as read": _TakenAsRead,
        "parts, no metadata checks": _NoMetadataChecks,
        "parts, floor's headers": _FloorHeaders,
        "parts, floor's payload": _FloorPayload,
    }
    primed = Config("parts", "reference", lambda app: Parts(app, KEY))
    primed.build()
    await prime(primed)
    scope = make_scope(primed.cookie)
    for name, session in variants.items():
        # A variant that failed to read the cookie would start a session per request and look
        # cheaper than it is: it must read the primed session and answer with two cookies.
        check = Config(name, "reference", _variant(session), cookie=primed.cookie)
        views = await views_seen(check)
        app = rows[name] = _variant(session)(make_app("counter"))
        cookies_set = set_cookie_count(await call(app, scope))
        if not isinstance(views, int) or views < 2 or cookies_set != 2:
            sys.exit(f"{name}: read views={views!r} and set {cookies_set} cookies")
    return rows, scope


async def main(rounds: int = 15, n: int = 5000) -> None:
    rows, scope = await build_rows()
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


async def serve(name: str, requests: int) -> None:
    """Serve ``requests`` counter requests through row ``name`` (what valgrind counts)."""
    rows, scope = await build_rows()
    await instructions.serve_counted(rows[name], scope, requests)


def count_instructions() -> None:
    """Each row's instructions per request (valgrind, see instructions.py), over the bare app."""
    reason = instructions.available()
    if reason is not None:
        sys.exit(f"--instructions: {reason}")
    names = list(asyncio.run(build_rows())[0])
    with ThreadPoolExecutor(max_workers=instructions.workers()) as pool:
        found = dict(
            zip(
                names,
                pool.map(lambda n: instructions.per_request([__file__, "--serve", n]), names),
                strict=True,
            )
        )
    bare, parts = found["bare app"], found["parts"] - found["bare app"]
    print("counter overhead over the bare app, instructions per request (valgrind):")
    # Every row serves the parts' cookie, whose payload carries _created: the floor row here
    # reads and re-signs it too (a SHA-256 block more each way than with its own cookie).
    print("  (every row serves the parts' cookie, _created included)")
    for name in names[1:]:
        overhead = found[name] - bare
        print(f"  {name:32s} {overhead:9,.0f}  ({overhead - parts:+,.0f} against parts)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(serve(sys.argv[2], int(sys.argv[3])))
    elif sys.argv[1:2] == ["--instructions"]:
        count_instructions()
    else:
        asyncio.run(main())
