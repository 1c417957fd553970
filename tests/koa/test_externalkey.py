"""Port of koajs/session test/externalkey.test.ts ("Koa Session External Key").

The session id travels in a ``User-Token`` header instead of a cookie.
"""

from __future__ import annotations

import pytest

from ._harness import DictStore, make_app, request, set_cookies

TOKEN_KEY = "User-Token"
STORE = DictStore()


class HeaderKey:
    """koa: `{ get: ctx => ctx.get(TOKEN_KEY), set: (ctx, value) => ctx.set(TOKEN_KEY, value) }`"""

    def get(self, ctx):
        return ctx.get_header(TOKEN_KEY)

    def set(self, ctx, value):
        ctx.set_header(TOKEN_KEY, value)


def App(*middleware, **options):
    options["store"] = STORE
    options.setdefault("external_key", HeaderKey())
    return make_app(*middleware, **options)


def test_when_the_external_key_set_get_is_invalid_should_throw_a_error():
    """when the external key set/get is invalid / should throw a error"""
    with pytest.raises(ValueError, match=r"(?i)external_?key"):
        App(external_key={})
    with pytest.raises(ValueError, match=r"(?i)external_?key"):
        App(external_key=object())


async def test_custom_get_set_external_key_should_still_work():
    """custom get/set external key / should still work"""
    seen = []

    async def handler(ctx):
        if ctx.method == "POST":
            ctx.session["string"] = ";"
            ctx.status = 204
            seen.append(("post", ctx.session.external_key))
        else:
            ctx.body = ctx.session.get("string")
            seen.append(("get", ctx.session.external_key, ctx.get(TOKEN_KEY)))

    app = App(handler)
    res = await request(app, "POST")
    assert res.status_code == 204
    token = res.headers.get(TOKEN_KEY)
    assert token
    assert seen[0][1]  # ctx.session.externalKey is set on the new session
    assert seen[0][1] == token
    # the id travels in the header only: no cookie
    assert set_cookies(res) == []
    assert STORE.sessions[token]["string"] == ";"

    res = await request(app, headers={TOKEN_KEY: token})
    assert res.status_code == 200
    assert res.text == ";"
    assert seen[1][1] == seen[1][2] == token
