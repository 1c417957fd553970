"""Port of koajs/session test/index.test.ts ("SessionOptions schema / should have a valid
schema"): the defaults koa's schema snapshot records, seen through ``session.options``."""

from __future__ import annotations

from ._harness import make_app, request


async def test_session_options_schema_should_have_a_valid_schema():
    """SessionOptions schema / should have a valid schema"""
    seen = {}

    async def handler(ctx):
        opts = ctx.session.options
        for name in (
            "key",
            "auto_commit",
            "overwrite",
            "http_only",
            "signed",
            "rolling",
            "renew",
            "same_site",
            "algorithm",
            "max_age",
        ):
            seen[name] = getattr(opts, name)
        ctx.body = ""

    res = await request(make_app(handler))
    assert res.status_code == 200
    # koa's snapshot: key, autoCommit, overwrite, httpOnly, signed, rolling, renew
    assert seen["key"] == "koa.sess"
    assert seen["auto_commit"] is True
    assert seen["overwrite"] is True
    assert seen["http_only"] is True
    assert seen["signed"] is True
    assert seen["rolling"] is False
    assert seen["renew"] is False
    # koa leaves these unset; ours:
    assert seen["same_site"] == "lax"  # deviation 4
    assert seen["algorithm"] == "sha256"  # deviation 5
    assert seen["max_age"] == 86400  # deviation 2: one day, in seconds (deviation 1)
