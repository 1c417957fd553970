"""Hostile input from outside (issues 9 §7, 15, 16 §5): deep nesting, huge numbers, ids.

Every case drives a real ASGI app through httpx. A reject is: status 200, a fresh empty session,
an event, and no traceback; a save of data the load side would refuse raises a clear error.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _services import DATABASE_URL, REDIS_URL, unavailable
from koasession import MemoryStore

from ._helpers import (
    K1,
    NAME,
    Harness,
    b64json,
    by_name,
    jar_from,
    make,
    payload,
    read_handler,
    set_cookies,
    signed_pair,
)

RUN_ID = secrets.token_hex(4)


def assert_fresh(h: Harness, resp: httpx.Response, event: str = "invalid") -> None:
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"data": {}, "is_new": True}
    assert event in h.names(), h.names()
    assert not [c for c in set_cookies(resp) if c.name == NAME and not c.expired]


def nested_text(levels: int) -> str:
    """A session JSON object whose ``d`` holds ``levels`` more levels of arrays and objects."""
    opening = "".join("[" if i % 2 else '{"x":' for i in range(levels))
    closing = "".join("]" if i % 2 else "}" for i in reversed(range(levels)))
    return '{"d":' + opening + "1" + closing + f',"_expire":{payload()["_expire"]}}}'


def nested_value(levels: int) -> Any:
    value: Any = 1
    for i in reversed(range(levels)):
        value = [value] if i % 2 else {"x": value}
    return value


def seal_v1(key: str, name: str, plaintext: bytes) -> str:
    """An encrypted cookie value, format version 1, built from the spec, not the package."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    def derive(info: bytes, length: int) -> bytes:
        kdf = HKDF(
            algorithm=hashes.SHA256(), length=length, salt=b"koasession HKDF salt", info=info
        )
        return kdf.derive(key.encode())

    header = b"\x01" + derive(b"koasession/v1/key-id", 4)
    nonce = os.urandom(12)
    sealed = AESGCM(derive(b"koasession/v1/cookie-encryption", 32)).encrypt(
        nonce, plaintext, header + name.encode()
    )
    return base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=").decode()


# =========================================================================== deep nesting


DEEP = [33, 500, 950, 5000]


@pytest.mark.parametrize("levels", DEEP)
async def test_deeply_nested_signed_payload_is_a_fresh_session(levels: int) -> None:
    value = base64.b64encode(nested_text(levels).encode()).decode()
    h = make()
    resp = await h.get(signed_pair(value), raise_app_exceptions=False)
    assert_fresh(h, resp)


@pytest.mark.parametrize("levels", DEEP)
async def test_deeply_nested_unsigned_payload_is_a_fresh_session(levels: int) -> None:
    value = base64.b64encode(nested_text(levels).encode()).decode()
    h = make(signed=False, keys=None)
    resp = await h.get({NAME: value}, raise_app_exceptions=False)
    assert_fresh(h, resp)


@pytest.mark.parametrize("levels", DEEP)
async def test_deeply_nested_encrypted_payload_is_a_fresh_session(levels: int) -> None:
    # Sealed with the app's own key per the format in crypto.py's docstring: only the nesting
    # is wrong, the token authenticates.
    forged = seal_v1(K1, NAME, nested_text(levels).encode())
    h = make(encrypt=True)
    resp = await h.get({NAME: forged}, raise_app_exceptions=False)
    assert resp.status_code == 200
    assert resp.json() == {"data": {}, "is_new": True}
    assert h.names()
    # the same construction with shallow data is a session: the forgery itself is sound
    shallow = json.dumps(payload({"user": "ann"})).encode()
    resp = await h.get({NAME: seal_v1(K1, NAME, shallow)})
    assert resp.json() == {"data": {"user": "ann"}, "is_new": False}


@pytest.mark.parametrize("levels", DEEP)
async def test_deeply_nested_custom_decode_result_is_a_fresh_session(levels: int) -> None:
    h = make(decode=lambda value: {"d": nested_value(levels)}, encode=lambda data: "x")
    resp = await h.get(signed_pair("anything"), raise_app_exceptions=False)
    assert_fresh(h, resp)


async def test_nesting_inside_strings_does_not_count() -> None:
    data = {"s": "[" * 100 + "{" * 100, "t": '\\"[[[[' * 20, "l": [[["]]]"]]]}
    h = make()
    resp = await h.get(signed_pair(b64json(payload(data))))
    assert resp.json() == {"data": data, "is_new": False}


async def test_nesting_at_the_limit_loads() -> None:
    h = make()
    text = nested_text(31)  # the top-level object plus 31 levels: exactly 32
    resp = await h.get(signed_pair(base64.b64encode(text.encode()).decode()))
    assert resp.json()["data"] == {"d": nested_value(31)}


class _DeepStore:
    """A custom store that returns whatever was planted, without any checks of its own."""

    def __init__(self, data: Any) -> None:
        self.data = data

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        return self.data

    async def set(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def destroy(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.mark.parametrize("levels", DEEP)
async def test_deeply_nested_custom_store_result_is_a_fresh_session(levels: int) -> None:
    h = make(store=_DeepStore({"d": nested_value(levels), "_expire": payload()["_expire"]}))
    resp = await h.get(signed_pair("some-session-id"), raise_app_exceptions=False)
    assert resp.status_code == 200
    assert resp.json() == {"data": {}, "is_new": True}
    assert "invalid" in h.names()


@pytest.fixture(params=["memory", "redis", "postgres", "sqlite"])
async def real_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    kind = request.param
    if kind == "memory":
        yield MemoryStore()
        return
    if kind == "redis":
        from koasession.stores.redis import RedisStore

        prefix = f"kssec:{RUN_ID}:{secrets.token_hex(4)}:"
        store: Any = RedisStore(REDIS_URL, key_prefix=prefix)
        try:
            await store.client.ping()
        except Exception as exc:  # pragma: no cover - depends on the machine
            await store.close()
            unavailable(f"Redis unreachable at {REDIS_URL}: {exc}")
        yield store
        async for key in store.client.scan_iter(match=f"{prefix}*"):
            await store.client.delete(key)
        await store.close()
        return
    if kind == "postgres":
        from koasession.stores.postgres import PostgresStore

        store = PostgresStore(DATABASE_URL, table=f"ks_sec_{RUN_ID}_{secrets.token_hex(3)}")
        try:
            await store.get("probe")
        except Exception as exc:  # pragma: no cover - depends on the machine
            await store.close()
            unavailable(f"PostgreSQL unreachable at {DATABASE_URL}: {exc}")
        yield store
        await store.drop_table()
        await store.close()
        return
    from koasession.stores.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "sessions.db")
    yield store
    await store.close()


@pytest.mark.parametrize("levels", [33, 600])
async def test_deeply_nested_store_entry_is_a_fresh_session(real_store: Any, levels: int) -> None:
    # Planted directly (a compromised writer, or an older version that allowed it).
    await real_store.set("planted-id", json.loads(nested_text(levels)), 60)
    h = make(store=real_store)
    resp = await h.get(signed_pair("planted-id"), raise_app_exceptions=False)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"data": {}, "is_new": True}
    # The store reports an unusable entry as a miss; a custom store's deep dict is "invalid".
    assert {"missed", "invalid"} & set(h.names())


# =========================================================================== save-side limit


MODES = ["signed", "unsigned", "encrypted", "store"]


def mode_options(mode: str) -> dict[str, Any]:
    return {
        "signed": {},
        "unsigned": {"signed": False, "keys": None},
        "encrypted": {"encrypt": True},
        "store": {"store": MemoryStore()},
    }[mode]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("levels", [32, 40, 490, 600])
async def test_saving_data_deeper_than_the_load_limit_is_refused(mode: str, levels: int) -> None:
    errors: list[str] = []

    async def write(scope: dict[str, Any], session: Any) -> Any:
        session["d"] = nested_value(levels)
        try:
            await session.save()
        except ValueError as exc:
            errors.append(str(exc))
            session.clear()
        return {}

    h = make(write, **mode_options(mode))
    resp = await h.get()
    assert resp.status_code == 200
    assert len(errors) == 1
    assert f"nested {levels + 1} levels deep; the limit is 32" in errors[0]
    assert not [c for c in set_cookies(resp) if c.name == NAME and not c.expired]


@pytest.mark.parametrize("mode", MODES)
async def test_auto_commit_of_too_deep_data_raises_a_clear_error(mode: str) -> None:
    async def write(scope: dict[str, Any], session: Any) -> Any:
        session["d"] = nested_value(40)
        return {}

    h = make(write, **mode_options(mode))
    with pytest.raises(ValueError, match="the limit is 32"):
        await h.get()


async def test_data_too_deep_to_serialise_at_all_raises_the_same_error() -> None:
    async def write(scope: dict[str, Any], session: Any) -> Any:
        session["d"] = nested_value(100_000)
        return {}

    with pytest.raises(ValueError, match="the limit is 32"):
        await make(write).get()


@pytest.mark.parametrize("mode", MODES)
async def test_data_at_the_limit_is_saved_and_read_back(mode: str) -> None:
    opts = mode_options(mode)

    async def write(scope: dict[str, Any], session: Any) -> Any:
        session["d"] = nested_value(31)
        return {}

    resp = await make(write, **opts).get(https=True)
    jar = jar_from(resp)
    assert NAME in by_name(resp)
    resp = await make(read_handler, **opts).get(jar, https=True)
    assert resp.json() == {"data": {"d": nested_value(31)}, "is_new": False}


# =========================================================================== huge numbers


OUT_OF_RANGE = [99999999999999999999, 10**400, -1, -(10**30), 1e300, 8.64e15 + 1]
TIME_FIELDS = ["_expire", "_maxAge", "_created", "_accessed"]


@pytest.mark.parametrize("field", TIME_FIELDS)
@pytest.mark.parametrize("number", OUT_OF_RANGE, ids=lambda n: str(n)[:12])
async def test_out_of_range_metadata_is_a_fresh_session(field: str, number: Any) -> None:
    data = payload({"user": "mallory"})
    data[field] = number
    value = base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
    for opts in (
        {"renew": True},
        {"rolling": True},
        {"idle_timeout": 60, "absolute_timeout": 3600},
        {},
    ):
        h = make(**opts)
        resp = await h.get(signed_pair(value), raise_app_exceptions=False)
        assert_fresh(h, resp)


@pytest.mark.parametrize("field", TIME_FIELDS)
@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf"), 10**400])
async def test_non_finite_metadata_from_custom_decode_or_store_is_invalid(
    field: str, number: float
) -> None:
    data = payload({"user": "mallory"})
    data[field] = number
    h = make(decode=lambda value: dict(data), encode=lambda d: "x", renew=True)
    resp = await h.get(signed_pair("anything"), raise_app_exceptions=False)
    assert_fresh(h, resp)
    h = make(store=_DeepStore(dict(data)), renew=True, idle_timeout=60)
    resp = await h.get(signed_pair("some-session-id"), raise_app_exceptions=False)
    assert resp.status_code == 200
    assert resp.json() == {"data": {}, "is_new": True}
    assert "invalid" in h.names()


async def test_largest_javascript_date_is_still_a_valid_expiry() -> None:
    data = payload({"user": "ann"}, _expire=8_640_000_000_000_000)
    h = make(renew=True)
    resp = await h.get(signed_pair(b64json(data)))
    assert resp.json() == {"data": {"user": "ann"}, "is_new": False}


# =========================================================================== one id rule


# Every character the id rule allows: visible ASCII but '"', ',', ';', '\' and '|'.
ID_ALPHABET = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\|')
ODD_VALID_IDS = ["u@" + secrets.token_urlsafe(32), ID_ALPHABET, "x", "i" * 200, "{tag}*?'%"]
HOSTILE_IDS = [
    "abc; domain=evil.example; max-age=99999999",
    "abc\r\nSet-Cookie: evil=1",
    "owner|1",
    "has space",
    'dq"x',
    "comma,x",
    "back\\slash",
    "caf\u00e9",
    "nul\x00",
    "i" * 201,
]


class RecordingStore:
    """A custom store with no id checks of its own: whatever it is given, it keeps."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self.gets: list[str] = []

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.gets.append(key)
        return self.entries.get(key)

    async def set(self, key: str, data: Any, *args: Any, **kwargs: Any) -> None:
        self.entries[key] = data

    async def destroy(self, key: str, *args: Any, **kwargs: Any) -> None:
        self.entries.pop(key, None)


async def write_handler(scope: dict[str, Any], session: Any) -> Any:
    session["n"] = session.get("n", 0) + 1
    return {"data": dict(session), "is_new": session.is_new}


@pytest.mark.parametrize("sid", ODD_VALID_IDS, ids=lambda s: s[:12])
async def test_every_id_the_rule_allows_is_kept_by_every_store(real_store: Any, sid: str) -> None:
    h = make(write_handler, store=real_store, genid=lambda ctx: sid)
    resp = await h.get()
    jar = jar_from(resp)
    assert jar[NAME] == sid
    resp = await h.get(jar)
    assert resp.json() == {"data": {"n": 2}, "is_new": False}
    assert "invalid" not in h.names()
    assert await real_store.get(sid) is not None


async def test_prefixed_ids_are_kept_in_cookie_and_store_modes(real_store: Any) -> None:
    h = make(write_handler, store=real_store, prefix="u@")
    jar = jar_from(await h.get())
    assert jar[NAME].startswith("u@")
    for n in (2, 3):
        resp = await h.get(jar)
        assert resp.status_code == 200
        assert resp.json() == {"data": {"n": n}, "is_new": False}
    assert "invalid" not in h.names()


@pytest.mark.parametrize("sid", HOSTILE_IDS, ids=repr)
async def test_genid_result_that_breaks_the_rule_is_refused_where_it_is_made(sid: str) -> None:
    store = RecordingStore()
    h = make(write_handler, store=store, genid=lambda ctx: sid)
    with pytest.raises(ValueError, match=r"genid returned .* not a valid session id"):
        await h.get()
    resp = await h.get(raise_app_exceptions=False)
    assert resp.status_code == 500
    assert resp.headers.get_list("set-cookie") == []
    assert store.entries == {}


@pytest.mark.parametrize("result", [None, "", 5, b"bytes"], ids=repr)
async def test_genid_result_that_is_not_a_string_is_refused(result: Any) -> None:
    h = make(write_handler, store=RecordingStore(), genid=lambda ctx: result)
    with pytest.raises(TypeError, match="genid must return a non-empty string"):
        await h.get()


async def test_genid_is_checked_on_regenerate_too() -> None:
    ids = iter(["good-id", "abc; domain=evil.example"])

    async def login(scope: dict[str, Any], session: Any) -> Any:
        await session.regenerate()
        return {}

    h = make(login, store=RecordingStore(), genid=lambda ctx: next(ids))
    with pytest.raises(ValueError, match="not a valid session id"):
        await h.get()


@pytest.mark.parametrize("sid", HOSTILE_IDS, ids=repr)
async def test_validly_signed_cookie_with_a_hostile_id_never_reaches_the_store(sid: str) -> None:
    store = RecordingStore()
    store.entries[sid] = payload({"user": "mallory"})
    h = make(store=store)
    value = sid.replace(";", "").replace("\r\n", "")  # what a Cookie header can carry
    resp = await h.get(signed_pair(value) if value == sid else {NAME: value})
    assert resp.status_code == 200
    assert resp.json() == {"data": {}, "is_new": True}
    assert store.gets == []


class HeaderKey:
    """external_key reading the id from a request header, as koa's externalKey examples do."""

    def __init__(self) -> None:
        self.set_calls: list[str] = []

    def get(self, ctx: Any) -> Any:
        for name, value in ctx.scope["headers"]:
            if name == b"x-session":
                return value.decode("latin-1")
        return None

    def set(self, ctx: Any, value: str) -> None:
        self.set_calls.append(value)


@pytest.mark.parametrize("sid", HOSTILE_IDS[2:], ids=repr)
async def test_external_key_result_that_breaks_the_rule_is_a_fresh_session(sid: str) -> None:
    store = RecordingStore()
    store.entries[sid] = payload({"user": "mallory"})
    key = HeaderKey()
    h = make(write_handler, store=store, external_key=key)
    header = sid.encode("latin-1", "replace").decode("latin-1")
    resp = await h.get(headers=[("x-session", header)])
    assert resp.json() == {"data": {"n": 1}, "is_new": True}
    assert "invalid" in h.names()
    assert store.gets == []
    assert len(key.set_calls) == 1 and key.set_calls[0] != sid


@pytest.mark.parametrize("result", [5, b"bytes", ["id"]], ids=repr)
async def test_external_key_get_returning_a_non_string_is_a_clear_error(result: Any) -> None:
    class Broken(HeaderKey):
        def get(self, ctx: Any) -> Any:
            return result

    h = make(write_handler, store=RecordingStore(), external_key=Broken())
    with pytest.raises(TypeError, match=r"external_key\.get must return the session id as a str"):
        await h.get()


@pytest.mark.parametrize(
    "value",
    ["x; domain=evil.example", "a\r\nSet-Cookie: evil=1", "nul\x00", "tab\tx", "snow\u2603"],
    ids=repr,
)
async def test_custom_encode_result_cannot_inject_into_set_cookie(value: str) -> None:
    h = make(write_handler, encode=lambda data: value, decode=lambda v: {})
    with pytest.raises(ValueError, match="would inject into the Set-Cookie line"):
        await h.get()


async def test_custom_encode_of_raw_json_is_written_as_koa_writes_it() -> None:
    # Node's cookies module accepts quotes and commas in a value; only ';' and controls are out.
    h = make(write_handler, encode=lambda data: json.dumps(data), decode=json.loads)
    jar = jar_from(await h.get())
    assert json.loads(jar[NAME])["n"] == 1
    resp = await h.get(jar)
    assert resp.json()["data"] == {"n": 2}
