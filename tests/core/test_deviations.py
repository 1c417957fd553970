"""One test per deliberate deviation from koa-session (spec, last section; README list)."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest

from koasession import ConfigurationError, MemoryStore, SessionMiddleware

from ._app import (
    KEY,
    OLD_KEY,
    client,
    cookie_header,
    cookie_pairs,
    decode_value,
    set_cookies,
    sign,
    signed_cookie,
    wrap,
)


def counter(scope: dict[str, Any]) -> Any:
    session = scope["session"]
    session["n"] = session.get("n", 0) + 1
    return dict(session)


async def test_1_max_age_is_seconds_and_milliseconds_get_a_hint() -> None:
    async with client(wrap(counter, max_age=60)) as c:
        response = await c.get("/")
    payload = decode_value(cookie_pairs(response)["koa.sess"])
    assert payload["_maxAge"] == 60_000
    assert "max-age=60;" in set_cookies(response)[0]
    with pytest.raises(ConfigurationError, match="milliseconds"):
        wrap(counter, max_age=86_400_000)


async def test_2_default_lifetime_applies_from_the_first_cookie() -> None:
    async with client(wrap(counter)) as c:
        response = await c.get("/")
    line = set_cookies(response)[0]
    assert "expires=" in line and "max-age=86400;" in line


async def test_3_underscore_keys_are_kept_but_metadata_names_are_reserved() -> None:
    def handler(scope: dict[str, Any]) -> Any:
        scope["session"]["_private"] = 1
        with pytest.raises(KeyError, match="reserved"):
            scope["session"]["_expire"] = 1
        return None

    async with client(wrap(handler)) as c:
        first = await c.get("/")
        second = await c.get("/", headers={"cookie": cookie_header(first)})
    assert decode_value(cookie_pairs(first)["koa.sess"])["_private"] == 1
    assert cookie_pairs(second) == {}


async def test_3_keys_must_be_strings_and_a_str_subclass_is_one() -> None:
    class Name(str):
        pass

    def handler(scope: dict[str, Any]) -> Any:
        session = scope["session"]
        with pytest.raises(TypeError, match="session keys must be strings"):
            session[1] = "x"
        with pytest.raises(KeyError, match="reserved"):
            session[Name("_maxAge")] = 1
        session[Name("name")] = "kept"
        return None

    async with client(wrap(handler)) as c:
        response = await c.get("/")
    saved = decode_value(cookie_pairs(response)["koa.sess"])
    assert saved["name"] == "kept"
    assert "1" not in saved and "_maxAge" in saved  # ours, not the refused assignment's 1
    assert saved["_maxAge"] == 86_400_000


async def test_4_same_site_lax_by_default() -> None:
    async with client(wrap(counter)) as c:
        response = await c.get("/")
    assert all("; samesite=lax;" in line for line in set_cookies(response))


async def test_5_sha256_by_default_and_no_downgrade_to_sha1() -> None:
    events: list[str] = []
    app = wrap(lambda s: dict(s["session"]), on_event=lambda n, p: events.append(n))
    sha1 = signed_cookie({"n": 1, "_expire": int(time.time() * 1000) + 60_000}, alg="sha1")
    sha256 = signed_cookie({"n": 1, "_expire": int(time.time() * 1000) + 60_000})
    async with client(app) as c:
        assert (await c.get("/", headers={"cookie": sha256})).json() == {"n": 1}
        assert (await c.get("/", headers={"cookie": sha1})).json() == {}
    assert events == ["tampered"]


async def test_6_rotated_signature_keeps_the_value_cookie_attributes() -> None:
    expire_ms = int(time.time() * 1000) + 3_600_000
    cookie = signed_cookie({"n": 1, "_expire": expire_ms, "_maxAge": 3_600_000}, key=OLD_KEY)
    events: list[str] = []
    app = wrap(
        lambda s: dict(s["session"]),
        keys=[KEY, OLD_KEY],
        domain="example.com",
        on_event=lambda n, p: events.append(n),
    )
    async with client(app) as c:
        response = await c.get("/", headers={"cookie": cookie})
    assert response.json() == {"n": 1}
    (line,) = set_cookies(response)
    assert line.startswith("koa.sess.sig=")
    assert "; domain=example.com;" in line and "; httponly" in line
    expires = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(expire_ms / 1000))
    assert f"expires={expires}" in line
    assert events == ["rotated"]


async def test_7_manual_save_is_not_written_twice() -> None:
    async def handler(scope: dict[str, Any]) -> Any:
        scope["session"]["n"] = 1
        await scope["session"].save()
        return None

    async with client(wrap(handler, rolling=True)) as c:
        response = await c.get("/")
    assert len(set_cookies(response)) == 2  # one value, one signature


async def test_7_external_key_is_current_after_regenerate() -> None:
    async def handler(scope: dict[str, Any]) -> Any:
        session = scope["session"]
        session["n"] = 1
        before = session.external_key
        await session.regenerate()
        return [before, session.external_key]

    store = MemoryStore()
    async with client(wrap(handler, store=store)) as c:
        response = await c.get("/")
    before, after = response.json()
    assert before != after
    assert cookie_pairs(response)["koa.sess"] == after


async def test_7_removal_can_be_committed_manually() -> None:
    async def handler(scope: dict[str, Any]) -> Any:
        if scope["path"] == "/login":
            scope["session"]["user"] = "ann"
        else:
            scope["session"].destroy()
        await scope["session"].manually_commit()
        return None

    async with client(wrap(handler, auto_commit=False)) as c:
        login = await c.get("/login")
        logout = await c.get("/logout", headers={"cookie": cookie_header(login)})
    assert cookie_pairs(login)["koa.sess"]
    assert cookie_pairs(logout) == {
        "koa.sess": "",
        "koa.sess.sig": cookie_pairs(logout)["koa.sess.sig"],
    }


async def test_8_escaping_exception_writes_nothing() -> None:
    store = MemoryStore()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["session"]["n"] = 1
        raise RuntimeError("boom")

    transport = httpx.ASGITransport(
        app=SessionMiddleware(app, keys=[KEY], store=store), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert len(store) == 0


async def test_9_hooks_and_stores_may_be_async() -> None:
    calls: list[str] = []

    class AsyncStore:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

        async def get(self, key: str, max_age: Any, *, rolling: bool, ctx: Any) -> Any:
            return self.data.get(key)

        async def set(self, key: str, data: Any, max_age: float, **kw: Any) -> None:
            self.data[key] = data

        async def destroy(self, key: str, *, ctx: Any) -> None:
            self.data.pop(key, None)

    async def valid(ctx: Any, data: Any) -> bool:
        calls.append("valid")
        return True

    async def before_save(ctx: Any, session: Any) -> None:
        calls.append("before_save")

    async def genid(ctx: Any) -> str:
        calls.append("genid")
        return "fixed-id-123"

    app = wrap(counter, store=AsyncStore(), valid=valid, before_save=before_save, genid=genid)
    async with client(app) as c:
        first = await c.get("/")
        second = await c.get("/", headers={"cookie": cookie_header(first)})
    assert second.json() == {"n": 2}
    assert cookie_pairs(first)["koa.sess"] == "fixed-id-123"
    assert calls == ["genid", "before_save", "valid", "before_save"]


async def test_9_async_valid_in_cookie_mode_loads_before_the_handler() -> None:
    async def valid(ctx: Any, data: Any) -> bool:
        return data.get("n") != 2

    async with client(wrap(counter, valid=valid)) as c:
        first = await c.get("/")
        second = await c.get("/", headers={"cookie": cookie_header(first)})
        third = await c.get("/", headers={"cookie": cookie_header(second)})
    assert [r.json()["n"] for r in (first, second, third)] == [1, 2, 1]


async def test_10_store_ttl_is_seconds_and_session_lifetimes_are_finite() -> None:
    seen: list[float] = []

    class Recording(MemoryStore):
        async def set(self, key: str, data: Any, max_age: float, **kw: Any) -> Any:
            seen.append(max_age)
            return await super().set(key, data, max_age, **kw)

    for options in ({"max_age": 60}, {"max_age": "session", "session_store_ttl": 3600}):
        async with client(wrap(counter, store=Recording(), **options)) as c:
            await c.get("/")
    assert seen == [70.0, 3600]


async def test_11_events_for_tampering_rotation_and_store_errors() -> None:
    events: list[str] = []

    class Broken(MemoryStore):
        async def set(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("down")

    app = wrap(counter, store=Broken(), on_event=lambda n, p: events.append(n))
    async with client(app) as c:
        response = await c.get("/")
    assert response.status_code == 503
    assert set_cookies(response) == []
    assert events == ["store_error"]


async def test_12_max_age_agrees_with_expires() -> None:
    async with client(wrap(counter, max_age=120)) as c:
        response = await c.get("/")
    line = set_cookies(response)[0]
    expires = line.split("expires=")[1].split(";")[0]
    parsed = time.mktime(time.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT")) - time.timezone
    assert abs(parsed - (time.time() + 120)) < 3
    assert "max-age=120;" in line


async def test_11_a_truthy_non_object_payload_is_invalid_a_falsy_one_missed() -> None:
    events: list[tuple[str, Any]] = []
    app = wrap(lambda s: dict(s["session"]), on_event=lambda n, p: events.append((n, p["value"])))
    async with client(app) as c:
        for text in ("42", "null", "[1]", '""'):
            value = base64.b64encode(text.encode()).decode()
            cookie = f"koa.sess={value}; koa.sess.sig={sign('koa.sess', value)}"
            assert (await c.get("/", headers={"cookie": cookie})).json() == {}
    assert [name for name, _ in events] == ["invalid", "missed", "invalid", "missed"]
    assert [value for name, value in events if name == "missed"] == [None, ""]


async def test_13_integers_beyond_two_to_the_53_keep_their_exact_digits() -> None:
    def handler(scope: dict[str, Any]) -> Any:
        scope["session"]["id"] = 2**60 + 1
        return None

    async with client(wrap(handler)) as c:
        response = await c.get("/")
    raw = base64.b64decode(cookie_pairs(response)["koa.sess"])
    assert raw.startswith(b'{"id":1152921504606846977,')  # JavaScript: 1152921504606847000
