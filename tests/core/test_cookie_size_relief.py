"""``compress=True`` and ``chunk=True`` in cookie mode, through the middleware."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from koasession.cookiesize import MAX_CHUNKS
from koasession.errors import CookieTooLargeError

from ._app import client, cookie_pairs, set_cookies, signed_cookie, wrap

BIG = secrets.token_hex(3000)  # 6000 characters of incompressible text


def size_app(**options: Any) -> Any:
    def handler(scope: dict[str, Any]) -> Any:
        session = scope["session"]
        query = scope["query_string"].decode()
        if scope["path"] == "/fill":
            session["blob"] = "ab" * int(query) if query.isdigit() else BIG
        elif scope["path"] == "/small":
            session["blob"] = "tiny"
        elif scope["path"] == "/logout":
            scope["session"] = None
        return dict(session) if scope["session"] is not None else None

    return wrap(handler, **options)


def jar_after(*responses: Any, jar: dict[str, str] | None = None) -> dict[str, str]:
    jar = dict(jar or {})
    for response in responses:
        for line in set_cookies(response):
            name, _, value = line.split(";", 1)[0].partition("=")
            if value and "1970" not in line:
                jar[name] = value
            else:
                jar.pop(name, None)
    return jar


def header(jar: dict[str, str]) -> dict[str, str]:
    return {"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}


async def test_compressed_cookie_is_shorter_and_reads_back() -> None:
    app = size_app(compress=True)
    async with client(app) as c:
        first = await c.get("/fill?2000")
        value = cookie_pairs(first)["koa.sess"]
        assert value.startswith("~") and len(value) < 400
        back = await c.get("/", headers=header(jar_after(first)))
    assert back.json() == {"blob": "ab" * 2000}


async def test_a_forged_compressed_value_is_refused() -> None:
    # The signature covers the exact value, marker included.
    events: list[str] = []
    app = size_app(compress=True, on_event=lambda name, payload: events.append(name))
    async with client(app) as c:
        response = await c.get(
            "/", headers={"cookie": signed_cookie({"a": 1}).replace("eyJ", "~eyJ", 1)}
        )
    assert response.json() == {}
    assert "tampered" in events  # the signature covers the exact value


async def test_chunked_session_survives_and_each_line_fits() -> None:
    app = size_app(chunk=True)
    async with client(app) as c:
        first = await c.get("/fill")
        lines = set_cookies(first)
        assert all(len(line) < 4096 for line in lines)
        names = set(cookie_pairs(first))
        assert {"koa.sess.1", "koa.sess.2", "koa.sess.sig"} <= names
        assert "koa.sess" not in names
        jar = jar_after(first)
        back = await c.get("/", headers=header(jar))
        assert back.json() == {"blob": BIG}

        small = await c.get("/small", headers=header(jar))
        jar = jar_after(small, jar=jar)
        assert set(jar) == {"koa.sess", "koa.sess.sig"}  # stale chunks expired
        assert (await c.get("/", headers=header(jar))).json() == {"blob": "tiny"}


async def test_a_tampered_or_missing_chunk_is_refused() -> None:
    app = size_app(chunk=True)
    async with client(app) as c:
        jar = jar_after(await c.get("/fill"))
        broken = dict(jar, **{"koa.sess.2": jar["koa.sess.2"][::-1]})
        assert (await c.get("/", headers=header(broken))).json() == {}
        missing = {k: v for k, v in jar.items() if k != "koa.sess.1"}
        assert (await c.get("/", headers=header(missing))).json() == {}


async def test_logout_expires_every_chunk() -> None:
    app = size_app(chunk=True)
    async with client(app) as c:
        jar = jar_after(await c.get("/fill"))
        out = await c.get("/logout", headers=header(jar))
    assert jar_after(out, jar=jar) == {}


async def test_compress_and_chunk_together() -> None:
    app = size_app(compress=True, chunk=True)
    async with client(app) as c:
        first = await c.get("/fill")  # incompressible: stays base64, chunked
        assert "koa.sess.2" in cookie_pairs(first)
        back = await c.get("/", headers=header(jar_after(first)))
    assert back.json() == {"blob": BIG}


async def test_without_chunk_a_big_session_is_too_large() -> None:
    app = size_app()
    async with client(app) as c:
        with pytest.raises(CookieTooLargeError):
            await c.get("/fill")


async def test_turning_compress_off_still_reads_compressed_cookies() -> None:
    async with client(size_app(compress=True)) as c:
        jar = jar_after(await c.get("/fill?2000"))
    async with client(size_app()) as c:
        back = await c.get("/", headers=header(jar))
    assert back.json() == {"blob": "ab" * 2000}


# -- a stray whole cookie next to chunks (cookie tossing) ---------------------------------------
# A sibling subdomain, or an old cookie on another path, can put `koa.sess` next to a chunked
# session. `koa.sess.sig` is then the chunks' manifest, which the stray value cannot verify
# against: that must not cost the chunked session its manifest.


@pytest.mark.parametrize("stray", ["x", "e30=", ""])
async def test_a_stray_whole_cookie_does_not_expire_the_chunk_manifest(stray: str) -> None:
    events: list[tuple[str, Any]] = []
    app = size_app(chunk=True, on_event=lambda name, payload: events.append((name, payload)))
    async with client(app) as c:
        jar = jar_after(await c.get("/fill"))
        assert "koa.sess.2" in jar and "koa.sess" not in jar
        tossed = {"cookie": f"koa.sess={stray}; " + header(jar)["cookie"]}
        read = await c.get("/", headers=tossed)
        assert read.json() == {"blob": BIG}
        assert set_cookies(read) == []  # nothing expired, nothing written
        # The stray cookie is still reported, with its value and why it was refused.
        assert [(name, p["value"], p["reason"]) for name, p in events] == [
            ("tampered", stray, "bad signature")
        ]
        again = await c.get("/", headers=header(jar_after(read, jar=jar)))
        assert again.json() == {"blob": BIG}
        # Chunks that do not verify keep koa's rule: the failed signature is expired.
        broken = dict(jar, **{"koa.sess.2": jar["koa.sess.2"][::-1]})
        refused = await c.get(
            "/", headers={"cookie": f"koa.sess={stray}; " + header(broken)["cookie"]}
        )
    assert refused.json() == {}
    assert [line.split(";")[0] for line in set_cookies(refused)] == ["koa.sess.sig="]


# -- junk chunk cookies -------------------------------------------------------------------------
# Nothing signs a chunk cookie's name: a request can carry `koa.sess.N` for any N. Only the
# indices the middleware could have written (1..MAX_CHUNKS) are read or expired.

JUNK = "; ".join(f"koa.sess.{i}=A" for i in range(1, 3000))


@pytest.mark.parametrize("path", ["/small", "/fill", "/logout"])
async def test_junk_chunk_cookies_get_a_bounded_response(path: str) -> None:
    async with client(size_app(chunk=True)) as c:
        response = await c.get(path, headers={"cookie": JUNK + "; koa.sess.sig=1.x"})
    lines = set_cookies(response)
    names = [line.partition("=")[0] for line in lines]
    assert len(names) == len(set(names))  # one line per cookie
    expired = {name for name, line in zip(names, lines, strict=True) if "max-age=0" in line}
    chunks = {name for name in names if name not in expired} - {"koa.sess", "koa.sess.sig"}
    assert expired == {f"koa.sess.{i}" for i in range(len(chunks) + 1, MAX_CHUNKS + 1)} | (
        {"koa.sess", "koa.sess.sig"} if path == "/logout" else set()
    )
    assert sum(map(len, lines)) < 4096 * (MAX_CHUNKS + 2)


async def test_chunk_cookies_past_the_limit_do_not_shadow_a_session() -> None:
    app = size_app(chunk=True)
    async with client(app) as c:
        jar = jar_after(await c.get("/fill"))
        junk = dict(jar, **{f"koa.sess.{MAX_CHUNKS + 1}": "A", "koa.sess.9999": "A"})
        response = await c.get("/", headers=header(junk))
    assert response.json() == {"blob": BIG}
    assert set_cookies(response) == []
