"""Encryption at rest (``encrypt=True`` in store mode), on every store, through the middleware."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from koasession import SessionMiddleware
from koasession.crypto import MAX_TOKEN_LENGTH

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

KEY = "oB3v7kZ1Jq9XmW2pT6cR0yHs4dLfN8aU5gEiQtVxYzM"
OLD_KEY = "Hq2Wf8sLz0Pk5Rn3Tb7Yv1Jc9Xm4Dg6Ue2Ai8Qo5Ks"
HASH_KEY = "Lw4Nc7Vb1Xz9Mq3Pf6Jh0Td2Rs8Yk5Ga1Ue7Io4Hn"
SECRET = "mauve-otter-9417"
COOKIE = "koa.sess"
#: Session data whose sealed value is several times the cookie bound (crypto.MAX_TOKEN_LENGTH).
BIG = "".join(f"{n:05d}" for n in range(20_000))


def make_app(store: Any, keys: list[str], **options: Any) -> tuple[SessionMiddleware, list[Any]]:
    events: list[Any] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        session = scope["session"]
        query = parse_qs(scope["query_string"].decode())
        if "set" in query:
            session["secret"] = query["set"][0]
        if "big" in query:  # too large for a cookie: what the store is for
            session["big"] = BIG
        body = json.dumps(dict(session)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    app = SessionMiddleware(
        inner,
        keys=keys,
        store=store,
        encrypt=True,
        on_event=lambda name, payload: events.append((name, payload)),
        **options,
    )
    return app, events


async def call(app: Any, path: str, cookie: str | None = None) -> httpx.Response:
    headers = {"cookie": cookie} if cookie else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


def session_id(response: httpx.Response) -> str:
    for line in response.headers.get_list("set-cookie"):
        name, _, rest = line.partition("=")
        if name == COOKIE:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no session cookie in {response.headers}")


def cookie_for(*responses: httpx.Response) -> str:
    """The Cookie header a browser sends after ``responses``, in order."""
    jar: dict[str, str] = {}
    for response in responses:
        for line in response.headers.get_list("set-cookie"):
            name, _, value = line.split(";", 1)[0].partition("=")
            jar[name] = value
    return "; ".join(f"{name}={value}" for name, value in jar.items() if value)


async def test_a_dump_of_a_hashed_encrypted_store_holds_neither_ids_nor_data(
    harness: Harness,
) -> None:
    store = await harness.make(hash_ids=True, hash_key=HASH_KEY)
    app, _ = make_app(store, [KEY])
    first = await call(app, f"/?set={SECRET}")
    sid = session_id(first)

    dump = json.dumps(await harness.dump(store))
    assert dump != "{}"
    assert sid not in dump
    assert SECRET not in dump
    assert "secret" not in dump  # the data's keys are sealed too

    again = await call(app, "/", cookie_for(first))
    assert again.json() == {"secret": SECRET}


async def test_a_sealed_value_moved_to_another_id_does_not_open(harness: Harness) -> None:
    store = await harness.make()
    app, events = make_app(store, [KEY])
    alice = await call(app, "/?set=alice")
    mallory = await call(app, "/?set=mallory")
    alice_value = await store.get(session_id(alice))
    assert alice_value is not None and set(alice_value) == {"_sealed"}
    await store.set(session_id(mallory), alice_value, 3600)

    swapped = await call(app, "/", cookie_for(mallory))
    assert swapped.json() == {}
    assert ("invalid", "stored value cannot be decrypted") in [
        (name, payload.get("reason")) for name, payload in events
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [("/?set=kept", {"secret": "kept"}), ("/?big=1", {"big": BIG})],
    ids=["small", "larger-than-a-cookie"],
)
async def test_values_sealed_with_an_old_key_are_read_and_resealed(
    harness: Harness, query: str, expected: dict[str, str]
) -> None:
    store = await harness.make()
    old_app, _ = make_app(store, [OLD_KEY])
    first = await call(old_app, query)
    sid = session_id(first)
    old_value = await store.get(sid)

    rotated_app, events = make_app(store, [KEY, OLD_KEY])
    read = await call(rotated_app, "/", cookie_for(first))
    assert read.json() == expected
    assert "rotated" in [name for name, _ in events]
    assert await store.get(sid) != old_value

    new_only, _ = make_app(store, [KEY])
    again = await call(new_only, "/", cookie_for(first, read))
    assert again.json() == expected


async def test_a_plaintext_value_is_not_trusted_when_encrypt_is_on(harness: Harness) -> None:
    store = await harness.make()
    app, events = make_app(store, [KEY])
    first = await call(app, "/?set=x")
    sid = session_id(first)
    await store.set(sid, {"secret": "planted"}, 3600)

    assert (await call(app, "/", cookie_for(first))).json() == {}
    assert ("invalid", "stored value is not sealed") in [
        (name, payload.get("reason")) for name, payload in events
    ]


async def test_a_session_too_large_for_a_cookie_is_sealed_and_read_back(harness: Harness) -> None:
    store = await harness.make(hash_ids=True, hash_key=HASH_KEY)
    app, events = make_app(store, [KEY])
    first = await call(app, f"/?set={SECRET}&big=1")
    stored = await store.get(session_id(first))
    assert stored is not None and set(stored) == {"_sealed"}
    assert len(stored["_sealed"]) > 4 * MAX_TOKEN_LENGTH
    assert BIG[:100] not in json.dumps(await harness.dump(store))

    again = await call(app, "/", cookie_for(first))
    assert again.json() == {"secret": SECRET, "big": BIG}
    assert [name for name, _ in events if name in ("invalid", "tampered")] == []
