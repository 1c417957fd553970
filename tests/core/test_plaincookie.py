"""The default configuration's fast cookie reader leaves exactly the session the general path does.

Every cookie of the corpus goes through two middlewares that differ only in whether the fast lane
is on: the responses (status, Set-Cookie lines, the session the handler saw) and the events must
be identical, and the fast lane must have taken the plainly valid cookies itself.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest

from koasession import SessionMiddleware
from koasession.codec import META_KEYS
from koasession.crypto import CookieCipher
from koasession.plaincookie import PlainCookie, Read

from ._app import KEY, OLD_KEY, client, set_cookies, sign

NOW_MS = int(time.time() * 1000)
DAY_MS = 86_400_000
FUTURE = NOW_MS + DAY_MS


def _value(payload: Any) -> str:
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _signed(value: str, key: str = KEY) -> str:
    return f"koa.sess={value}; koa.sess.sig={sign('koa.sess', value, key)}"


def _plain(**extra: Any) -> dict[str, Any]:
    return {"views": 3, "_expire": FUTURE, "_maxAge": DAY_MS, **extra}


def _unpadded() -> str:
    for filler in ("a", "ab", "abc"):
        value = _value(_plain(v=filler))
        if value.endswith("="):
            return value.rstrip("=")
    raise AssertionError("unreachable: one of three lengths needs padding")


#: (id, Cookie header, whether the fast lane should accept it)
CORPUS: list[tuple[str, str, bool]] = [
    ("valid", _signed(_value(_plain())), True),
    ("valid-created", _signed(_value(_plain(_created=NOW_MS - 5000))), True),
    ("valid-nested", _signed(_value(_plain(cart=[{"id": 1}], note="[x]"))), True),
    # A lifetime of its own changes the request's options: the general path's.
    ("other-max-age", _signed(_value(_plain(_maxAge=3_600_000))), False),
    ("max-age-zero", _signed(_value(_plain(_maxAge=0))), False),
    ("no-max-age", _signed(_value({"views": 3, "_expire": FUTURE})), False),
    ("valid-unicode", _signed(_value(_plain(name="Zoë 🎉"))), True),
    ("valid-big-int", _signed(_value(_plain(n=2**70, m=-(2**64)))), True),
    ("valid-float", _signed(_value(_plain(f=0.5, g=1e21))), True),
    ("valid-among-others", "a=1; " + _signed(_value(_plain())) + "; b=2", True),
    ("expired", _signed(_value(_plain(_expire=NOW_MS - 1000))), False),
    ("expire-float", _signed(_value(_plain(_expire=FUTURE + 0.5))), False),
    ("expire-bool", _signed(_value(_plain(_expire=True))), False),
    ("expire-text", _signed(_value(_plain(_expire=str(FUTURE)))), False),
    ("expire-huge", _signed(_value(_plain(_expire=10**20))), False),
    ("no-expire", _signed(_value({"views": 3, "_maxAge": DAY_MS})), False),
    ("max-age-negative", _signed(_value(_plain(_maxAge=-5))), False),
    ("max-age-float", _signed(_value(_plain(_maxAge=1500.5))), False),
    ("max-age-text", _signed(_value(_plain(_maxAge="1 day"))), False),
    ("max-age-null", _signed(_value(_plain(_maxAge=None))), False),
    ("created-null", _signed(_value(_plain(_created=None))), False),
    ("created-float", _signed(_value(_plain(_created=NOW_MS - 0.5))), False),
    ("created-bool", _signed(_value(_plain(_created=True))), False),
    ("max-age-bool", _signed(_value(_plain(_maxAge=True))), False),
    ("created-negative", _signed(_value(_plain(_created=-1))), False),
    ("created-huge", _signed(_value(_plain(_created=10**17))), False),
    ("session-cookie", _signed(_value({"views": 3, "_expire": FUTURE, "_session": True})), False),
    ("accessed", _signed(_value(_plain(_accessed=NOW_MS))), False),
    ("device", _signed(_value(_plain(_device={"ua": "x"}))), False),
    ("bad-signature", f"koa.sess={_value(_plain())}; koa.sess.sig=AAAA", False),
    ("old-key", _signed(_value(_plain()), OLD_KEY), False),
    ("no-signature", f"koa.sess={_value(_plain())}", False),
    ("unpadded", _signed(_unpadded()), False),
    ("url-safe", _signed(_value(_plain(v="??>>")).replace("+", "-").replace("/", "_")), False),
    ("not-json", _signed(base64.b64encode(b"{views:3}").decode()), False),
    ("array", _signed(_value([1, 2])), False),
    ("null", _signed(_value(None)), False),
    ("deep", _signed(_value(_plain(deep=json.loads("[" * 40 + "]" * 40)))), False),
    ("bad-utf8", _signed(base64.b64encode(b'{"v":"\xff"}').decode()), False),
    ("surrogate", _signed(base64.b64encode(b'{"v":"\\ud800","_expire":1}').decode()), False),
    ("quoted", _signed(f'"{_value(_plain())}"'), False),
    ("empty", "koa.sess=; koa.sess.sig=", False),
]


class SpyReader(PlainCookie):
    """Records what the fast lane accepted."""

    __slots__ = ("accepted", "wrote")

    def read(self, jar: dict[str, str], now_ms: float) -> Read | None:
        result = super().read(jar, now_ms)
        self.accepted.append(result is not None)
        return result

    def lines(self, value: str, expire_ms: int, is_secure: bool) -> list[tuple[str, str]] | None:
        result = super().lines(value, expire_ms, is_secure)
        self.wrote.append(result is not None)
        return result


def _middleware(fast: bool, events: list[tuple[str, Any]], **options: Any) -> SessionMiddleware:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        body = json.dumps({"data": dict(session), "new": session.is_new}).encode()
        session["seen"] = session.get("seen", 0) + 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    middleware = SessionMiddleware(
        app,
        keys=[KEY, OLD_KEY],
        on_event=lambda name, payload: events.append((name, payload.get("reason"))),
        **options,
    )
    reader = middleware.config.plain_cookie
    assert reader is not None, "the default configuration has the fast lane"
    if fast:
        config = middleware.config
        spy = SpyReader(config.options, config.signer, config.cipher)
        spy.accepted = []
        spy.wrote = []
        middleware.config.plain_cookie = spy
    else:
        middleware.config.plain_cookie = None
    return middleware


def _is_base64_json(value: str) -> bool:
    try:
        json.loads(base64.b64decode(value, validate=True))
    except ValueError:
        return False
    return True


def _normalise(lines: list[str]) -> list[Any]:
    """The Set-Cookie lines with the times of "now" masked (the two requests run ms apart)."""
    out: list[Any] = []
    for line in lines:
        name, _, rest = line.partition("=")
        value, _, attributes = rest.partition(";")
        attributes = re.sub(r"expires=[^;]*", "expires=<date>", attributes)
        if name == "koa.sess" and value and not _is_base64_json(value):
            out.append((name, "sealed", attributes))  # a random nonce: the body is compared
        elif name == "koa.sess" and value:
            payload = json.loads(base64.b64decode(value))
            now_ms = time.time() * 1000
            if abs(payload.get("_created", 0) - now_ms) < 60_000:
                payload["_created"] = "now"
            if abs(payload.get("_expire", 0) - now_ms - payload.get("_maxAge", 0)) < 60_000:
                payload["_expire"] = "now + _maxAge"
            out.append((name, payload, attributes))
        elif name == "koa.sess.sig" and value:
            out.append((name, "signature", attributes))  # covers the masked times
        else:
            out.append((name, value, attributes))
    return out


@pytest.mark.parametrize(
    ("cookie", "fast_accepts"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS]
)
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
async def test_fast_lane_and_general_path_agree(
    cookie: str, fast_accepts: bool, https: bool
) -> None:
    await _agree(cookie, fast_accepts, https)


async def _agree(cookie: str, fast_accepts: bool, https: bool, **options: Any) -> None:
    outcomes = []
    for fast in (True, False):
        events: list[tuple[str, Any]] = []
        middleware = _middleware(fast, events, **options)
        async with client(middleware, https=https) as http:
            response = await http.get("/", headers={"cookie": cookie})
        outcomes.append(
            (response.status_code, response.text, _normalise(set_cookies(response)), events)
        )
        if fast:
            spy = middleware.config.plain_cookie
            assert isinstance(spy, SpyReader)
            assert spy.accepted == [fast_accepts]
            if fast_accepts:
                assert spy.wrote == [True]  # the saving response's lines came from the fast lane
    assert outcomes[0] == outcomes[1]
    assert any(line.startswith("koa.sess=") for line in set_cookies(response))
    assert ("secure" in set_cookies(response)[-1].split("; ")) is https


def _sealed(payload: Any, key: str = KEY) -> str:
    return "koa.sess=" + CookieCipher([key], cookie_name="koa.sess").seal(payload)


#: (id, Cookie header, whether the fast lane should accept it) for encrypt=True
SEALED: list[tuple[str, str, bool]] = [
    ("valid", _sealed(_plain()), True),
    ("valid-created", _sealed(_plain(_created=NOW_MS - 5000)), True),
    ("valid-nested", _sealed(_plain(cart=[{"id": 1}], note="[x]")), True),
    ("other-max-age", _sealed(_plain(_maxAge=3_600_000)), False),
    ("expired", _sealed(_plain(_expire=NOW_MS - 1000)), False),
    ("expire-float", _sealed(_plain(_expire=FUTURE + 0.5)), False),
    ("no-expire", _sealed({"views": 3, "_maxAge": DAY_MS}), False),
    ("session-cookie", _sealed({"views": 3, "_expire": FUTURE, "_session": True}), False),
    ("device", _sealed(_plain(_device={"ua": "x"})), False),
    ("old-key", _sealed(_plain(), OLD_KEY), False),
    ("signed-not-sealed", _signed(_value(_plain())), False),
    ("garbage", "koa.sess=bm90IGEgdG9rZW4", False),
    ("empty", "koa.sess=", False),
]


@pytest.mark.parametrize(
    ("cookie", "fast_accepts"), [c[1:] for c in SEALED], ids=[c[0] for c in SEALED]
)
@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
async def test_fast_lane_and_general_path_agree_when_encrypted(
    cookie: str, fast_accepts: bool, https: bool
) -> None:
    await _agree(cookie, fast_accepts, https, encrypt=True)


def _reader() -> PlainCookie:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not called
        pass

    reader = SessionMiddleware(app, keys=[KEY]).config.plain_cookie
    assert reader is not None
    return reader


def _jar(payload: Any) -> dict[str, str]:
    value = _value(payload)
    return {"koa.sess": value, "koa.sess.sig": sign("koa.sess", value, KEY)}


def test_the_fast_lane_hands_back_the_data_without_its_metadata() -> None:
    reader = _reader()
    created = NOW_MS - 5000
    assert reader.read(_jar(_plain(_created=created)), NOW_MS) == ({"views": 3}, FUTURE, created)
    # koa-session records no _created: None, for the next commit to stamp.
    assert reader.read(_jar(_plain()), NOW_MS) == ({"views": 3}, FUTURE, None)


@pytest.mark.parametrize("name", sorted(META_KEYS.difference(("_expire", "_maxAge", "_created"))))
def test_every_other_reserved_name_sends_the_cookie_the_general_way(name: str) -> None:
    """The fast lane tests the reserved names it does not understand one by one: a name added
    to ``META_KEYS`` and not to that test fails here."""
    reader = _reader()
    assert reader.read(_jar(_plain()), NOW_MS) is not None
    assert reader.read(_jar(_plain(**{name: 1})), NOW_MS) is None


async def test_a_lifetime_with_a_fraction_of_a_millisecond_reads_the_general_way() -> None:
    """The payload's ``_maxAge`` is whole milliseconds: with ``max_age=60.0005`` no cookie
    carries the configured lifetime exactly, so the fast lane refuses even its own, and the
    general path reads it (its ``_maxAge`` as the cookie's own lifetime)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        session["views"] = session.get("views", 0) + 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(session["views"]).encode()})

    middleware = SessionMiddleware(app, keys=[KEY], max_age=60.0005)
    reader = middleware.config.plain_cookie
    assert reader is not None
    async with client(middleware) as http:
        first = await http.get("/")
        jar = {
            line.split(";")[0].split("=", 1)[0]: line.split(";")[0].split("=", 1)[1]
            for line in set_cookies(first)
        }
        assert reader.read(jar, time.time() * 1000) is None
        second = await http.get(
            "/", headers={"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        )
    assert (first.text, second.text) == ("1", "2")
    assert json.loads(base64.b64decode(jar["koa.sess"]))["_maxAge"] == 60_000


async def test_the_attribute_text_follows_the_scheme_within_one_second() -> None:
    """The fast lane reuses its attribute text within a second, keyed by the expiry second and
    ``secure``: an HTTPS answer and then an HTTP one in the same second differ in ``secure``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["session"]["v"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = SessionMiddleware(app, keys=[KEY])
    seen = []
    for https in (True, False, True):
        async with client(middleware, https=https) as c:
            response = await c.get("/")
        seen.append(["secure" in line.split("; ") for line in set_cookies(response)])
    assert seen == [[True, True], [False, False], [True, True]]


@pytest.mark.parametrize(
    "options",
    [
        {"signed": False},
        {"encrypt": True, "valid": lambda ctx, data: True},
        {"compress": True},
        {"chunk": True},
        {"valid": lambda ctx, data: True},
        {"idle_timeout": 600},
        {"absolute_timeout": 600},
        {"max_age": "session"},
        {"decode": lambda value: {}, "encode": lambda data: "x"},
    ],
    ids=lambda o: next(iter(o)),
)
def test_only_the_default_configuration_takes_the_fast_lane(options: dict[str, Any]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - not called
        pass

    assert SessionMiddleware(app, keys=[KEY]).config.plain_cookie is not None
    assert SessionMiddleware(app, keys=[KEY], **options).config.plain_cookie is None
