"""The shared store suite: every guarantee of issue 3, run against every store.

The store contract itself (round trip, write modes, no resurrection, strict ids, TTL, hashed ids,
owner index) is the published suite, :mod:`koasession.testing.store_suite`, run here against
every bundled store; the tests below add what only our stores promise or what needs access to
their internals (no server call for an invalid id, purge, ``close``).

Each test runs for memory, redis, postgres, sqlite, mysql (and redis_cluster when a local
cluster can be started). Calls with ``ctx=Ctx(loaded_key=...)`` play the middleware's part: the
id loaded for the request decides between update-only and insert-only (see
koasession.stores.base).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import pytest

from koasession.errors import ConfigurationError
from koasession.stores import StoredSession, valid_id
from koasession.testing.store_suite import CHECKS, FEATURES, Check, ContractViolation

from .conftest import HASH_KEY, Harness

pytestmark = pytest.mark.timeout(60)


@dataclass
class Ctx:
    """The part of the request context a store reads."""

    loaded_key: str | None = None


NEW = Ctx(None)  # a fresh session: insert only

INVALID_IDS = [
    "",
    "a" * 201,
    "has space",
    "semi;colon",
    "new\nline",
    "nul\x00",
    "comma,x",
    'dq"',
    "del\x7f",
    "owner|1",
    "caf\u00e9",
    "\u0430\u0431\u0432",
    "emoji\U0001f600",
    "tab\t",
    "back\\slash",
]


def sid(n: int | str) -> str:
    return f"sid-{n}-Abc_123.x:y+z/w=="


# -- the published contract --------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=str)
async def test_store_contract(harness: Harness, check: Check) -> None:
    assert await check(harness.make, harness.dump, features=FEATURES) is True


async def test_contract_catches_a_store_that_resurrects(harness: Harness) -> None:
    """The suite can fail: a store whose updates upsert breaks no_resurrection."""

    async def make(**options: Any) -> Any:
        store = await harness.make(**options)
        real_set = store.set

        async def upserting_set(key: str, data: Any, max_age: Any = None, **kw: Any) -> Any:
            kw.pop("ctx", None)
            return await real_set(key, data, max_age, **kw)

        store.set = upserting_set
        return store

    by_name = {check.name: check for check in CHECKS}
    with pytest.raises(ContractViolation, match="no_resurrection: a save after a logout"):
        await by_name["no_resurrection"](make, harness.dump)


# -- data --------------------------------------------------------------------------------------


async def test_non_json_data_is_refused_and_nothing_written(harness: Harness) -> None:
    store = await harness.make()
    for bad in ({"x": math.nan}, {"x": math.inf}, {"x": object()}):
        with pytest.raises((ValueError, TypeError)):
            await store.set(sid(1), bad, 60, ctx=NEW)
    assert await store.get(sid(1)) is None


# -- TTL ---------------------------------------------------------------------------------------


async def test_update_extends_ttl(harness: Harness) -> None:
    store = await harness.make()
    await store.set(sid(1), {"v": 1}, 1, ctx=NEW)
    await asyncio.sleep(0.5)
    assert await store.set(sid(1), {"v": 2}, 3, ctx=Ctx(sid(1))) is True
    await asyncio.sleep(1.0)
    assert await store.get(sid(1)) == {"v": 2}


# -- strict ids --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", INVALID_IDS, ids=repr)
async def test_invalid_ids_never_reach_the_server(harness: Harness, bad: str) -> None:
    assert not valid_id(bad)
    store = await harness.make()
    harness.forbid_server(store)
    assert await store.get(bad) is None
    await store.destroy(bad)  # silently nothing
    with pytest.raises(ValueError):
        await store.set(bad, {"v": 1}, 60, ctx=NEW)


async def test_non_string_ids_are_misses(harness: Harness) -> None:
    store = await harness.make()
    harness.forbid_server(store)
    for bad in (None, 5, b"bytes", ["x"]):
        assert await store.get(bad) is None


async def test_longest_valid_id_and_full_alphabet(harness: Harness) -> None:
    store = await harness.make()
    alphabet = "ABCXYZabcxyz0189._:+/=-"
    long_id = (alphabet * 10)[:200]
    assert valid_id(long_id)
    await store.set(long_id, {"v": 1}, 60, ctx=NEW)
    assert await store.get(long_id) == {"v": 1}


# -- hashed ids: configuration ----------------------------------------------------------------


async def test_hash_ids_configuration_errors(harness: Harness) -> None:
    with pytest.raises(ConfigurationError):
        await harness.make(hash_ids=True)
    with pytest.raises(ConfigurationError):
        await harness.make(hash_ids=True, hash_key="short")
    with pytest.raises(ConfigurationError):
        await harness.make(hash_key=HASH_KEY)


# -- owner index -------------------------------------------------------------------------------


def _uid(data: dict[str, Any]) -> Any:
    return data.get("uid")


@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hashed"])
async def test_owner_index(harness: Harness, hashed: bool) -> None:
    extra: dict[str, Any] = {"hash_ids": True, "hash_key": HASH_KEY} if hashed else {}
    store = await harness.make(owner=_uid, **extra)
    for i in range(3):
        await store.set(sid(f"u1-{i}"), {"uid": 1, "i": i}, 60, ctx=NEW)
    await store.set(sid("u2"), {"uid": "2"}, 60, ctx=NEW)
    await store.set(sid("anon"), {"cart": []}, 60, ctx=NEW)

    listed = await store.list_owner(1)
    assert all(isinstance(s, StoredSession) for s in listed)
    assert sorted(s.data["i"] for s in listed) == [0, 1, 2]
    assert all(s.expires_at is not None for s in listed)
    if hashed:
        assert not any("u1" in s.key for s in listed)
    assert [s.data for s in await store.list_owner("2")] == [{"uid": "2"}]
    assert await store.list_owner("nobody") == []

    # An owner change moves the session between owners.
    await store.set(sid("u1-2"), {"uid": 2, "i": 2}, 60, ctx=Ctx(sid("u1-2")))
    assert sorted(s.data["i"] for s in await store.list_owner(1)) == [0, 1]
    assert len(await store.list_owner(2)) == 2
    # A destroyed session leaves the index.
    await store.destroy(sid("u1-1"))
    assert [s.data["i"] for s in await store.list_owner(1)] == [0]

    # Log out everywhere: owner 2's sessions go, in-flight saves cannot bring them back.
    assert await store.destroy_owner(2) == 2
    assert await store.get(sid("u2")) is None
    assert await store.get(sid("u1-2")) is None
    assert await store.set(sid("u2"), {"uid": "2", "late": 1}, 60, ctx=Ctx(sid("u2"))) is False
    assert await store.list_owner(2) == []
    assert await store.get(sid("u1-0")) == {"uid": 1, "i": 0}
    assert await store.get(sid("anon")) == {"cart": []}
    assert await store.destroy_owner(2) == 0


async def test_owner_index_skips_expired(harness: Harness) -> None:
    store = await harness.make(owner=_uid)
    await store.set(sid("a"), {"uid": 5}, 1, ctx=NEW)
    await store.set(sid("b"), {"uid": 5}, 60, ctx=NEW)
    await asyncio.sleep(1.3)
    assert [s.data for s in await store.list_owner(5)] == [{"uid": 5}]
    assert await store.destroy_owner(5) == 1


async def test_owner_index_drops_expired_sessions_on_write(harness: Harness) -> None:
    if harness.kind not in ("redis", "redis_cluster"):
        pytest.skip("only Redis keeps the owner index apart from the sessions")
    store = await harness.make(owner=_uid)
    for i in range(40):
        await store.set(sid(f"old{i}"), {"uid": 7}, 1, ctx=NEW)
    await asyncio.sleep(2.2)
    await store.set(sid("live0"), {"uid": 7}, 60, ctx=NEW)
    await store.set(sid("live1"), {"uid": 7}, 60, ctx=NEW)
    dump = await harness.dump(store)
    index = [value for key, value in dump.items() if key.endswith("owner|7")]
    # Only the two live sessions are left in the index, without list_owner having run.
    assert len(index) == 1
    assert "live0" in index[0] and "live1" in index[0] and "old" not in index[0]


async def test_owner_methods_need_owner_option(harness: Harness) -> None:
    store = await harness.make()
    with pytest.raises(ConfigurationError):
        await store.destroy_owner(1)
    with pytest.raises(ConfigurationError):
        await store.list_owner(1)


# -- purge (SQL stores; MemoryStore has purge_expired too) -------------------------------------


async def test_purge_expired(harness: Harness) -> None:
    if harness.kind not in ("postgres", "sqlite", "mysql", "memory"):
        pytest.skip("Redis expires entries itself")
    store = await harness.make(**({} if harness.kind == "memory" else {"purge_every": 0}))
    for i in range(5):
        await store.set(sid(f"old{i}"), {"i": i}, 1, ctx=NEW)
    for i in range(2):
        await store.set(sid(f"new{i}"), {"i": i}, 60, ctx=NEW)
    await asyncio.sleep(1.3)
    assert len(await harness.dump(store)) == 7  # expired rows linger until purged
    if harness.kind == "memory":
        assert await store.purge_expired() == 5
    else:
        assert await store.purge_expired(2) == 2
        assert await store.purge_expired() == 3
        assert await store.purge_expired() == 0
    assert sorted(await harness.dump(store)) == sorted(
        await _stored_keys(store, [sid("new0"), sid("new1")])
    )


async def _stored_keys(store: Any, ids: list[str]) -> list[str]:
    prefix = getattr(store, "key_prefix", "")
    return [prefix + store._stored_key(i) for i in ids]


async def test_automatic_bounded_purge(harness: Harness) -> None:
    if not harness.is_sql:
        pytest.skip("automatic purge is for the SQL stores")
    store = await harness.make(purge_every=3, purge_limit=2)
    for i in range(5):
        await store.set(sid(f"old{i}"), {"i": i}, 1, ctx=NEW)  # writes 1..5; purge at 3: none
    await asyncio.sleep(1.3)
    assert len(await harness.dump(store)) == 5
    await store.set(sid("w6"), {}, 60, ctx=NEW)  # write 6: purges at most 2
    assert len(await harness.dump(store)) == 4
    for i in range(3):
        await store.set(sid(f"w{7 + i}"), {}, 60, ctx=NEW)  # write 9 purges 2 more
    assert len(await harness.dump(store)) == 4 + 3 - 2


# -- concurrency -------------------------------------------------------------------------------


async def test_concurrent_inserts_of_distinct_ids(harness: Harness) -> None:
    store = await harness.make()
    results = await asyncio.gather(*(store.set(sid(i), {"i": i}, 60, ctx=NEW) for i in range(200)))
    assert all(results)
    got = await asyncio.gather(*(store.get(sid(i)) for i in range(200)))
    assert got == [{"i": i} for i in range(200)]


async def test_concurrent_updates_of_one_id_end_in_one_of_the_writes(harness: Harness) -> None:
    store = await harness.make()
    await store.set(sid(1), {"i": -1}, 60, ctx=NEW)
    ctx = Ctx(sid(1))
    results = await asyncio.gather(
        *(store.set(sid(1), {"i": i, "pad": "x" * i}, 60, ctx=ctx) for i in range(200))
    )
    assert all(results)
    final = await store.get(sid(1))
    assert final is not None
    assert final == {"i": final["i"], "pad": "x" * final["i"]}
    assert 0 <= final["i"] < 200


# -- lifecycle ---------------------------------------------------------------------------------


async def test_async_context_manager_and_close(harness: Harness) -> None:
    store = await harness.make()
    async with store as same:
        assert same is store
        await store.set(sid(1), {"v": 1}, 60)
        assert await store.get(sid(1)) == {"v": 1}
    await store.close()  # closing twice is harmless
