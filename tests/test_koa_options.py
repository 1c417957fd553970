"""koasession.koa: a koa-session options object taken as it is."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from koasession import ConfigurationError, MemoryStore, SessionMiddleware, testing
from koasession.asgi import Receive, Scope, Send
from koasession.koa import KOA_OPTION_NAMES, from_koa_options, koa_middleware

KEY = "WQZwuZLIGhSE4K9srY6kAmUGgTtZ-3uxbOo1kecRSao"

#: koa-session 7's documented example configuration, verbatim apart from JS syntax.
KOA_README_CONFIG: dict[str, Any] = {
    "key": "koa.sess",
    "maxAge": 86400000,
    "autoCommit": True,
    "overwrite": True,
    "httpOnly": True,
    "signed": True,
    "rolling": False,
    "renew": False,
    "secure": False,
    "sameSite": None,
}


async def counter(scope: Scope, receive: Receive, send: Send) -> None:
    session = scope["session"]
    session["n"] = session.get("n", 0) + 1
    body = json.dumps({"n": session["n"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_readme_config() -> None:
    assert from_koa_options(KOA_README_CONFIG) == {
        "key": "koa.sess",
        "max_age": 86400.0,
        "auto_commit": True,
        "overwrite": True,
        "http_only": True,
        "signed": True,
        "rolling": False,
        "renew": False,
        "secure": False,
        "same_site": None,
    }


def test_every_koa_option_has_a_target() -> None:
    targets = set(KOA_OPTION_NAMES.values())
    assert "max_age" in targets and "context_store" in targets and "before_save" in targets
    assert len(KOA_OPTION_NAMES) == 24


@pytest.mark.parametrize(
    ("max_age", "seconds"),
    [(86400000, 86400.0), (1500, 1.5), (1000, 1.0), ("session", "session")],
)
def test_max_age_milliseconds(max_age: Any, seconds: Any) -> None:
    assert from_koa_options({"maxAge": max_age}) == {"max_age": seconds}


def test_legacy_maxage() -> None:
    assert from_koa_options({"maxage": 2000}) == {"max_age": 2.0}
    with pytest.raises(ConfigurationError, match="not both"):
        from_koa_options({"maxAge": 1000, "maxage": 2000})


@pytest.mark.parametrize("bad", [0, -5, "1 day", True, [1]])
def test_bad_max_age(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="maxAge"):
        from_koa_options({"maxAge": bad})


@pytest.mark.parametrize("under_a_second", [1, 500, 999])
def test_max_age_under_a_second_is_refused(under_a_second: int) -> None:
    # Max-Age is whole seconds: the cookie would be written with Max-Age=0 and dropped at once.
    with pytest.raises(ConfigurationError, match="ms is under 1 second"):
        from_koa_options({"maxAge": under_a_second})


def test_max_age_over_the_cap_says_days() -> None:
    with pytest.raises(ConfigurationError, match="401 days"):
        from_koa_options({"maxAge": 401 * 86400 * 1000})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "strict"), (False, None), (None, None), ("Strict", "strict"), ("none", "none")],
)
def test_same_site(value: Any, expected: str | None) -> None:
    assert from_koa_options({"sameSite": value}) == {"same_site": expected}


def test_same_site_wrong_type() -> None:
    with pytest.raises(ConfigurationError, match="sameSite"):
        from_koa_options({"sameSite": 1})


def test_none_is_javascript_undefined() -> None:
    assert from_koa_options({"domain": None, "maxAge": None, "secure": None, "store": None}) == {}


@pytest.mark.parametrize("name", ["httpOnly", "signed", "autoCommit", "secure"])
def test_booleans_are_checked(name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        from_koa_options({name: "yes"})


def test_passthrough_values() -> None:
    store = MemoryStore()

    def genid(ctx: Any) -> str:
        return "id"

    def valid(ctx: Any, data: Any) -> bool:
        return True

    def before_save(ctx: Any, session: Any) -> None:
        return None

    class ContextStore:
        def __init__(self, ctx: Any) -> None: ...
        def get(self, *a: Any, **k: Any) -> None: ...
        def set(self, *a: Any, **k: Any) -> None: ...
        def destroy(self, *a: Any, **k: Any) -> None: ...

    converted = from_koa_options(
        {
            "store": store,
            "ContextStore": ContextStore,
            "genid": genid,
            "prefix": "sess:",
            "valid": valid,
            "beforeSave": before_save,
            "domain": "example.com",
            "path": "/app",
            "priority": "High",
            "partitioned": True,
        }
    )
    assert converted == {
        "store": store,
        "context_store": ContextStore,
        "genid": genid,
        "prefix": "sess:",
        "valid": valid,
        "before_save": before_save,
        "domain": "example.com",
        "path": "/app",
        "priority": "High",
        "partitioned": True,
    }


def test_unknown_keys() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'maxAge'"):
        from_koa_options({"maxAgee": 1000})
    with pytest.raises(ConfigurationError, match="did you mean 'httpOnly'"):
        from_koa_options({"httponly": True})
    with pytest.raises(ConfigurationError, match=r"unknown koa-session option 'zzz'$"):
        from_koa_options({"zzz": 1})
    with pytest.raises(ConfigurationError, match="'max_age' is a koasession keyword"):
        from_koa_options({"max_age": 10})
    with pytest.raises(ConfigurationError, match="'algorithm' is a koasession keyword"):
        from_koa_options({"algorithm": "sha1"})
    with pytest.raises(ConfigurationError, match="unknown koa-session option 1"):
        from_koa_options({1: 2})  # type: ignore[dict-item]


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match="mapping"):
        from_koa_options([("maxAge", 1)])  # type: ignore[arg-type]


async def test_koa_middleware_end_to_end_with_koa_identical_cookies() -> None:
    app = koa_middleware(
        counter,
        [KEY],
        {"key": "koa.sess", "maxAge": 3600000, "sameSite": None, "httpOnly": True},
        algorithm="sha1",
    )
    assert isinstance(app, SessionMiddleware)
    assert app.options.max_age == 3600.0 and app.options.same_site is None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/")
        assert (await http.get("/")).json() == {"n": 2}
    lines = response.headers.get_list("set-cookie")
    value_line = next(line for line in lines if line.startswith("koa.sess="))
    assert "max-age=3600" in value_line and "samesite" not in value_line
    cookies = {line.split("=", 1)[0]: line.split("=", 1)[1].split(";")[0] for line in lines}
    digest = hmac.new(KEY.encode(), f"koa.sess={cookies['koa.sess']}".encode(), hashlib.sha1)
    expected = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    assert cookies["koa.sess.sig"] == expected  # keygrip's SHA-1 signature, as koa writes it
    assert testing.read_session(response, app) == {"n": 1}


async def test_koa_middleware_store_mode() -> None:
    store = MemoryStore()
    app = koa_middleware(counter, [KEY], {"store": store, "rolling": True})
    assert app.options.uses_store and app.options.rolling
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/")
    assert len(store) == 1
    assert await testing.aread_session(response, app) == {"n": 1}


def test_koa_middleware_errors() -> None:
    with pytest.raises(ConfigurationError, match="max_age set both"):
        koa_middleware(counter, [KEY], {"maxAge": 1000}, max_age=5)
    with pytest.raises(ConfigurationError, match="keys"):
        koa_middleware(counter, None, {})
    with pytest.raises(ConfigurationError, match="same_site"):
        koa_middleware(counter, [KEY], {"sameSite": "sometimes"})
    app = koa_middleware(counter, [KEY])
    assert app.options.key == "koa.sess"
