"""Port of koajs/session test/store_with_ctx.test.ts ("Koa Session External Store methods can
access Koa context").

koa's store writes ``options.ctx.state.test`` ('get', 'set', 'destroyed') and an outer middleware
answers with that value after the session middleware committed. Here an outer ASGI layer wraps
SessionMiddleware, lets the request finish, then answers with the ``state`` of the
:class:`koasession.SessionContext` the store received (or 'undefined').
"""

from __future__ import annotations

from typing import Any

from koasession import SessionContext, SessionMiddleware

from ._harness import KEYS, asgi, cookie_header, request

SESSIONS: dict[str, Any] = {}


class StoreWithCtx:
    """koa's test/store_with_ctx.ts; also remembers the ctx of the current request."""

    def __init__(self) -> None:
        self.ctx: Any = None

    def _seen(self, ctx: Any, value: str) -> None:
        assert isinstance(ctx, SessionContext)
        ctx.state["test"] = value
        self.ctx = ctx

    async def get(self, key, max_age, *, rolling=False, ctx=None):
        self._seen(ctx, "get")
        return SESSIONS.get(key)

    async def set(self, key, sess, max_age, *, rolling=False, changed=False, ctx=None):
        self._seen(ctx, "set")
        SESSIONS[key] = dict(sess)

    async def destroy(self, key, *, ctx=None):
        self._seen(ctx, "destroyed")
        SESSIONS[key] = None


def App(*middleware, **options):
    store = StoreWithCtx()
    options["store"] = store
    inner = SessionMiddleware(asgi(*middleware), keys=KEYS, **options)

    async def outer(scope, receive, send):
        # koa: app.use(async (ctx, next) => {
        #   await next(); ctx.body = ctx.state.test ?? 'undefined' })
        store.ctx = None
        start: dict[str, Any] = {}

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)

        await inner(scope, receive, capture)
        state = store.ctx.state if store.ctx is not None else {}
        body = str(state.get("test", "undefined")).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            # koa: setting ctx.body makes the status 200
            {"type": "http.response.start", "status": 200, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})

    return outer


async def _populated_cookie() -> str:
    async def handler(ctx):
        if ctx.path == "/set":
            ctx.session = {"foo": "bar"}

    res = await request(App(handler), path="/set")
    assert res.status_code == 200
    assert res.text == "set"
    return cookie_header(res)


async def test_new_session_when_not_accessed_should_not_set_ctx_state_test_variable():
    """new session / when not accessed / should not set ctx.state.test variable"""
    res = await request(App())
    assert res.text == "undefined"


async def test_new_session_when_populated_should_set_ctx_state_test_variable():
    """new session / when populated / should set ctx.state.test variable"""

    async def handler(ctx):
        if ctx.path == "/set":
            ctx.session = {"foo": "bar"}
        ctx.status = 200

    res = await request(App(handler), path="/set")
    assert res.status_code == 200
    assert "koa.sess=" in cookie_header(res)
    assert res.text == "set"


async def test_new_session_when_accessed_should_access_ctx_state_test_variable():
    """new session / when accessed / should access ctx.state.test variable"""
    cookie = await _populated_cookie()
    res = await request(App(), cookie=cookie)
    assert res.text == "get"


async def test_new_session_session_destroyed_should_access_ctx_state_test_variable():
    """new session / session destroyed / should access ctx.state.test variable"""
    cookie = await _populated_cookie()
    sid = cookie.split("koa.sess=")[1].split(";")[0]

    async def handler(ctx):
        if ctx.path == "/destroy":
            ctx.session = None

    res = await request(App(handler), path="/destroy", cookie=cookie)
    assert res.text == "destroyed"
    assert SESSIONS[sid] is None
