"""Interop with Node's koa-session 7.0.2, on the wire, in both directions.

Each test runs the reference Koa app (``koa_app/server.js``, started by the ``koa_server``
fixture) and our middleware around a tiny plain-ASGI app with the same routes:

    GET /set?name=value..   set string fields      GET /get    describe the session
    GET /setjson?data=JSON  set typed fields       GET /clear  remove the session

and moves cookies (and, in store mode, Redis entries) from one to the other. Signatures are
checked against an independent keygrip implementation below, not against the package's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from koasession import SessionMiddleware

if TYPE_CHECKING:
    from .conftest import KoaFactory, KoaServer

COOKIE = "koa.sess"
SIG = "koa.sess.sig"
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
DAY_MS = 86_400_000
DAY_S = 86_400

# Strong keys (no allow_weak_keys needed) for most tests; the spec's vectors use "a" and "b".
KEY_1 = "1o-tbIwRCKeWoGmppVMuZgn0ikihsJoxlhCaKb4hNjo"
KEY_2 = "fYVco0bCR3c1G0EDdD_xF6UdBZYU_7SlKJjiAbEHTyA"
OLD_KEY = "eVqyLNYXGqf78njz4LTjzzzaPn27Q_g7ToRoARCLuhY"

# Spec test vectors (keys ['a', 'b'], cookie name koa.sess).
VECTOR_DATA = {"message": "hello"}
VECTOR_EXPIRE = 1_700_000_000_000
VECTOR_VALUE = (
    "eyJtZXNzYWdlIjoiaGVsbG8iLCJfZXhwaXJlIjoxNzAwMDAwMDAwMDAwLCJfbWF4QWdlIjo4NjQwMDAwMH0="
)
VECTOR_SIG_A = "ntlnTN4AbrwGPBBNFQbSbY7B2Oc"
VECTOR_SIG_B = "BzaHh3J8y624cmlqXxeCF30us6o"
VECTOR_REMOVAL_SIG_A = "OutgMohMu21khLGNzdTgaP9EjPI"

ALGORITHMS = ["sha1", "sha256"]
SIG_LENGTH = {"sha1": 27, "sha256": 43}


# --------------------------------------------------------------------------------------------
# Helpers: an independent keygrip, Set-Cookie parsing, payload decoding
# --------------------------------------------------------------------------------------------


def keygrip_sign(key: str, data: str, algorithm: str = "sha1") -> str:
    """keygrip's sign(): HMAC of ``data``, base64url without padding."""
    digest = hmac.new(key.encode(), data.encode(), getattr(hashlib, algorithm)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def decode_payload(value: str) -> dict[str, Any]:
    """The JSON object inside a koa-session cookie value (strict standard base64)."""
    result = json.loads(base64.b64decode(value, validate=True))
    assert isinstance(result, dict)
    return result


@dataclass
class SetCookie:
    line: str
    name: str
    value: str
    attrs: dict[str, str | bool] = field(default_factory=dict)

    @classmethod
    def parse(cls, line: str) -> SetCookie:
        first, *rest = line.split(";")
        name, _, value = first.partition("=")
        attrs: dict[str, str | bool] = {}
        for part in rest:
            attr, sep, attr_value = part.strip().partition("=")
            attrs[attr.lower()] = attr_value if sep else True
        return cls(line=line, name=name.strip(), value=value.strip(), attrs=attrs)


def set_cookies(response: httpx.Response) -> dict[str, SetCookie]:
    """The response's Set-Cookie lines by cookie name (a later line for a name wins)."""
    return {c.name: c for c in map(SetCookie.parse, response.headers.get_list("set-cookie"))}


def pair(response: httpx.Response) -> dict[str, str]:
    """The session cookie and its signature from a response, as a request cookie jar."""
    cookies = set_cookies(response)
    assert COOKIE in cookies, f"no {COOKIE} cookie in {response.headers.get_list('set-cookie')}"
    jar = {COOKIE: cookies[COOKIE].value}
    if SIG in cookies:
        jar[SIG] = cookies[SIG].value
    return jar


def without_max_age(line: str) -> str:
    """A Set-Cookie line minus any Max-Age attribute (koa never writes one; see
    test_set_cookie_lines_equal_koa_but_for_max_age), so the rest can be compared exactly."""
    return "; ".join(p for p in line.split("; ") if not p.lower().startswith("max-age="))


def cookie_header(jar: dict[str, str]) -> dict[str, str]:
    return {"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}


# --------------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------------


async def koa_get(
    server: KoaServer,
    path: str,
    jar: dict[str, str] | None = None,
    *,
    fake_now: int | None = None,
) -> httpx.Response:
    """One request to the Koa app, with exactly the cookies given (no client-side jar)."""
    headers = cookie_header(jar or {})
    if fake_now is not None:
        headers["x-fake-now"] = str(fake_now)
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == 200, f"koa {path}: {response.status_code} {response.text}"
    return response


def describe(session: Any) -> dict[str, Any]:
    if session is None:
        return {"session": None, "isNew": None, "maxAge": None, "externalKey": None}
    return {
        "session": dict(session),
        "isNew": session.is_new,
        "maxAge": session.max_age,
        "externalKey": session.external_key,
    }


async def plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI app with the same routes as the Koa app."""
    assert scope["type"] == "http"
    query = parse_qsl(scope["query_string"].decode(), keep_blank_values=True)
    path = scope["path"]
    status = 200
    if path == "/set":
        for name, value in query:
            scope["session"][name] = value
    elif path == "/setjson":
        for name, value in json.loads(dict(query)["data"]).items():
            scope["session"][name] = value
    elif path == "/clear":
        scope["session"] = None
    elif path != "/get":
        status = 404
    body = json.dumps(describe(scope.get("session"))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass
class PySide:
    """Our middleware around :func:`plain_app`."""

    app: Any

    async def get(self, path: str, jar: dict[str, str] | None = None) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get(path, headers=cookie_header(jar or {}))
        assert response.status_code == 200, f"py {path}: {response.status_code} {response.text}"
        return response


def py_side(keys: list[str], **options: Any) -> PySide:
    options.setdefault("algorithm", "sha1")
    options.setdefault("max_age", DAY_S)
    # Byte-for-byte comparisons with koa-session: koa never writes _created.
    options.setdefault("record_created", False)
    if any(len(k.encode()) < 32 for k in keys):
        options["allow_weak_keys"] = True
    return PySide(SessionMiddleware(plain_app, keys=keys, **options))


@contextmanager
def frozen_clock(monkeypatch: pytest.MonkeyPatch, epoch_ms: int) -> Iterator[None]:
    """Pin the wall clock (time.time / time.time_ns) our middleware reads."""
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: epoch_ms / 1000)
        patch.setattr(time, "time_ns", lambda: epoch_ms * 1_000_000)
        yield


# --------------------------------------------------------------------------------------------
# (i)-(iii) cookies both ways, keygrip SHA-1 and SHA-256
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_python_cookie_is_accepted_by_koa(koa_server: KoaFactory, algorithm: str) -> None:
    py = py_side([KEY_1, KEY_2], algorithm=algorithm)
    koa = koa_server(keys=[KEY_1, KEY_2], algorithm=algorithm, max_age=DAY_MS)

    minted = await py.get("/set?" + urlencode({"views": "1", "user": "alice"}))
    jar = pair(minted)
    assert len(jar[SIG]) == SIG_LENGTH[algorithm]
    assert jar[SIG] == keygrip_sign(KEY_1, f"{COOKIE}={jar[COOKIE]}", algorithm)

    seen = (await koa_get(koa, "/get", jar)).json()
    assert seen["session"] == {"views": "1", "user": "alice"}
    assert seen["isNew"] is False
    assert seen["maxAge"] == DAY_MS


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_koa_cookie_is_read_by_python(koa_server: KoaFactory, algorithm: str) -> None:
    py = py_side([KEY_1, KEY_2], algorithm=algorithm)
    koa = koa_server(keys=[KEY_1, KEY_2], algorithm=algorithm, max_age=DAY_MS)

    minted = await koa_get(koa, "/set?" + urlencode({"views": "1", "user": "alice"}))
    jar = pair(minted)
    assert len(jar[SIG]) == SIG_LENGTH[algorithm]

    read = await py.get("/get", jar)
    assert read.json()["session"] == {"views": "1", "user": "alice"}
    assert read.json()["isNew"] is False
    assert read.json()["maxAge"] == DAY_S
    # Reading an unchanged, valid, first-key session writes nothing (as koa).
    assert read.headers.get_list("set-cookie") == []

    # A change made here goes back to koa.
    changed = await py.get("/set?views=2", jar)
    seen = (await koa_get(koa, "/get", pair(changed))).json()
    assert seen["session"] == {"views": "2", "user": "alice"}
    assert seen["isNew"] is False


async def test_no_algorithm_downgrade_either_way(koa_server: KoaFactory) -> None:
    """A SHA-1 cookie is not a SHA-256 cookie: both sides start a new session (no downgrade)."""
    koa_sha1 = koa_server(keys=[KEY_1], algorithm="sha1", max_age=DAY_MS)
    py_sha256 = py_side([KEY_1], algorithm="sha256")
    read = await py_sha256.get("/get", pair(await koa_get(koa_sha1, "/set?x=1")))
    assert read.json()["session"] == {}
    assert read.json()["isNew"] is True

    koa_sha256 = koa_server(keys=[KEY_1], algorithm="sha256", max_age=DAY_MS)
    py_sha1 = py_side([KEY_1], algorithm="sha1")
    seen = (await koa_get(koa_sha256, "/get", pair(await py_sha1.get("/set?x=1")))).json()
    assert seen["session"] == {}
    assert seen["isNew"] is True


# --------------------------------------------------------------------------------------------
# (iv) key rotation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_cookie_signed_by_koa_with_old_key_is_read_and_resigned(
    koa_server: KoaFactory, algorithm: str
) -> None:
    old_koa = koa_server(keys=[OLD_KEY], algorithm=algorithm, max_age=DAY_MS)
    jar = pair(await koa_get(old_koa, "/set?" + urlencode({"user": "alice"})))
    assert jar[SIG] == keygrip_sign(OLD_KEY, f"{COOKIE}={jar[COOKIE]}", algorithm)

    py = py_side([KEY_1, OLD_KEY], algorithm=algorithm)
    read = await py.get("/get", jar)
    assert read.json()["session"] == {"user": "alice"}
    assert read.json()["isNew"] is False

    reissued = set_cookies(read)
    assert SIG in reissued, "a signature made with the second key must be re-issued"
    new_sig = reissued[SIG]
    assert new_sig.value == keygrip_sign(KEY_1, f"{COOKIE}={jar[COOKIE]}", algorithm)
    assert new_sig.attrs.get("path") == "/"
    assert "expires" in new_sig.attrs
    # The value itself is unchanged (only the signature is re-issued).
    if COOKIE in reissued:
        assert reissued[COOKIE].value == jar[COOKIE]

    # The browser now holds (value, new signature): a koa app that knows only the new key
    # accepts it.
    new_koa = koa_server(keys=[KEY_1], algorithm=algorithm, max_age=DAY_MS)
    seen = (await koa_get(new_koa, "/get", {COOKIE: jar[COOKIE], SIG: new_sig.value})).json()
    assert seen["session"] == {"user": "alice"}
    assert seen["isNew"] is False


async def test_cookie_signed_here_with_old_key_is_resigned_by_koa(koa_server: KoaFactory) -> None:
    old_py = py_side([OLD_KEY])
    jar = pair(await old_py.get("/set?user=bob"))

    koa = koa_server(keys=[KEY_1, OLD_KEY], algorithm="sha1", max_age=DAY_MS)
    response = await koa_get(koa, "/get", jar)
    assert response.json()["session"] == {"user": "bob"}
    koa_sig = set_cookies(response)[SIG].value
    assert koa_sig == keygrip_sign(KEY_1, f"{COOKIE}={jar[COOKIE]}")

    # ... and both sides agree on the re-issued signature.
    py_read = await py_side([KEY_1, OLD_KEY]).get("/get", jar)
    assert set_cookies(py_read)[SIG].value == koa_sig
    new_py = py_side([KEY_1])
    read = await new_py.get("/get", {COOKIE: jar[COOKIE], SIG: koa_sig})
    assert read.json()["session"] == {"user": "bob"}


# --------------------------------------------------------------------------------------------
# (v) 'session' lifetimes
# --------------------------------------------------------------------------------------------


async def test_koa_session_lifetime_cookie_is_read_here(koa_server: KoaFactory) -> None:
    koa = koa_server(keys=[KEY_1], algorithm="sha1", max_age="session")
    minted = await koa_get(koa, "/set?user=carol")
    cookies = set_cookies(minted)
    assert "expires" not in cookies[COOKIE].attrs
    payload = decode_payload(cookies[COOKIE].value)
    assert payload == {"user": "carol", "_session": True}

    # Read by a middleware configured with a finite lifetime: the cookie's own lifetime wins.
    read = await py_side([KEY_1], max_age=DAY_S).get("/get", pair(minted))
    assert read.json()["session"] == {"user": "carol"}
    assert read.json()["isNew"] is False
    assert read.json()["maxAge"] == "session"

    # Changed here, it stays a browser-session cookie.
    changed = await py_side([KEY_1], max_age=DAY_S).get("/set?user=dave", pair(minted))
    out = set_cookies(changed)[COOKIE]
    assert "expires" not in out.attrs
    assert "max-age" not in out.attrs
    assert decode_payload(out.value) == {"user": "dave", "_session": True}


async def test_python_session_lifetime_cookie_is_read_by_koa(koa_server: KoaFactory) -> None:
    py = py_side([KEY_1], max_age="session")
    minted = await py.get("/set?user=erin")
    cookies = set_cookies(minted)
    for name in (COOKIE, SIG):
        assert "expires" not in cookies[name].attrs, cookies[name].line
        assert "max-age" not in cookies[name].attrs, cookies[name].line
    assert decode_payload(cookies[COOKIE].value) == {"user": "erin", "_session": True}

    koa = koa_server(keys=[KEY_1], algorithm="sha1", max_age=DAY_MS)
    seen = (await koa_get(koa, "/get", pair(minted))).json()
    assert seen == {
        "session": {"user": "erin"},
        "isNew": False,
        "maxAge": "session",
        "externalKey": None,
    }


# --------------------------------------------------------------------------------------------
# (vi) removal
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("same_site", ["lax", None])
async def test_removal_cookies_match_koa(koa_server: KoaFactory, same_site: str | None) -> None:
    koa = koa_server(keys=[KEY_1, KEY_2], algorithm="sha1", max_age=DAY_MS)
    py = py_side([KEY_1, KEY_2], same_site=same_site)

    koa_jar = pair(await koa_get(koa, "/set?user=frank"))
    koa_removal = set_cookies(await koa_get(koa, "/clear", koa_jar))
    py_jar = pair(await py.get("/set?user=frank"))
    cleared = await py.get("/clear", py_jar)
    assert cleared.json()["session"] is None
    py_removal = set_cookies(cleared)

    assert sorted(py_removal) == sorted(koa_removal) == [COOKIE, SIG]
    for name in (COOKIE, SIG):
        ours, theirs = py_removal[name], koa_removal[name]
        assert ours.value == theirs.value
        assert ours.attrs["expires"] == theirs.attrs["expires"] == EPOCH
        assert ours.attrs["path"] == theirs.attrs["path"] == "/"
        assert ours.attrs.get("httponly") is theirs.attrs.get("httponly") is True
        if same_site is None:
            # Without our SameSite default the lines are byte-identical (but for Max-Age).
            assert without_max_age(ours.line) == theirs.line
    assert py_removal[COOKIE].value == ""
    assert py_removal[SIG].value == keygrip_sign(KEY_1, f"{COOKIE}=")

    # Each side treats the other's removal cookies as "no session".
    after_py = {COOKIE: py_removal[COOKIE].value, SIG: py_removal[SIG].value}
    assert (await koa_get(koa, "/get", after_py)).json()["session"] == {}
    after_koa = {COOKIE: koa_removal[COOKIE].value, SIG: koa_removal[SIG].value}
    assert (await py.get("/get", after_koa)).json()["session"] == {}


async def test_removal_signature_matches_spec_vector(koa_server: KoaFactory) -> None:
    koa = koa_server(keys=["a", "b"], algorithm="sha1", max_age=DAY_MS)
    py = py_side(["a", "b"], same_site=None)
    koa_removal = set_cookies(await koa_get(koa, "/clear", pair(await koa_get(koa, "/set?x=1"))))
    py_removal = set_cookies(await py.get("/clear", pair(await py.get("/set?x=1"))))
    assert koa_removal[SIG].value == py_removal[SIG].value == VECTOR_REMOVAL_SIG_A


# --------------------------------------------------------------------------------------------
# (vii) byte-identical cookies
# --------------------------------------------------------------------------------------------

BYTE_IDENTICAL_CASES = {
    "strings": {"user": "alice", "views": "1"},
    "typed": {"n": 42, "big": 9007199254740991, "neg": -7, "half": 1.5, "ok": True, "no": None},
    "nested": {"cart": {"items": [1, 2, {"sku": "A-1", "qty": 3}], "open": False}, "tags": []},
    "unicode": {"name": "Zoë ✓ 日本語 🍪", "quote": 'a"b\\c</script>', "ctl": "\x01\t\n"},
}


@pytest.mark.parametrize("data", BYTE_IDENTICAL_CASES.values(), ids=BYTE_IDENTICAL_CASES.keys())
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_cookies_are_byte_identical(
    koa_server: KoaFactory,
    monkeypatch: pytest.MonkeyPatch,
    data: dict[str, Any],
    algorithm: str,
) -> None:
    now_ms = (int(time.time()) - 60) * 1000 + 123
    koa = koa_server(keys=[KEY_1, KEY_2], algorithm=algorithm, max_age=DAY_MS)
    py = py_side([KEY_1, KEY_2], algorithm=algorithm, same_site=None)

    with frozen_clock(monkeypatch, now_ms):
        ours = set_cookies(await py.get("/setjson?" + urlencode({"data": json.dumps(data)})))
    assert decode_payload(ours[COOKIE].value) == {
        **data,
        "_expire": now_ms + DAY_MS,
        "_maxAge": DAY_MS,
    }
    theirs = set_cookies(
        await koa_get(koa, "/setjson?" + urlencode({"data": json.dumps(data)}), fake_now=now_ms)
    )

    assert ours[COOKIE].value == theirs[COOKIE].value
    assert ours[SIG].value == theirs[SIG].value
    assert without_max_age(ours[COOKIE].line) == theirs[COOKIE].line
    assert without_max_age(ours[SIG].line) == theirs[SIG].line


async def test_spec_vectors_byte_identical(
    koa_server: KoaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    now_ms = VECTOR_EXPIRE - DAY_MS
    koa = koa_server(keys=["a", "b"], algorithm="sha1", max_age=DAY_MS)
    theirs = set_cookies(await koa_get(koa, "/set?message=hello", fake_now=now_ms))
    assert theirs[COOKIE].value == VECTOR_VALUE
    assert theirs[SIG].value == VECTOR_SIG_A

    py = py_side(["a", "b"], same_site=None)
    with frozen_clock(monkeypatch, now_ms):
        ours = set_cookies(await py.get("/set?message=hello"))
    assert ours[COOKIE].value == VECTOR_VALUE
    assert ours[SIG].value == VECTOR_SIG_A
    assert without_max_age(ours[COOKIE].line) == theirs[COOKIE].line
    assert without_max_age(ours[SIG].line) == theirs[SIG].line

    # The same payload signed with the second key verifies on both sides (and is re-signed).
    old_jar = {COOKIE: VECTOR_VALUE, SIG: VECTOR_SIG_B}
    with frozen_clock(monkeypatch, now_ms + 1000):
        read = await py.get("/get", old_jar)
    assert read.json()["session"] == VECTOR_DATA
    assert set_cookies(read)[SIG].value == VECTOR_SIG_A
    koa_read = await koa_get(koa, "/get", old_jar, fake_now=now_ms + 1000)
    assert koa_read.json()["session"] == VECTOR_DATA
    assert set_cookies(koa_read)[SIG].value == VECTOR_SIG_A


async def test_set_cookie_lines_equal_koa_but_for_max_age(
    koa_server: KoaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """koa (cookies 0.9) writes only ``expires``; we add ``max-age`` beside it (README
    deviation 12, security.md case 17: Max-Age and Expires agree). Everything else in the full
    Set-Cookie lines of a save and of a removal equals koa's, and max-age agrees with expires."""
    now_ms = VECTOR_EXPIRE - DAY_MS
    koa = koa_server(keys=["a", "b"], algorithm="sha1", max_age=DAY_MS)
    py = py_side(["a", "b"], same_site=None)
    koa_saved = await koa_get(koa, "/set?message=hello", fake_now=now_ms)
    koa_removed = await koa_get(koa, "/clear", pair(koa_saved), fake_now=now_ms)
    with frozen_clock(monkeypatch, now_ms):
        py_saved = await py.get("/set?message=hello")
        py_removed = await py.get("/clear", pair(py_saved))
    for ours, theirs, max_age in (
        (py_saved, koa_saved, DAY_MS // 1000),
        (py_removed, koa_removed, 0),
    ):
        our_lines = ours.headers.get_list("set-cookie")
        theirs_lines = theirs.headers.get_list("set-cookie")
        assert [without_max_age(line) for line in our_lines] == theirs_lines
        assert all(f"; max-age={max_age};" in line for line in our_lines)
        assert not any("max-age" in line for line in theirs.headers.get_list("set-cookie"))


# --------------------------------------------------------------------------------------------
# (viii) store mode: one Redis shared through koa-redis
# --------------------------------------------------------------------------------------------


def redis_store_class() -> Any:
    try:
        module = importlib.import_module("koasession.stores.redis")
    except ImportError:
        pytest.skip("RedisStore not implemented yet")
    cls = getattr(module, "RedisStore", None)
    if cls is None:
        pytest.skip("RedisStore not implemented yet")
    return cls


@asynccontextmanager
async def py_store_side(redis_url: str, prefix: str, **options: Any) -> AsyncIterator[PySide]:
    """Our middleware in store mode on the same Redis keys as koa-redis (no extra namespace)."""
    import redis.asyncio as aioredis

    cls = redis_store_class()
    client = aioredis.Redis.from_url(redis_url)
    store = cls(client, key_prefix="")
    try:
        yield py_side([KEY_1], store=store, prefix=prefix, **options)
    finally:
        await client.aclose()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


async def test_store_session_written_by_koa_redis_is_read_here(
    koa_server: KoaFactory, redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    koa = koa_server(
        keys=[KEY_1], max_age=60_000, store="redis", redis_url=redis_url, prefix=redis_prefix
    )
    minted = await koa_get(koa, "/set?" + urlencode({"user": "grace", "views": "1"}))
    jar = pair(minted)
    sid = jar[COOKIE]
    assert sid.startswith(redis_prefix)
    assert minted.json()["externalKey"] == sid
    entry = json.loads(redis_client.get(sid))
    assert {k: entry[k] for k in ("user", "views", "_maxAge")} == {
        "user": "grace",
        "views": "1",
        "_maxAge": 60_000,
    }
    assert 0 < redis_client.ttl(sid) <= 70  # ceil((60000 + 10000) / 1000)

    async with py_store_side(redis_url, redis_prefix, max_age=60) as py:
        read = await py.get("/get", jar)
        assert read.json()["session"] == {"user": "grace", "views": "1"}
        assert read.json()["isNew"] is False
        assert read.json()["externalKey"] == sid

        # Changed here: same id, Redis entry updated in koa's format, koa sees the change.
        changed = await py.get("/set?views=2", jar)
        if COOKIE in set_cookies(changed):
            assert set_cookies(changed)[COOKIE].value == sid
        entry = json.loads(redis_client.get(sid))
        assert entry["views"] == "2"
        assert entry["_maxAge"] == 60_000
        assert isinstance(entry["_expire"], int)
        assert entry["_expire"] > time.time() * 1000
        seen = (await koa_get(koa, "/get", jar)).json()
        assert seen["session"] == {"user": "grace", "views": "2"}

        # Removal here destroys the shared entry: koa starts over.
        await py.get("/clear", jar)
        assert redis_client.get(sid) is None
        seen = (await koa_get(koa, "/get", jar)).json()
        assert seen["session"] == {}
        assert seen["isNew"] is True


async def test_store_session_written_here_is_read_by_koa_redis(
    koa_server: KoaFactory, redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    koa = koa_server(
        keys=[KEY_1], max_age=60_000, store="redis", redis_url=redis_url, prefix=redis_prefix
    )
    async with py_store_side(redis_url, redis_prefix, max_age=60) as py:
        minted = await py.get("/set?" + urlencode({"user": "heidi"}))
        jar = pair(minted)
        sid = jar[COOKIE]
        assert sid.startswith(redis_prefix)
        assert minted.json()["externalKey"] == sid
        raw = redis_client.get(sid)
        assert raw is not None, f"no Redis entry under the session id {sid!r}"
        entry = json.loads(raw)
        assert entry["user"] == "heidi"
        assert entry["_maxAge"] == 60_000
        assert isinstance(entry["_expire"], int)
        assert 0 < redis_client.ttl(sid) <= 70

        seen = (await koa_get(koa, "/get", jar)).json()
        assert seen["session"] == {"user": "heidi"}
        assert seen["isNew"] is False
        assert seen["externalKey"] == sid

        # Changed by koa, read back here.
        await koa_get(koa, "/set?views=5", jar)
        read = await py.get("/get", jar)
        assert read.json()["session"] == {"user": "heidi", "views": "5"}

        # Removed by koa: the entry is gone, and this side starts over.
        await koa_get(koa, "/clear", jar)
        assert redis_client.get(sid) is None
        read = await py.get("/get", jar)
        assert read.json()["session"] == {}
        assert read.json()["isNew"] is True


async def test_store_session_lifetime_written_here_is_read_by_koa_redis(
    koa_server: KoaFactory, redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    koa = koa_server(
        keys=[KEY_1], max_age=60_000, store="redis", redis_url=redis_url, prefix=redis_prefix
    )
    async with py_store_side(redis_url, redis_prefix, max_age="session") as py:
        minted = await py.get("/set?user=ivan")
        cookies = set_cookies(minted)
        assert "expires" not in cookies[COOKIE].attrs
        sid = cookies[COOKIE].value
        entry = json.loads(redis_client.get(sid))
        assert entry == {"user": "ivan", "_session": True}
        # Deviation 10: a finite TTL, where koa would hand koa-redis the string 'session'.
        assert redis_client.ttl(sid) > 0

        seen = (await koa_get(koa, "/get", pair(minted))).json()
        assert seen["session"] == {"user": "ivan"}
        assert seen["isNew"] is False
        assert seen["maxAge"] == "session"


async def test_koa_redis_cannot_store_session_lifetimes(
    koa_server: KoaFactory, redis_url: str, redis_prefix: str
) -> None:
    """Reference behaviour behind deviation 10: koa-session 7.0.2 passes maxAge 'session' to
    koa-redis 4.0.1, which sends it to SETEX as the TTL, and Redis refuses it (the write fails,
    the request errors). So 'session' store entries can only come from this side."""
    koa = koa_server(
        keys=[KEY_1], max_age="session", store="redis", redis_url=redis_url, prefix=redis_prefix
    )
    async with httpx.AsyncClient(base_url=koa.url, trust_env=False, timeout=10) as client:
        response = await client.get("/set?user=judy")
    assert response.status_code == 500
    assert "not an integer" in response.json()["error"]


async def test_underscore_keys_set_here_are_invisible_to_koa(koa_server: KoaFactory) -> None:
    """Deviation 3 on the wire: we keep ``_csrf``; koa's toJSON() drops every ``_`` key, so a
    Koa service sharing the cookie cannot see it (and loses it when it rewrites the session)."""
    py = py_side([KEY_1])
    minted = await py.get("/setjson?" + urlencode({"data": json.dumps({"_csrf": "t", "u": 1})}))
    assert decode_payload(pair(minted)[COOKIE])["_csrf"] == "t"
    assert (await py.get("/get", pair(minted))).json()["session"] == {"_csrf": "t", "u": 1}
    koa = koa_server(keys=[KEY_1], algorithm="sha1", max_age=DAY_MS)
    assert (await koa_get(koa, "/get", pair(minted))).json()["session"] == {"u": 1}


# --------------------------------------------------------------------------------------------
# _created (record_created=True, our default): what koa-session does with it
# --------------------------------------------------------------------------------------------


async def test_created_is_hidden_from_koa_and_dropped_by_its_saves(koa_server: KoaFactory) -> None:
    py = py_side([KEY_1, KEY_2], algorithm="sha256", record_created=True)
    koa = koa_server(keys=[KEY_1, KEY_2], algorithm="sha256", max_age=DAY_MS)

    minted = await py.get("/set?" + urlencode({"user": "alice"}))
    jar = pair(minted)
    assert isinstance(decode_payload(jar[COOKIE])["_created"], int)

    # koa accepts the cookie and keeps _created out of toJSON()...
    seen = (await koa_get(koa, "/get", jar)).json()
    assert seen["session"] == {"user": "alice"} and seen["isNew"] is False
    # ...and a save by koa drops it, while the data survives the round trip back here.
    changed = pair(await koa_get(koa, "/set?views=2", jar))
    assert "_created" not in decode_payload(changed[COOKIE])
    read = await py.get("/get", changed)
    assert read.json()["session"] == {"user": "alice", "views": "2"}
