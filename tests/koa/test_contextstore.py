"""Port of koajs/session test/contextstore.test.ts ("Koa Session External Context Store").

koa's test/context_store.ts is a class built per request with the ctx over a module-level object;
``App`` also installs a ``genid`` that returns ``Date.now() + '_suffix'`` and puts it in
``ctx.state.sid``.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from koasession import SessionContext, SessionMiddleware

from ._harness import (
    KEYS,
    cookie_header,
    cookie_map,
    ctx_cookie,
    ctx_state,
    make_app,
    request,
    request_error,
    set_cookies,
)

SESSIONS: dict[str, Any] = {}
CONTEXTS: list[Any] = []


class ContextStore:
    """koa's test/context_store.ts ("a stupid nonsense example just to test")."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        CONTEXTS.append(ctx)

    async def get(self, key, max_age, *, rolling=False, ctx=None):
        return SESSIONS.get(key)

    async def set(self, key, value, max_age, *, rolling=False, changed=False, ctx=None):
        SESSIONS[key] = dict(value)

    async def destroy(self, key, *, ctx=None):
        SESSIONS[key] = None


def genid(ctx):
    """koa: `Date.now() + '_suffix'`, also left in ctx.state.sid for the app to read.

    Nanoseconds instead of milliseconds so ids made in the same millisecond do not collide.
    The app reads ``ctx.state`` through the scope (Starlette's ``request.state``), so the id is
    put there too.
    """
    sid = f"{time.time_ns()}_suffix"
    ctx.state["sid"] = sid
    ctx_state(ctx.scope)["sid"] = sid
    return sid


def App(*middleware, **options):
    options["context_store"] = ContextStore
    options["genid"] = genid
    return make_app(*middleware, **options)


async def _populated_cookie() -> str:
    async def handler(ctx):
        ctx.session["message"] = "hello"
        ctx.body = ""

    res = await request(App(handler))
    assert res.status_code == 200
    return cookie_header(res)


# ----------------------------------------------------------------- when the session contains a ;


async def test_when_the_session_contains_a_semicolon_should_still_work():
    """when the session contains a ; / should still work"""

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["string"] = ";"
            ctx.status = 204
        else:
            ctx.body = ctx.session.get("string")

    app = App(handler)
    res = await request(app, "POST")
    assert res.status_code == 204
    assert set_cookies(res), "should have set cookie"
    res = await request(app, cookie=cookie_header(res))
    assert res.text == ";"


# ----------------------------------------------------------------- new session


async def test_new_session_when_not_accessed_should_not_set_cookie():
    """new session / when not accessed / should not Set-Cookie"""

    async def handler(ctx):
        ctx.body = "greetings"

    res = await request(App(handler))
    assert res.status_code == 200
    assert set_cookies(res) == [], "should not have set cookie"


async def test_new_session_when_accessed_and_not_populated_should_not_set_cookie():
    """new session / when accessed and not populated / should not Set-Cookie"""

    async def handler(ctx):
        len(ctx.session)
        ctx.body = "greetings"

    res = await request(App(handler))
    assert res.status_code == 200
    assert set_cookies(res) == [], "should not have set cookie"


async def test_new_session_when_populated_should_set_cookie():
    """new session / when populated / should Set-Cookie"""

    async def handler(ctx):
        ctx.session["message"] = "hello"
        ctx.body = ""

    res = await request(App(handler))
    assert res.status_code == 200
    cookie = cookie_header(res)
    assert "koa.sess" in cookie
    assert re.search(r"\d+_suffix", cookie)
    assert SESSIONS[cookie_map(res)["koa.sess"]]["message"] == "hello"


async def test_new_session_when_populated_should_pass_sid_to_middleware():
    """new session / when populated / should pass sid to middleware"""
    seen = []

    async def handler(ctx):
        ctx.session["message"] = "hello"
        seen.append(ctx_state(ctx.scope).get("sid"))
        ctx.body = ""

    res = await request(App(handler))
    assert res.status_code == 200
    cookie = cookie_header(res)
    assert re.search(r"\d+_suffix", cookie)
    assert len(seen) == 1 and seen[0] is not None
    assert re.fullmatch(r"\d+_suffix", seen[0])
    assert cookie_map(res)["koa.sess"] == seen[0]


async def test_new_session_when_populated_should_not_set_cookie():
    """new session / when populated / should not Set-Cookie (body is the empty session)"""

    async def handler(ctx):
        ctx.body = ctx.session

    res = await request(App(handler))
    assert res.status_code == 200
    assert res.json() == {}
    assert set_cookies(res) == [], "should not have set cookie"


# ----------------------------------------------------------------- saved session


async def test_saved_session_when_not_accessed_should_not_set_cookie():
    """saved session / when not accessed / should not Set-Cookie"""
    cookie = await _populated_cookie()

    async def handler(ctx):
        ctx.body = "aklsdjflasdjf"

    res = await request(App(handler), cookie=cookie)
    assert res.status_code == 200
    assert set_cookies(res) == [], "should not have set cookie"


async def test_saved_session_when_accessed_but_not_changed_should_be_the_same_session():
    """saved session / when accessed but not changed / should be the same session"""
    cookie = await _populated_cookie()
    seen = []

    async def handler(ctx):
        seen.append(ctx.session.get("message"))
        ctx.body = "aklsdjflasdjf"

    res = await request(App(handler), cookie=cookie)
    assert res.status_code == 200
    assert seen == ["hello"]


async def test_saved_session_when_accessed_but_not_changed_should_not_set_cookie():
    """saved session / when accessed but not changed / should not Set-Cookie"""
    cookie = await _populated_cookie()
    seen = []

    async def handler(ctx):
        seen.append(ctx.session.get("message"))
        ctx.body = "aklsdjflasdjf"

    res = await request(App(handler), cookie=cookie)
    assert res.status_code == 200
    assert seen == ["hello"]
    assert set_cookies(res) == [], "should not have set cookie"


async def test_saved_session_when_accessed_and_changed_should_set_cookie():
    """saved session / when accessed and changed / should Set-Cookie"""
    cookie = await _populated_cookie()

    async def handler(ctx):
        ctx.session["money"] = "$$$"
        ctx.body = "aklsdjflasdjf"

    res = await request(App(handler), cookie=cookie)
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))


# ----------------------------------------------------------------- when session is


async def test_when_session_is_null_should_expire_the_session():
    """when session is / null / should expire the session"""

    async def handler(ctx):
        ctx.session = None
        ctx.body = "asdf"

    res = await request(App(handler))
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))


async def test_when_session_is_an_empty_object_should_not_set_cookie():
    """when session is / an empty object / should not Set-Cookie"""

    async def handler(ctx):
        ctx.session = {}
        ctx.body = "asdf"

    res = await request(App(handler))
    assert res.status_code == 200
    assert set_cookies(res) == [], "should not have set cookie"


async def test_when_session_is_an_object_should_create_a_session():
    """when session is / an object / should create a session"""

    async def handler(ctx):
        ctx.session = {"message": "hello"}
        ctx.body = "asdf"

    res = await request(App(handler))
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))


async def test_when_session_is_anything_else_should_throw():
    """when session is / anything else / should throw"""

    async def handler(ctx):
        ctx.session = "asdf"

    res, exc = await request_error(App(handler))
    if exc is not None:
        assert isinstance(exc, TypeError), repr(exc)
    else:
        assert res is not None and res.status_code == 500


# ----------------------------------------------------------------- session properties


async def test_session_inspect_should_return_session_content():
    """session / .inspect() / should return session content (ours: to_json())"""

    async def handler(ctx):
        ctx.session["foo"] = "bar"
        ctx.body = ctx.session.to_json()

    res = await request(App(handler))
    assert res.status_code == 200
    assert res.json() == {"foo": "bar"}
    assert any(re.match(r"koa\.sess=.+;", line) for line in set_cookies(res))


async def test_session_length_should_return_session_length():
    """session / .length / should return session length"""

    async def handler(ctx):
        ctx.session["foo"] = "bar"
        ctx.body = str(len(ctx.session))

    res = await request(App(handler))
    assert res.status_code == 200
    assert res.text == "1"
    assert any(re.match(r"koa\.sess=.+;", line) for line in set_cookies(res))


async def test_session_populated_should_return_session_populated():
    """session / .populated / should return session populated"""

    async def handler(ctx):
        ctx.session["foo"] = "bar"
        ctx.body = str(ctx.session.populated).lower()

    res = await request(App(handler))
    assert res.status_code == 200
    assert res.text == "true"
    assert any(re.match(r"koa\.sess=.+;", line) for line in set_cookies(res))


async def test_session_save_should_save_session():
    """session / .save() / should save session"""

    async def handler(ctx):
        await ctx.session.save()
        ctx.body = "hello"

    res = await request(App(handler))
    assert res.status_code == 200
    assert res.text == "hello"
    assert any(re.match(r"koa\.sess=.+;", line) for line in set_cookies(res))


# ----------------------------------------------------------------- errors caught upstream


async def test_when_an_error_is_thrown_downstream_and_caught_upstream_should_still_save():
    """when an error is thrown downstream and caught upstream / should still save the session"""

    async def catcher(ctx, next):
        try:
            await next()
        except Exception as err:
            ctx.status = err.status
            ctx.body = str(err)

    async def setter(ctx, next):
        ctx.session["name"] = "funny"
        await next()

    async def thrower(ctx):
        ctx.throw(401)

    # koa mounts `session({ ContextStore }, app)` here, without the genid of App()
    res = await request(make_app(catcher, setter, thrower, context_store=ContextStore))
    assert res.status_code == 401
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))


async def test_when_an_error_is_thrown_downstream_and_caught_upstream_starlette():
    """when an error is thrown downstream and caught upstream / should still save the session
    (Starlette: HTTPException(401) handled inside the session middleware)"""

    async def endpoint(request: Request):
        request.session["name"] = "funny"
        raise HTTPException(status_code=401)

    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(SessionMiddleware, keys=KEYS, context_store=ContextStore)],
    )
    res = await request(app)
    assert res.status_code == 401
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))


# ----------------------------------------------------------------- autoCommit


async def test_when_auto_commit_is_false_should_not_set_headers_if_manually_commit_is_not_called():
    """when autoCommit is present / and set to false / should not set headers if manuallyCommit()
    isn't called"""

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["message"] = "hi"
            ctx.body = 200
            return
        ctx.body = ctx.session.get("message")

    res = await request(App(handler, auto_commit=False), "POST")
    assert res.status_code == 200
    assert set_cookies(res) == [], "should not have set cookie"


async def test_when_auto_commit_is_false_should_set_headers_if_manually_commit_is_called():
    """when autoCommit is present / and set to false / should set headers if manuallyCommit() is
    called"""

    async def first(ctx, next):
        if ctx.method == "POST":
            ctx.session["message"] = "dummy"
        await next()

    async def handler(ctx):
        ctx.body = 200
        await ctx.session.manually_commit()

    res = await request(App(first, handler, auto_commit=False), "POST")
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    assert SESSIONS[cookie_map(res)["koa.sess"]]["message"] == "dummy"


# ----------------------------------------------------------------- when maxAge present


async def test_when_max_age_present_and_set_to_be_a_session_cookie_should_not_expire_the_session():
    """when maxAge present / and set to be a session cookie / should not expire the session"""

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["message"] = "hi"
            ctx.body = 200
            return
        ctx.body = ctx.session.get("message")

    app = App(handler, max_age="session")
    res = await request(app, "POST")
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    assert not any("expires=" in line for line in set_cookies(res))
    res = await request(app, cookie=cookie_header(res))
    assert res.text == "hi"


async def test_when_max_age_session_should_not_expire_the_session_after_multiple_session_changes():
    """when maxAge present / and set to be a session cookie / should not expire the session after
    multiple session changes"""

    async def handler(ctx):
        ctx.session["count"] = ctx.session.get("count", 0) + 1
        ctx.body = f"hi {ctx.session['count']}"

    app = App(handler, max_age="session")
    res = await request(app)
    assert res.status_code == 200
    assert res.text == "hi 1"
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    assert not any("expires=" in line for line in set_cookies(res))

    for expected in ("hi 2", "hi 3"):
        res = await request(app, cookie=cookie_header(res))
        assert res.status_code == 200
        assert res.text == expected
        assert any(line.startswith("koa.sess=") for line in set_cookies(res))
        assert not any("expires=" in line for line in set_cookies(res))


def test_when_max_age_session_should_throw_error_when_the_max_age_improper_string_given():
    """when maxAge present / and set to be a session cookie / should throw error when the maxAge
    improper string given"""
    with pytest.raises(ValueError, match="max_age"):
        App(max_age="not the right string")


async def test_when_max_age_present_and_not_expire_should_not_expire_the_session():
    """when maxAge present / and not expire / should not expire the session"""

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["message"] = "hi"
            ctx.body = 200
            return
        ctx.body = ctx.session.get("message")

    app = App(handler, max_age=100)  # deviation 1: seconds
    res = await request(app, "POST")
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    res = await request(app, cookie=cookie_header(res))
    assert res.text == "hi"


async def test_when_max_age_present_and_expired_should_expire_the_sess():
    """when maxAge present / and expired / should expire the sess"""

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["message"] = "hi"
            ctx.status = 200
            return
        ctx.body = ctx.session.get("message") or ""

    app = App(handler, max_age=1)  # deviation 1: seconds (koa: 100 ms, wait 200 ms)
    res = await request(app, "POST")
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    cookie = cookie_header(res)
    await asyncio.sleep(1.2)
    res = await request(app, cookie=cookie)
    assert res.text == ""


async def test_ctx_session_max_age_should_return_opt_max_age():
    """ctx.session.maxAge / should return opt.maxAge"""

    async def handler(ctx):
        ctx.body = ctx.session.max_age

    res = await request(App(handler, max_age=100))
    assert float(res.text) == 100  # deviation 1: seconds


async def test_ctx_session_max_age_setter_should_set_session_options_max_age():
    """ctx.session.maxAge= / should set sessionOptions.maxAge"""

    async def handler(ctx):
        ctx.session["foo"] = "bar"
        ctx.session.max_age = 100
        ctx.body = ctx.session["foo"]

    res = await request(App(handler))
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") and "expires=" in line for line in set_cookies(res))


async def test_ctx_session_max_age_setter_should_save_even_session_not_change():
    """ctx.session.maxAge= / should save even session not change"""

    async def handler(ctx):
        ctx.session.max_age = 100
        ctx.body = ctx.session

    res = await request(App(handler))
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") and "expires=" in line for line in set_cookies(res))


async def test_ctx_session_max_age_setter_should_save_when_create_session_only_with_max_age():
    """ctx.session.maxAge= / should save when create session only with maxAge (see
    test_cookie: a `maxAge` key is data here; deviation 2 gives the cookie an expiry)"""

    async def handler(ctx):
        ctx.session = {"maxAge": 100}
        ctx.body = ctx.scope["session"]

    res = await request(App(handler))
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") and "expires=" in line for line in set_cookies(res))


# ----------------------------------------------------------------- store returns empty


async def test_when_store_return_empty_should_create_new_session():
    """when store return empty / should create new Session"""

    async def handler(ctx):
        ctx.body = str(ctx.session.is_new).lower()

    res = await request(App(handler, signed=False), cookie="koa.sess=invalid-key")
    assert res.status_code == 200
    assert res.text == "true"


# ----------------------------------------------------------------- valid / beforeSave


async def test_when_valid_and_before_save_set_should_ignore_session_when_uid_changed():
    """when valid and beforeSave set / should ignore session when uid changed"""

    def valid(ctx, sess):
        return ctx_cookie(ctx, "uid") == sess.get("uid")

    def before_save(ctx, sess):
        sess["uid"] = ctx_cookie(ctx, "uid")

    async def handler(ctx):
        if not ctx.session.get("foo"):
            ctx.session["foo"] = f"{time.time_ns()}|uid:{ctx.cookie('uid')}"
        ctx.body = {"foo": ctx.session["foo"], "uid": ctx.cookie("uid")}

    app = make_app(handler, valid=valid, before_save=before_save, context_store=ContextStore)
    res = await request(app, cookie="uid=123")
    assert res.status_code == 200
    data = res.json()
    cookies = cookie_header(res)
    assert "koa.sess=" in cookies

    res = await request(app, cookie=cookies + "; uid=123")
    assert res.status_code == 200
    assert res.json() == data

    # should ignore uid:123 session and create a new session for uid:456
    res = await request(app, cookie=cookies + "; uid=456")
    assert res.status_code == 200
    assert res.json()["uid"] == "456"
    assert res.json()["foo"] != data["foo"]


# ----------------------------------------------------------------- mocking


async def test_ctx_session_can_be_mocked():
    """ctx.session / can be mocked (an app layer replaces scope["session"] with a mapping)"""

    async def mock(ctx, next):
        ctx.scope["session"] = {"foo": "bar"}
        await next()

    async def handler(ctx):
        ctx.body = ctx.scope["session"]

    res = await request(App(mock, handler))
    assert res.status_code == 200
    assert res.json() == {"foo": "bar"}


# ----------------------------------------------------------------- context store gets the ctx


async def test_context_store_is_built_per_request_with_the_ctx():
    """(koa: `new ContextStore(ctx)` is executed on every request) one instance per request,
    each with that request's SessionContext"""
    CONTEXTS.clear()

    async def handler(ctx):
        ctx.session["x"] = 1
        ctx.body = ""

    app = App(handler)
    await request(app)
    await request(app)
    assert len(CONTEXTS) == 2
    assert all(isinstance(c, SessionContext) for c in CONTEXTS)
    assert CONTEXTS[0] is not CONTEXTS[1]
