"""The store contract as a test suite: prove that a session store is safe to give the middleware.

Every bundled store passes it; a third-party store proves with it what the middleware relies on
(see :mod:`koasession.stores.base`):

- **round trip**: what ``set`` saved, ``get`` returns (a copy), ``destroy`` removes it;
- **write modes**: with ``ctx.loaded_key`` equal to the id, ``set`` only updates an entry that
  still exists (``False`` otherwise); with any other id it only inserts, and raises
  :class:`~koasession.errors.SessionIdCollision` when the id is taken;
- **no resurrection**: a save that finishes after a logout (``destroy``) writes nothing, even
  when many race with it;
- **strict ids**: unknown ids create nothing, ids the middleware would never issue are refused
  (``get`` misses, ``set`` raises ``ValueError``) and never stored;
- **TTL honoured**: an entry is gone once its lifetime ends, for reads and for updates;
- optional features, checked when the store declares them: ``"hash_ids"`` (the store keeps no
  raw id: ``hash_ids=True, hash_key=...``), ``"owner"`` (``owner=``, ``list_owner``,
  ``destroy_owner``) and ``"owner_sessions"`` (the "where you are signed in" API:
  ``list_owner(owner, current=id)`` with opaque ``handle``, ``device``, ``created_at``,
  ``last_seen`` and ``is_current``; ``revoke(owner, handle)``; ``destroy_owner(owner, keep=id)``;
  also with ``hash_ids=True``) and ``"touch"`` (``touch(key, max_age, fields=..., ctx=...)``
  sets the metadata fields and keeps every other key as stored; a missing entry stays missing)
  and ``"merge"`` (``merge(key, changed, deleted, max_age, ctx=...)`` sets and removes top-level
  keys and keeps the others; concurrent merges of different keys all land; a missing entry stays
  missing).

The suite needs two coroutines from you: ``make(**options)`` returns a new store over empty
storage (the options are the features' constructor arguments), and ``dump(store)`` returns what
the storage holds, raw, as a mapping from the key the store wrote to its value. Run everything
with :func:`run_store_suite`, or one :class:`Check` per test (they are in :data:`CHECKS`)::

    import pytest
    from koasession.testing.store_suite import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=str)
    async def test_store_contract(check):
        await check(make_my_store, dump_my_store, features={"owner"})

A check that fails raises :class:`ContractViolation` saying which guarantee broke. The TTL
check sleeps about 1.5 seconds; the others take milliseconds on a local server.

The suite runs on asyncio, or on trio for a store written for it (``trio.run``, pytest-trio, or
anyio's trio backend): its sleeps and concurrent calls go through whichever is running.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, SessionIdCollision
from ..ids import is_valid_id

__all__ = [
    "CHECKS",
    "FEATURES",
    "Check",
    "ContractViolation",
    "Dump",
    "Make",
    "run_store_suite",
]

#: ``make(**options)``: a new store over empty storage.
Make = Callable[..., Awaitable[Any]]
#: ``dump(store)``: the raw contents of the store's storage, keyed as the store wrote them.
Dump = Callable[[Any], Awaitable[Mapping[str, Any]]]

#: The optional features a store may declare.
FEATURES = frozenset({"hash_ids", "owner", "owner_sessions", "touch", "merge"})

# A key long enough for stores that check it (the bundled ones want 32 bytes).
_HASH_KEY = "store-suite-hash-key-0123456789abcdef"

_INVALID_IDS = (
    "",
    "a" * 201,
    "has space",
    "semi;colon",
    "new\nline",
    "nul\x00",
    "comma,x",
    'dq"',
    "owner|1",
    "caf\u00e9",
    "emoji\U0001f600",
    "back\\slash",
)


class ContractViolation(AssertionError):
    """A store broke a guarantee of the store contract; the message says which."""


@dataclass(frozen=True)
class _Ctx:
    """The part of the request context a store reads: the id loaded for this request."""

    loaded_key: str | None = None


_NEW = _Ctx(None)  # a fresh session: insert only


def _sid(n: object) -> str:
    # Every character class the id alphabet allows, so a store that escapes or truncates ids
    # is caught.
    return f"sid-{n}-Abc_123.x:y+z/w=="


def _expect(condition: object, message: str) -> None:
    # Not ``assert``: the suite must keep checking under ``python -O``.
    if not condition:
        raise ContractViolation(message)


def _trio() -> Any:
    """trio, when the suite runs under it rather than asyncio."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio = sys.modules.get("trio")
        if trio is not None:
            return trio
        raise RuntimeError("the store suite runs under asyncio or trio") from None
    return None


async def _sleep(seconds: float) -> None:
    trio = _trio()
    await (asyncio.sleep(seconds) if trio is None else trio.sleep(seconds))


async def _gather(*calls: Awaitable[Any]) -> list[Any]:
    """The results of ``calls`` run concurrently, in order, or the first error one raised (as
    ``asyncio.gather`` does; under trio once all have ended)."""
    trio = _trio()
    if trio is None:
        return list(await asyncio.gather(*calls))
    results: list[Any] = [None] * len(calls)
    errors: list[Exception] = []

    async def run(index: int, call: Awaitable[Any]) -> None:
        try:
            results[index] = await call
        except Exception as exc:  # raised below, not as a trio ExceptionGroup
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for index, call in enumerate(calls):
            nursery.start_soon(run, index, call)
    if errors:
        raise errors[0]
    return results


async def _call(value: Any) -> Any:
    """Stores may be plain or async (koasession.stores.base): await what needs awaiting."""
    return await value if inspect.isawaitable(value) else value


async def _set(store: Any, key: Any, data: Any, max_age: float | None, ctx: Any = None) -> Any:
    return await _call(store.set(key, data, max_age, rolling=False, changed=True, ctx=ctx))


async def _get(store: Any, key: Any, ctx: Any = _NEW) -> Any:
    return await _call(store.get(key, 60, rolling=False, ctx=ctx))


async def _destroy(store: Any, key: Any, ctx: Any = _NEW) -> None:
    await _call(store.destroy(key, ctx=ctx))


async def _collides(store: Any, key: str, data: Any, ctx: Any) -> bool:
    try:
        await _set(store, key, data, 60, ctx)
    except SessionIdCollision:
        return True
    return False


async def _empty(dump: Dump, store: Any, what: str) -> None:
    contents = await dump(store)
    _expect(not contents, f"{what}, yet the store holds {dict(contents)!r}")


# -- the checks --------------------------------------------------------------------------------


async def _round_trip(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    data: dict[str, Any] = {
        "views": 3,
        "user": {"id": 7, "roles": ["a", "b"]},
        "text": 'semi;colon, CR\r LF\n quote" emoji \U0001f600 \u4e2d\u6587',
        "n": None,
        "f": 1.5,
        "_expire": 1_900_000_000_000,
        "_maxAge": 86_400_000,
    }
    # None is a save too (koa's stores return nothing); only False means "nothing written".
    _expect(await _set(store, _sid(1), data, 60, _NEW) is not False, "set of a new id said False")
    _expect(await _get(store, _sid(1)) == data, "get did not return what set saved")
    _expect(await _get(store, _sid(2)) is None, "get of an id never saved returned data")
    data["user"]["roles"].append("c")  # the caller keeps editing its dict after the save
    got = await _get(store, _sid(1))
    _expect(got["user"]["roles"] == ["a", "b"], "the store kept a reference to the saved dict")
    got["views"] = 99  # editing what get returned must not edit the store
    _expect((await _get(store, _sid(1)))["views"] == 3, "get returned the stored dict itself")
    # Without a request context (application code calling the store), set upserts.
    _expect(await _set(store, _sid(1), {"v": 2}, 60) is not False, "an upsert was refused")
    _expect(await _get(store, _sid(1)) == {"v": 2}, "an upsert without ctx did not overwrite")


async def _destroy_removes(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    await _set(store, _sid(1), {"v": 1}, 60, _NEW)
    await _set(store, _sid(2), {"v": 2}, 60, _NEW)
    await _destroy(store, _sid(1), _Ctx(_sid(1)))
    _expect(await _get(store, _sid(1)) is None, "a destroyed session is still readable")
    _expect(await _get(store, _sid(2)) == {"v": 2}, "destroy removed another session")
    await _destroy(store, _sid(1))  # already gone: not an error
    await _destroy(store, _sid(404))


async def _insert_collision(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    await _set(store, _sid(1), {"owner": "first"}, 60, _NEW)
    _expect(
        await _collides(store, _sid(1), {"owner": "second"}, _NEW),
        "inserting a new session under an existing id did not raise SessionIdCollision",
    )
    # regenerate() saves under an id other than the one loaded: an insert too.
    _expect(
        await _collides(store, _sid(1), {"owner": "third"}, _Ctx(_sid(99))),
        "saving under an id other than ctx.loaded_key overwrote an existing session",
    )
    _expect(
        await _get(store, _sid(1)) == {"owner": "first"},
        "a refused insert changed the existing session",
    )


async def _update_of_missing(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    written = await _set(store, _sid(1), {"v": 1}, 60, _Ctx(_sid(1)))
    _expect(written is False, "an update of a missing session did not return False")
    await _empty(dump, store, "an update of a missing session returned False")


async def _no_resurrection(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    await _set(store, _sid(1), {"views": 1}, 60, _NEW)
    ctx = _Ctx(_sid(1))
    _expect(await _get(store, _sid(1), ctx) == {"views": 1}, "the saved session did not load")
    await _destroy(store, _sid(1), ctx)  # another request logs out...
    # ...then the first request finishes and saves.
    _expect(
        await _set(store, _sid(1), {"views": 2}, 60, ctx) is False,
        "a save after a logout did not return False",
    )
    await _empty(dump, store, "a save after a logout must not bring the session back")


async def _racing_saves(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    await _set(store, _sid(1), {"views": 0}, 60, _NEW)
    ctx = _Ctx(_sid(1))

    async def save(i: int) -> None:
        await _sleep(0.001 * (i % 7))
        await _set(store, _sid(1), {"views": i}, 60, ctx)

    async def logout() -> None:
        await _sleep(0.003)
        await _destroy(store, _sid(1), ctx)

    await _gather(*(save(i) for i in range(40)), logout())
    _expect(await _get(store, _sid(1)) is None, "a save racing a logout recreated the session")


async def _one_insert_wins(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()

    async def insert(i: int) -> int | None:
        return None if await _collides(store, _sid("same"), {"i": i}, _NEW) else i

    winners = [i for i in await _gather(*(insert(i) for i in range(30))) if i is not None]
    _expect(len(winners) == 1, f"{len(winners)} concurrent inserts of one id succeeded, not 1")
    _expect(
        await _get(store, _sid("same")) == {"i": winners[0]},
        "the stored session is not the one whose insert succeeded",
    )


async def _unknown_ids(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    for i in range(20):
        got = await _call(store.get(_sid(f"unknown{i}"), 60, rolling=True, ctx=_NEW))
        _expect(got is None, "get of an unknown id returned data")
    await _empty(dump, store, "reading unknown ids must create nothing")


async def _invalid_ids(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    for bad in _INVALID_IDS:
        if is_valid_id(bad):  # pragma: no cover - guards the list against a changed id rule
            raise ContractViolation(f"the suite's invalid id {bad!r} is valid")
        _expect(await _get(store, bad) is None, f"get({bad!r}) did not miss")
        await _destroy(store, bad)  # silently nothing
        try:
            await _set(store, bad, {"v": 1}, 60, _NEW)
        except ValueError:
            pass
        else:
            raise ContractViolation(f"set({bad!r}) did not raise ValueError")
    for odd in (None, 5, b"bytes", ["x"]):
        _expect(await _get(store, odd) is None, f"get({odd!r}) did not miss")
    await _empty(dump, store, "invalid ids must never be stored")


async def _ttl(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    await _set(store, _sid("short"), {"v": 1}, 1, _NEW)
    await _set(store, _sid("long"), {"v": 2}, 60, _NEW)
    await _set(store, _sid("forever"), {"v": 3}, None, _NEW)
    _expect(await _get(store, _sid("short")) == {"v": 1}, "a 1-second session did not load")
    await _sleep(1.3)
    _expect(await _get(store, _sid("short")) is None, "a session outlived its max_age")
    _expect(await _get(store, _sid("long")) == {"v": 2}, "a 60-second session expired early")
    _expect(await _get(store, _sid("forever")) == {"v": 3}, "max_age=None did not mean forever")
    # An expired session is gone for its in-flight requests too...
    _expect(
        await _set(store, _sid("short"), {"v": 9}, 60, _Ctx(_sid("short"))) is False,
        "an update brought an expired session back",
    )
    _expect(await _get(store, _sid("short")) is None, "an expired session came back")
    # ...and its id may be used again by a new session.
    _expect(
        not await _collides(store, _sid("short"), {"v": 4}, _NEW),
        "an expired id could not be inserted again",
    )
    _expect(await _get(store, _sid("short")) == {"v": 4}, "a reinserted id did not load")


async def _hash_ids(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make(hash_ids=True, hash_key=_HASH_KEY)
    ids = [_sid(f"secret{i}") for i in range(3)]
    for i, key in enumerate(ids):
        await _set(store, key, {"i": i}, 60, _NEW)
    for i, key in enumerate(ids):
        _expect(await _get(store, key) == {"i": i}, "a hashed-id session did not load")
    contents = repr(dict(await dump(store)))
    for key in ids:
        _expect(key.split("-")[1] not in contents, "the raw session id is in the store")
    _expect(await _collides(store, ids[0], {}, _NEW), "hashed ids: no SessionIdCollision")
    await _destroy(store, ids[0])
    _expect(
        await _set(store, ids[0], {"i": 9}, 60, _Ctx(ids[0])) is False,
        "hashed ids: a save after destroy brought the session back",
    )
    other = await make(hash_ids=True, hash_key=_HASH_KEY[::-1])
    _expect(await _get(other, ids[1]) is None, "another hash key read the session")
    try:
        await make(hash_ids=True)
    except ConfigurationError:
        pass
    else:
        raise ContractViolation("hash_ids=True without hash_key was accepted")


def _uid(data: Mapping[str, Any]) -> Any:
    return data.get("uid")


async def _owner(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make(owner=_uid)
    for i in range(3):
        await _set(store, _sid(f"u1-{i}"), {"uid": 1, "i": i}, 60, _NEW)
    await _set(store, _sid("u2"), {"uid": "2"}, 60, _NEW)
    await _set(store, _sid("anon"), {"cart": []}, 60, _NEW)

    async def listed(owner: object) -> list[Any]:
        return sorted(s.data.get("i", -1) for s in await _call(store.list_owner(owner)))

    _expect(await listed(1) == [0, 1, 2], "list_owner did not list the owner's sessions")
    _expect(await listed("2") == [-1], "list_owner mixed owners up")
    _expect(await listed("nobody") == [], "list_owner listed sessions of nobody")
    # An owner change moves the session; a destroyed session leaves the index.
    await _set(store, _sid("u1-2"), {"uid": 2, "i": 2}, 60, _Ctx(_sid("u1-2")))
    await _destroy(store, _sid("u1-1"))
    _expect(await listed(1) == [0], "the owner index kept a moved or destroyed session")
    # Log out everywhere: owner 2's sessions go, and in-flight saves cannot bring them back.
    _expect(await _call(store.destroy_owner(2)) == 2, "destroy_owner did not count 2 sessions")
    _expect(await _get(store, _sid("u2")) is None, "destroy_owner left a session")
    _expect(
        await _set(store, _sid("u2"), {"uid": "2"}, 60, _Ctx(_sid("u2"))) is False,
        "a save after destroy_owner brought the session back",
    )
    _expect(await listed(2) == [], "list_owner still lists destroyed sessions")
    _expect(await _get(store, _sid("u1-0")) == {"uid": 1, "i": 0}, "another owner was logged out")
    _expect(await _get(store, _sid("anon")) == {"cart": []}, "an anonymous session was removed")


async def _touch(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    key = _sid("touch")
    await _set(store, key, {"x": 1, "nested": {"empty": []}, "_expire": 1, "_maxAge": 60000}, 60)
    loaded = _Ctx(key)
    # Another request writes after this one loaded: the refresh must keep that write.
    await _set(store, key, {"x": 2, "nested": {"empty": []}, "_expire": 1, "_maxAge": 60000}, 60)
    fields = {"_expire": 1700000123456, "_maxAge": 120000, "_accessed": 1700000003456}
    touched = await _call(store.touch(key, 120, fields=fields, ctx=loaded))
    _expect(touched is True, f"touch of a live entry returned {touched!r}, not True")
    got = await _get(store, key)
    want = {"x": 2, "nested": {"empty": []}, **fields}
    _expect(got == want, f"after touch the entry is {got!r}, expected {want!r}")
    missing = _sid("touch-missing")
    gone = await _call(store.touch(missing, 60, fields=fields, ctx=_Ctx(missing)))
    _expect(gone is False, f"touch of a missing entry returned {gone!r}, not False")
    await _destroy(store, key)
    after = await _call(store.touch(key, 60, fields=fields, ctx=loaded))
    _expect(after is False, f"touch after destroy returned {after!r}, not False")
    await _empty(dump, store, "touch must never create an entry")


async def _merge(make: Make, dump: Dump, features: Collection[str]) -> None:
    store = await make()
    key = _sid("merge")
    loaded = _Ctx(key)
    base = {"a": 1, "b": 1, "list": [], "dotted.key": "d", "_expire": 1, "_maxAge": 60000}
    await _set(store, key, base, 60)
    changed = {"a": {"nested": None, "empty": []}, "c": "caf\u00e9", "_expire": 1700000123456}
    merged = await _call(store.merge(key, changed, ["b", "absent"], 120, ctx=loaded))
    _expect(merged is True, f"merge of a live entry returned {merged!r}, not True")
    got = await _get(store, key)
    want = {"a": changed["a"], "list": [], "dotted.key": "d", "c": "caf\u00e9"}
    want.update(_expire=1700000123456, _maxAge=60000)
    _expect(got == want, f"after merge the entry is {got!r}, expected {want!r}")

    async def write(i: int) -> Any:
        return await _call(store.merge(key, {f"k{i}": i}, [], 120, ctx=loaded))

    answers = await _gather(*(write(i) for i in range(8)))
    _expect(all(a is True for a in answers), f"concurrent merges returned {answers!r}")
    got = await _get(store, key)
    lost = [i for i in range(8) if (got or {}).get(f"k{i}") != i]
    _expect(not lost, f"concurrent merges of different keys lost k{lost}: {got!r}")
    missing = _sid("merge-missing")
    gone = await _call(store.merge(missing, {"a": 1}, [], 60, ctx=_Ctx(missing)))
    _expect(gone is False, f"merge into a missing entry returned {gone!r}, not False")
    await _destroy(store, key)
    after = await _call(store.merge(key, {"a": 1}, [], 60, ctx=loaded))
    _expect(after is False, f"merge after destroy returned {after!r}, not False")
    await _empty(dump, store, "merge must never create an entry")


_DEVICE = {"user_agent": "SuiteBrowser/1.0", "created_at": 1700000000, "last_seen": 1700000060}


async def _owner_sessions_on(store: Any) -> None:
    ids = [_sid(f"dev{i}") for i in range(3)]
    for i, key in enumerate(ids):
        data: dict[str, Any] = {"uid": 1, "i": i}
        if i == 1:
            data["_device"] = _DEVICE
        await _set(store, key, data, 60, _NEW)
    await _set(store, _sid("dev-other"), {"uid": 2, "i": 9}, 60, _NEW)

    async def listing(owner: object, current: str | None = None) -> dict[int, Any]:
        entries = await _call(store.list_owner(owner, current=current))
        return {entry.data.get("i", -1): entry for entry in entries}

    listed = await listing(1, current=ids[0])
    _expect(sorted(listed) == [0, 1, 2], "list_owner(current=) did not list the owner's sessions")
    handles = [listed[i].handle for i in range(3)]
    _expect(
        all(isinstance(h, str) and h for h in handles) and len(set(handles)) == 3,
        "list_owner: each session needs its own non-empty handle",
    )
    for key in ids:
        secret = key.split("-")[1]
        _expect(
            not any(secret in h or key in h for h in handles), "a handle carries the session id"
        )
        _expect(key not in handles, "a handle is the session id")
    for handle in handles:
        _expect(await _get(store, handle) is None, "a handle works as a session id")
    _expect(
        [i for i in range(3) if listed[i].is_current] == [0],
        "is_current did not mark exactly the session passed as current",
    )
    device = listed[1].device
    _expect(
        isinstance(device, dict) and device.get("user_agent") == "SuiteBrowser/1.0",
        "list_owner did not return the device facts",
    )
    _expect(
        listed[1].created_at == 1700000000 and listed[1].last_seen == 1700000060,
        "list_owner did not return created_at/last_seen from the device facts",
    )
    _expect(all(listed[i].expires_at is not None for i in range(3)), "list_owner lost expires_at")
    again = await listing(1)
    _expect([again[i].handle for i in range(3)] == handles, "handles changed between two listings")
    _expect(not any(e.is_current for e in again.values()), "is_current without current=")

    # revoke: only the owner's own handle ends a session, and only that one.
    other = (await listing(2))[9]
    _expect(await _call(store.revoke(1, other.handle)) is False, "revoked another owner's session")
    _expect(await _get(store, _sid("dev-other")) is not None, "another owner's session was ended")
    _expect(await _call(store.revoke(1, "0" * 32)) is False, "an unknown handle revoked something")
    _expect(await _call(store.revoke(1, handles[2])) is True, "revoke(own handle) returned False")
    _expect(await _get(store, ids[2]) is None, "revoke left the session")
    _expect(
        await _set(store, ids[2], {"uid": 1, "i": 2}, 60, _Ctx(ids[2])) is False,
        "a save after revoke brought the session back",
    )
    _expect(await _call(store.revoke(1, handles[2])) is False, "a second revoke returned True")
    _expect(sorted(await listing(1)) == [0, 1], "list_owner still lists a revoked session")

    # Log out other devices: everything of the owner but the kept session.
    await _set(store, ids[2], {"uid": 1, "i": 2}, 60, _NEW)
    _expect(
        await _call(store.destroy_owner(1, keep=ids[0])) == 2,
        "destroy_owner(keep=) did not count the 2 other sessions",
    )
    _expect(await _get(store, ids[0]) is not None, "destroy_owner(keep=) ended the kept session")
    _expect(
        await _get(store, ids[1]) is None and await _get(store, ids[2]) is None,
        "destroy_owner(keep=) left another session",
    )
    kept = await listing(1, current=ids[0])
    _expect(
        sorted(kept) == [0] and kept[0].is_current and kept[0].handle == handles[0],
        "after destroy_owner(keep=) the kept session is not listed as current",
    )
    _expect(await _get(store, _sid("dev-other")) is not None, "another owner was logged out")
    # Leave nothing behind: a second run (hashed ids) may share the storage.
    await _call(store.destroy_owner(1))
    await _call(store.destroy_owner(2))


async def _owner_sessions(make: Make, dump: Dump, features: Collection[str]) -> None:
    await _owner_sessions_on(await make(owner=_uid))
    if "hash_ids" in features:
        # Hashed ids keep working: current, revoke and keep are matched through the hash.
        await _owner_sessions_on(await make(owner=_uid, hash_ids=True, hash_key=_HASH_KEY))


@dataclass(frozen=True)
class Check:
    """One guarantee of the store contract.

    Call it with the store's ``make`` and ``dump`` (and the features it declares): it returns
    when the store keeps the guarantee, is skipped (returns ``False``) when it needs a feature
    not declared, and raises :class:`ContractViolation` otherwise.
    """

    name: str
    description: str
    run: Callable[[Make, Dump, Collection[str]], Awaitable[None]]
    needs: str | None = None

    def __str__(self) -> str:
        return self.name

    async def __call__(self, make: Make, dump: Dump, *, features: Collection[str] = ()) -> bool:
        """Run the check; ``True`` when it ran and passed, ``False`` when skipped."""
        unknown = set(features) - FEATURES
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {sorted(FEATURES)}")
        if self.needs is not None and self.needs not in features:
            return False
        try:
            await self.run(make, dump, features)
        except ContractViolation as exc:
            raise ContractViolation(f"{self.name}: {exc}") from None
        return True


#: Every check, in the order :func:`run_store_suite` runs them.
CHECKS: tuple[Check, ...] = (
    Check(
        "round_trip", "get returns a copy of what set saved; set without ctx upserts", _round_trip
    ),
    Check("destroy", "destroy removes one session; a missing one is no error", _destroy_removes),
    Check(
        "insert_collision", "a new id already in use raises SessionIdCollision", _insert_collision
    ),
    Check("update_of_missing", "an update of a missing session writes nothing", _update_of_missing),
    Check("no_resurrection", "a save after a logout writes nothing", _no_resurrection),
    Check("racing_saves", "saves racing a logout never bring it back", _racing_saves),
    Check("one_insert_wins", "of concurrent inserts of one id exactly one wins", _one_insert_wins),
    Check("unknown_ids", "reading unknown ids creates nothing", _unknown_ids),
    Check("invalid_ids", "malformed ids are refused and never stored", _invalid_ids),
    Check("ttl", "sessions expire after max_age, also for updates", _ttl),
    Check("hash_ids", "hash_ids=True keeps no raw id", _hash_ids, needs="hash_ids"),
    Check("owner", "owner index: list_owner and destroy_owner", _owner, needs="owner"),
    Check(
        "owner_sessions",
        "where you are signed in: handles, is_current, revoke, destroy_owner(keep=)",
        _owner_sessions,
        needs="owner_sessions",
    ),
    Check(
        "touch",
        "touch refreshes metadata and lifetime, keeps data, creates nothing",
        _touch,
        needs="touch",
    ),
    Check(
        "merge",
        "merge sets and removes keys, keeps the others; concurrent merges all land",
        _merge,
        needs="merge",
    ),
)


async def run_store_suite(make: Make, dump: Dump, *, features: Collection[str] = ()) -> list[str]:
    """Run every check against the store ``make`` builds; return the names of those that ran.

    All checks run even when one fails; then one :class:`ContractViolation` lists every
    failure. Checks of features not in ``features`` are skipped.
    """
    ran: list[str] = []
    failures: list[str] = []
    for check in CHECKS:
        try:
            if await check(make, dump, features=features):
                ran.append(check.name)
        except ContractViolation as exc:
            failures.append(str(exc))
    if failures:
        raise ContractViolation("; ".join(failures))
    return ran
