"""koasession.testing.store_suite: the published store contract passes a correct store, names
each guarantee a broken one breaks, and checks optional features only when declared.

(The suite runs against every bundled store on real servers in tests/stores/test_store_suite.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

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
