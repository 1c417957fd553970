"""Port of koajs/session test/store.test.ts ("Koa Session External Store").

koa's test/store.ts is a module-level object store; :class:`DictStore` is the same, one per
module here (``STORE``) so the saved-session tests can find what the populated test wrote.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from koasession import SessionMiddleware

from ._harness import (
    COOKIE_EPOCH,
    KEYS,
    DictStore,
    Events,
    asgi,
    cookie_header,
    cookie_map,
    ctx_cookie,
    make_app,
    request,
    request_error,
    set_cookies,
)

STORE = DictStore()


def App(*middleware, **options):
    options.setdefault("store", STORE)
    return make_app(*middleware, **options)


async def _populated_cookie() -> str:
    """koa: the shared ``cookie`` captured by 'new session when populated should Set-Cookie'."""

    async def handler(ctx):
        ctx.session["message"] = "hello"
        ctx.body = ""

    res = await request(App(handler))
    assert res.status_code == 200
    return cookie_header(res)


def _sid(resp) -> str:
    return cookie_map(resp)["koa.sess"]


# ----------------------------------------------------------------- when the session contains a ;


async def test_when_the_session_contains_a_semicolon_should_still_work():
    """when the session contains a ; / should still work"""

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["string"] = ";"
            ctx.status = 204
        else:
            ctx.body = ctx.session.get("string")

    app = App(handler, store=STORE)
    res = await request(app, "POST")
    assert res.status_code == 204
    sid = _sid(res)
    assert STORE.sessions[sid]["string"] == ";"
    res = await request(app, cookie=cookie_header(res))
    assert res.text == ";"


async def test_when_the_session_contains_a_semicolon_should_disable_store_on_options():
    """when the session contains a ; / should disable store on options

    koa mutates the options object after start-up (`options.store = undefined`); ours has no
    such live mutation, so the same cookie is sent to a second middleware built without a store:
    the store id is not a cookie payload, so a new session starts.
    """

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["string"] = ";"
            ctx.status = 204
        else:
            ctx.body = ctx.session.get("string", "new session create")

    app = App(handler, store=STORE)
    res = await request(app, "POST")
    assert res.status_code == 204
    cookie = cookie_header(res)
    res = await request(app, cookie=cookie)
    assert res.text == ";"

    no_store = make_app(handler)
    res = await request(no_store, cookie=cookie)
    assert res.status_code == 200
    assert res.text == "new session create"


# ----------------------------------------------------------------- new session


async def test_new_session_when_not_accessed_should_not_set_cookie():
    """new session / when not accessed / should not Set-Cookie"""
    store = DictStore()

    async def handler(ctx):
        ctx.body = "greetings"

    res = await request(App(handler, store=store))
    assert res.status_code == 200
    assert set_cookies(res) == []
    # store mode calls no store when the request carries no id
    assert store.calls == []


async def test_new_session_when_accessed_and_not_populated_should_not_set_cookie():
    """new session / when accessed and not populated / should not Set-Cookie"""
    store = DictStore()

    async def handler(ctx):
        len(ctx.session)
        ctx.body = "greetings"

    res = await request(App(handler, store=store))
    assert res.status_code == 200
    assert set_cookies(res) == []
    assert store.calls == []


async def test_new_session_when_populated_should_set_cookie():
    """new session / when populated / should Set-Cookie"""

    async def handler(ctx):
        ctx.session["message"] = "hello"
        ctx.body = ""

    res = await request(App(handler))
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    sid = _sid(res)
    assert STORE.sessions[sid]["message"] == "hello"


async def test_new_session_when_populated_should_not_set_cookie():
    """new session / when populated / should not Set-Cookie (body is the empty session)"""

    async def handler(ctx):
        ctx.body = ctx.session

    res = await request(App(handler))
    assert res.status_code == 200
    assert res.json() == {}
    assert set_cookies(res) == []


# ----------------------------------------------------------------- saved session


async def test_saved_session_when_not_accessed_should_not_set_cookie():
    """saved session / when not accessed / should not Set-Cookie"""
    cookie = await _populated_cookie()

    async def handler(ctx):
        ctx.body = "aklsdjflasdjf"

    res = await request(App(handler), cookie=cookie)
    assert res.status_code == 200
    assert set_cookies(res) == []


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
    assert set_cookies(res) == []


async def test_saved_session_when_accessed_and_changed_should_set_cookie():
    """saved session / when accessed and changed / should Set-Cookie"""
    cookie = await _populated_cookie()
    sid = cookie.split("koa.sess=")[1].split(";")[0]

    async def handler(ctx):
        ctx.session["money"] = "$$$"
        ctx.body = "aklsdjflasdjf"

    res = await request(App(handler), cookie=cookie)
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    # same id, data updated in the store
    assert _sid(res) == sid
    assert STORE.sessions[sid]["money"] == "$$$"
    assert STORE.sessions[sid]["message"] == "hello"


# ----------------------------------------------------------------- when session is


async def test_when_session_is_null_should_expire_the_session():
    """when session is / null / should expire the session"""

    async def handler(ctx):
        ctx.session = None
        ctx.body = "asdf"

    res = await request(App(handler))
    assert res.status_code == 200
    assert any(
        line.startswith("koa.sess=;") and COOKIE_EPOCH in line for line in set_cookies(res)
    ), set_cookies(res)


async def test_when_session_is_null_should_destroy_the_store_entry():
    """when session is / null / should expire the session (saved session: entry destroyed)"""
    cookie = await _populated_cookie()
    sid = cookie.split("koa.sess=")[1].split(";")[0]
    assert STORE.sessions[sid]

    async def handler(ctx):
        ctx.session = None
        ctx.body = "asdf"

    res = await request(App(handler), cookie=cookie)
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=;") for line in set_cookies(res))
    assert STORE.sessions.get(sid) is None


async def test_when_session_is_an_empty_object_should_not_set_cookie():
    """when session is / an empty object / should not Set-Cookie"""

    async def handler(ctx):
        ctx.session = {}
        ctx.body = "asdf"

    res = await request(App(handler))
    assert res.status_code == 200
    assert set_cookies(res) == []


async def test_when_session_is_an_object_should_create_a_session():
    """when session is / an object / should create a session"""

    async def handler(ctx):
        ctx.session = {"message": "hello"}
        ctx.body = "asdf"

    res = await request(App(handler))
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    assert STORE.sessions[_sid(res)]["message"] == "hello"


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
    store = DictStore()

    async def handler(ctx):
        await ctx.session.save()
        ctx.body = "hello"

    res = await request(App(handler, store=store))
    assert res.status_code == 200
    assert res.text == "hello"
    assert any(re.match(r"koa\.sess=.+;", line) for line in set_cookies(res))
    # deviation 7: the manual save is not repeated at auto-commit
    assert store.names() == ["set"]


# ----------------------------------------------------------------- errors caught upstream


async def test_when_an_error_is_thrown_downstream_and_caught_upstream_should_still_save():
    """when an error is thrown downstream and caught upstream / should still save the session"""
    store = DictStore()

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

    res = await request(make_app(catcher, setter, thrower, store=store))
    assert res.status_code == 401
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    assert store.sessions[_sid(res)]["name"] == "funny"


async def test_when_an_error_is_thrown_downstream_and_caught_upstream_starlette():
    """when an error is thrown downstream and caught upstream / should still save the session
    (Starlette: HTTPException(401) handled by Starlette inside the session middleware)"""
    store = DictStore()

    async def endpoint(request: Request):
        request.session["name"] = "funny"
        raise HTTPException(status_code=401)

    app = Starlette(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(SessionMiddleware, keys=KEYS, store=store)],
    )
    res = await request(app)
    assert res.status_code == 401
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    assert store.sessions[_sid(res)]["name"] == "funny"


# ----------------------------------------------------------------- when maxAge present


async def test_when_max_age_present_and_set_to_be_a_session_cookie_should_not_expire_the_session():
    """when maxAge present / and set to be a session cookie / should not expire the session"""
    store = DictStore()

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["message"] = "hi"
            ctx.body = 200
            return
        ctx.body = ctx.session.get("message")

    app = App(handler, store=store, max_age="session")
    res = await request(app, "POST")
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    assert not any("expires=" in line for line in set_cookies(res))
    sid = _sid(res)
    assert store.sessions[sid]["_session"] is True
    # deviation 10: the store gets a finite TTL in seconds, not koa's 'session' string
    ttl = next(c[2]["max_age"] for c in store.calls if c[0] == "set")
    assert isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl > 0

    res = await request(app, cookie=cookie_header(res))
    assert res.text == "hi"


async def test_when_max_age_present_and_not_expire_should_not_expire_the_session():
    """when maxAge present / and not expire / should not expire the session"""
    store = DictStore()

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["message"] = "hi"
            ctx.body = 200
            return
        ctx.body = ctx.session.get("message")

    # deviation 1: seconds (koa: 100 ms)
    app = App(handler, store=store, max_age=100)
    res = await request(app, "POST")
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    # store TTL is max_age + 10 seconds (deviation 10: seconds)
    ttl = next(c[2]["max_age"] for c in store.calls if c[0] == "set")
    assert ttl == pytest.approx(110)
    res = await request(app, cookie=cookie_header(res))
    assert res.text == "hi"


async def test_when_max_age_present_and_expired_should_expire_the_sess():
    """when maxAge present / and expired / should expire the sess"""
    events = Events()

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["message"] = "hi"
            ctx.status = 200
            return
        ctx.body = ctx.session.get("message") or ""

    # deviation 1: seconds; koa waits 200 ms past a 100 ms lifetime, we wait past 1 s
    app = App(handler, max_age=1, on_event=events)
    res = await request(app, "POST")
    assert any(line.startswith("koa.sess=") for line in set_cookies(res))
    sid = _sid(res)
    cookie = cookie_header(res)
    await asyncio.sleep(1.2)
    res = await request(app, cookie=cookie)
    assert res.text == ""
    expired = events.named("expired")
    assert len(expired) == 1
    # koa checks `key` looks like its uuid (/^\w+-/); ours is the store id the cookie carried
    assert expired[0]["key"] == sid
    assert expired[0]["value"]
    assert expired[0]["ctx"]


async def test_ctx_session_max_age_should_return_opt_max_age():
    """ctx.session.maxAge / should return opt.maxAge"""

    async def handler(ctx):
        ctx.body = ctx.session.max_age

    res = await request(App(handler, max_age=100))
    assert float(res.text) == 100  # deviation 1: seconds


async def test_ctx_session_max_age_setter_should_set_session_options_max_age():
    """ctx.session.maxAge= / should set sessionOptions.maxAge"""
    store = DictStore()

    async def handler(ctx):
        ctx.session["foo"] = "bar"
        ctx.session.max_age = 100
        ctx.body = ctx.session["foo"]

    res = await request(App(handler, store=store))
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") and "expires=" in line for line in set_cookies(res))
    data = store.sessions[_sid(res)]
    assert data["_maxAge"] == 100_000  # the stored payload keeps koa's milliseconds


async def test_ctx_session_max_age_setter_should_save_even_session_not_change():
    """ctx.session.maxAge= / should save even session not change"""

    async def handler(ctx):
        ctx.session.max_age = 100
        ctx.body = ctx.session

    res = await request(App(handler))
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") and "expires=" in line for line in set_cookies(res))


async def test_ctx_session_max_age_setter_should_save_when_create_session_only_with_max_age():
    """ctx.session.maxAge= / should save when create session only with maxAge

    (koa maps a `maxAge` key to the lifetime; ours keeps it as data, which is enough to save,
    and deviation 2 gives every cookie an expiry.)
    """

    async def handler(ctx):
        ctx.session = {"maxAge": 100}
        ctx.body = ctx.scope["session"]

    res = await request(App(handler))
    assert res.status_code == 200
    assert any(line.startswith("koa.sess=") and "expires=" in line for line in set_cookies(res))


# ----------------------------------------------------------------- regenerate


async def test_ctx_session_regenerate_should_change_the_session_key_but_not_content():
    """ctx.session.regenerate / should change the session key, but not content"""
    store = DictStore()
    seen = []

    async def first(ctx, next):
        # koa: `ctx.session = { message: 'hi' }`, then keeps using ctx.session; assigning a dict
        # to scope["session"] would leave a plain dict there, so replace the data in place
        ctx.session.clear()
        ctx.session.update(message="hi")
        await next()

    async def second(ctx, next):
        if ctx.cookie("koa.sess"):
            await ctx.session.regenerate()
        await next()

    async def last(ctx):
        seen.append(ctx.session["message"])
        ctx.body = ""

    app = App(first, second, last, store=store)
    res = await request(app)
    assert res.status_code == 200
    koa_session = cookie_header(res)
    assert "koa.sess=" in koa_session
    old_sid = _sid(res)

    res = await request(app, cookie=koa_session)
    assert res.status_code == 200
    cookies = cookie_header(res)
    assert "koa.sess=" in cookies
    assert cookies != koa_session
    new_sid = _sid(res)
    assert new_sid != old_sid
    assert seen == ["hi", "hi"]
    assert store.sessions.get(old_sid) is None
    assert store.sessions[new_sid]["message"] == "hi"


# ----------------------------------------------------------------- store returns empty


async def test_when_store_return_empty_should_create_new_session():
    """when store return empty / should create new Session"""
    events = Events()
    store = DictStore()

    async def handler(ctx):
        ctx.body = str(ctx.session.is_new).lower()

    app = App(handler, store=store, signed=False, on_event=events)
    res = await request(app, cookie="koa.sess=invalid-key")
    assert res.status_code == 200
    assert res.text == "true"
    missed = events.named("missed")
    assert len(missed) == 1
    assert missed[0]["key"] == "invalid-key"
    assert missed[0]["ctx"]


# ----------------------------------------------------------------- valid / beforeSave


async def test_when_valid_and_before_save_set_should_ignore_session_when_uid_changed():
    """when valid and beforeSave set / should ignore session when uid changed"""
    events = Events()

    def valid(ctx, sess):
        return ctx_cookie(ctx, "uid") == sess.get("uid")

    def before_save(ctx, sess):
        sess["uid"] = ctx_cookie(ctx, "uid")

    async def handler(ctx):
        if not ctx.session.get("foo"):
            ctx.session["foo"] = f"{time.time_ns()}|uid:{ctx.cookie('uid')}"
        ctx.body = {"foo": ctx.session["foo"], "uid": ctx.cookie("uid")}

    app = make_app(handler, valid=valid, before_save=before_save, store=STORE, on_event=events)
    res = await request(app, cookie="uid=123")
    assert res.status_code == 200
    data = res.json()
    cookies = cookie_header(res)
    assert "koa.sess=" in cookies

    res = await request(app, cookie=cookies + "; uid=123")
    assert res.status_code == 200
    assert res.json() == data

    res = await request(app, cookie=cookies + "; uid=456")
    assert res.status_code == 200
    assert res.json()["uid"] == "456"
    assert res.json()["foo"] != data["foo"]

    invalid = events.named("invalid")
    assert len(invalid) == 1
    assert invalid[0]["key"]
    assert invalid[0]["value"]
    assert invalid[0]["ctx"]


# ----------------------------------------------------------------- mocking


async def test_ctx_session_can_be_mocked():
    """ctx.session / can be mocked

    koa mocks the `ctx.session` getter with mm; in ASGI the app (or a test double) can put its
    own mapping in scope["session"] and the handler sees it.
    """

    async def mock(ctx, next):
        ctx.scope["session"] = {"foo": "bar"}
        await next()

    async def handler(ctx):
        ctx.body = ctx.scope["session"]

    res = await request(App(mock, handler))
    assert res.status_code == 200
    assert res.json() == {"foo": "bar"}


# ----------------------------------------------------------------- rolling


def _set_app(store, **options):
    async def handler(ctx):
        if ctx.path == "/set":
            ctx.session = {"foo": "bar"}
        ctx.body = ctx.scope["session"]

    return App(handler, store=store, **options)


async def test_when_rolling_set_to_true_should_not_send_set_cookie_when_session_not_exists():
    """when rolling set to true / should not send set-cookie when session not exists"""
    res = await request(_set_app(DictStore(), rolling=True))
    assert res.json() == {}
    assert set_cookies(res) == []


async def test_when_rolling_set_to_true_should_send_set_cookie_when_session_exists_and_not_change():
    """when rolling set to true / should send set-cookie when session exists and not change"""
    store = DictStore()
    app = _set_app(store, rolling=True)
    res = await request(app, path="/set")
    assert res.json() == {"foo": "bar"}
    assert len(set_cookies(res)) == 2
    res = await request(app, cookie=cookie_header(res))
    assert res.json() == {"foo": "bar"}
    assert len(set_cookies(res)) == 2
    last_set = [c for c in store.calls if c[0] == "set"][-1]
    assert last_set[2]["rolling"] is True
    assert last_set[2]["changed"] is False


# ----------------------------------------------------------------- prefix


async def test_when_prefix_present_should_still_work():
    """when prefix present / should still work"""
    store = DictStore()

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["string"] = ";"
            ctx.status = 204
        else:
            ctx.body = ctx.session.get("string")

    app = App(handler, store=store, prefix="sess:")
    res = await request(app, "POST")
    assert res.status_code == 204
    assert any(line.startswith("koa.sess=sess:") for line in set_cookies(res)), set_cookies(res)
    assert all(key.startswith("sess:") for key in store.sessions)
    res = await request(app, cookie=cookie_header(res))
    assert res.text == ";"


# ----------------------------------------------------------------- renew


async def test_when_renew_set_to_true_should_not_send_set_cookie_when_session_not_exists():
    """when renew set to true / should not send set-cookie when session not exists"""
    res = await request(_set_app(DictStore(), renew=True, max_age=2))
    assert res.json() == {}
    assert set_cookies(res) == []


async def test_when_renew_set_to_true_should_send_set_cookie_when_session_near_expire():
    """when renew set to true / should send set-cookie when session near expire and not change"""
    # deviation 1: seconds (koa: maxAge 2000 ms, wait 1200 ms)
    app = _set_app(DictStore(), renew=True, max_age=2)
    res = await request(app, path="/set")
    assert res.json() == {"foo": "bar"}
    assert len(set_cookies(res)) == 2
    cookie = cookie_header(res)
    await asyncio.sleep(1.2)
    res = await request(app, cookie=cookie)
    assert res.json() == {"foo": "bar"}
    assert len(set_cookies(res)) == 2


async def test_when_renew_set_to_true_should_not_send_set_cookie_when_session_not_near_expire():
    """when renew set to true / should not send set-cookie when session not near expire and not
    change"""
    app = _set_app(DictStore(), renew=True, max_age=2)
    res = await request(app, path="/set")
    assert res.json() == {"foo": "bar"}
    assert len(set_cookies(res)) == 2
    cookie = cookie_header(res)
    await asyncio.sleep(0.5)
    res = await request(app, cookie=cookie)
    assert res.json() == {"foo": "bar"}
    assert set_cookies(res) == []


# ----------------------------------------------------------------- before the middleware


async def test_when_get_session_before_middleware_should_return_empty_session():
    """when get session before middleware / should return empty session

    koa: a middleware mounted before the session one writes `ctx.session.foo`, and the store
    mode load replaces it. Here an outer ASGI layer puts a mapping in scope["session"] before
    SessionMiddleware runs; the middleware replaces it with the loaded (empty) session.
    """
    store = DictStore()

    async def handler(ctx):
        if ctx.path == "/set":
            ctx.session = {"foo": "bar"}
        ctx.body = ctx.scope["session"]

    inner = SessionMiddleware(asgi(handler), keys=KEYS, store=store)

    async def outer(scope, receive, send):
        if scope["type"] == "http":
            scope["session"] = {"foo": "123"}
        await inner(scope, receive, send)

    res = await request(outer)
    assert res.json() == {}
    res = await request(outer, path="/set")
    assert res.json() == {"foo": "bar"}
    cookie = cookie_header(res)
    await asyncio.sleep(1.2)
    res = await request(outer, cookie=cookie)
    assert res.json() == {"foo": "bar"}
