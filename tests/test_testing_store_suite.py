"""koasession.testing.store_suite: the published store contract passes a correct store, names
each guarantee a broken one breaks, and checks optional features only when declared.

(The suite runs against every bundled store on real servers in tests/stores/test_store_suite.py.)
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from _services import require_module
from koasession.stores import MemoryStore
from koasession.testing.store_suite import CHECKS, FEATURES, ContractViolation, run_store_suite


async def make_memory(**options: Any) -> MemoryStore:
    return MemoryStore(**options)


async def dump_memory(store: MemoryStore) -> dict[str, str]:
    return store._dump()


class Upserting:
    """A store that ignores ``ctx``: every save is an upsert (koa-session's own MemoryStore)."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    async def get(self, key: str, max_age: Any = None, **kw: Any) -> Any:
        return await self.inner.get(key, max_age, **kw)

    async def set(self, key: str, data: Any, max_age: Any = None, **kw: Any) -> Any:
        kw.pop("ctx", None)
        return await self.inner.set(key, data, max_age, **kw)

    async def destroy(self, key: str, **kw: Any) -> None:
        await self.inner.destroy(key)


async def make_upserting(**options: Any) -> Upserting:
    return Upserting()


async def dump_upserting(store: Upserting) -> dict[str, str]:
    return await dump_memory(store.inner)


async def test_memory_store_passes_every_check() -> None:
    ran = await run_store_suite(make_memory, dump_memory, features=FEATURES)
    assert ran == [check.name for check in CHECKS]


def test_the_suite_runs_under_trio() -> None:
    """A store written for trio proves the contract under trio (by itself and under anyio's trio
    backend): every check runs (the racing ones concurrently, in a nursery), and a broken store
    still fails naming each guarantee."""
    trio = require_module("trio")
    ran = trio.run(lambda: run_store_suite(make_memory, dump_memory, features=FEATURES))
    assert ran == [check.name for check in CHECKS]
    anyio = require_module("anyio")
    ran = anyio.run(lambda: run_store_suite(make_memory, dump_memory), backend="trio")
    assert "racing_saves" in ran and "ttl" in ran
    with pytest.raises(ContractViolation) as raised:
        trio.run(lambda: run_store_suite(make_upserting, dump_upserting))
    for name in ("insert_collision", "update_of_missing", "no_resurrection", "racing_saves"):
        assert f"{name}: " in str(raised.value)


def test_an_error_inside_concurrent_calls_under_trio_is_the_stores_own() -> None:
    """A store that raises in the racing checks shows its own error, not a trio ExceptionGroup."""
    trio = require_module("trio")

    class Broken(MemoryStore):
        async def set(self, key: str, data: Any, max_age: Any = None, **kw: Any) -> Any:
            if data.get("views", 0) > 3:
                raise OSError("disk on fire")
            return await super().set(key, data, max_age, **kw)

    async def make_broken(**options: Any) -> Broken:
        return Broken()

    racing = next(check for check in CHECKS if check.name == "racing_saves")
    with pytest.raises(OSError, match="disk on fire"):
        trio.run(lambda: racing(make_broken, dump_memory))


def test_the_suite_outside_asyncio_and_trio_says_so() -> None:
    """Driven by hand with no event loop (and trio not imported), the suite says what it needs
    instead of failing inside a sleep."""
    code = (
        "from koasession.stores import MemoryStore\n"
        "from koasession.testing.store_suite import CHECKS\n"
        "async def make(**o): return MemoryStore()\n"
        "async def dump(s): return s._dump()\n"
        "check = next(c for c in CHECKS if c.name == 'ttl')\n"
        "coro = check(make, dump)\n"
        "try:\n"
        "    while True: coro.send(None)\n"
        "except RuntimeError as exc: print('error:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "error: the store suite runs under asyncio or trio"


async def test_undeclared_features_are_skipped() -> None:
    ran = await run_store_suite(make_memory, dump_memory)
    optional = {"hash_ids", "owner", "owner_sessions", "touch", "merge"}
    assert not optional & set(ran)
    assert len(ran) == len(CHECKS) - len(optional)


async def test_a_store_without_write_modes_fails_naming_each_guarantee() -> None:
    with pytest.raises(ContractViolation) as raised:
        await run_store_suite(make_upserting, dump_upserting)
    message = str(raised.value)
    for name in ("insert_collision", "update_of_missing", "no_resurrection", "racing_saves"):
        assert f"{name}: " in message
    assert "round_trip: " not in message and "invalid_ids: " not in message


async def test_unknown_feature_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown features"):
        await CHECKS[0](make_memory, dump_memory, features={"owners"})


class RevokesAnyOwner(MemoryStore):
    """A store whose revoke ends a session whoever owns it."""

    async def revoke(self, owner_id: str | int, handle: str) -> bool:
        ended = False
        for owner in (1, 2):
            ended = await super().revoke(owner, handle) or ended
        return ended


async def test_a_store_whose_revoke_ignores_the_owner_fails() -> None:
    async def make(**options: Any) -> RevokesAnyOwner:
        return RevokesAnyOwner(**options)

    by_name = {check.name: check for check in CHECKS}
    with pytest.raises(ContractViolation, match="owner_sessions: revoked another owner's"):
        await by_name["owner_sessions"](make, dump_memory, features={"owner_sessions"})


class NoTouch:
    """A MemoryStore whose touch forgets the data it was meant to keep."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    async def get(self, key: str, max_age: Any = None, **kw: Any) -> Any:
        return await self.inner.get(key, max_age, **kw)

    async def set(self, key: str, data: Any, max_age: Any = None, **kw: Any) -> Any:
        return await self.inner.set(key, data, max_age, **kw)

    async def destroy(self, key: str, **kw: Any) -> None:
        await self.inner.destroy(key, **kw)

    async def touch(self, key: str, max_age: Any = None, *, fields: Any, ctx: Any) -> bool:
        if await self.inner.get(key) is None:
            return False
        return await self.inner.set(key, dict(fields), max_age)


async def test_touch_that_rewrites_data_is_caught() -> None:
    by_name = {check.name: check for check in CHECKS}

    async def make(**options: Any) -> NoTouch:
        return NoTouch()

    async def dump(store: NoTouch) -> dict[str, str]:
        return await dump_memory(store.inner)

    with pytest.raises(ContractViolation, match="touch: after touch the entry is"):
        await by_name["touch"](make, dump, features={"touch"})
