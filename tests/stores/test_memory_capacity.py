"""MemoryStore at capacity: which sessions go first when it is full, and that expiry is exact.

The policy (MemoryStore's docstring, README "Stores"): a new session written into a full store
first takes the place of an expired entry, otherwise of the least recently used one (read or
written). The clock is faked so that expiry is decided by the test, not by sleeping.
"""

from __future__ import annotations

import random
import types
from collections import OrderedDict

import pytest

from koasession.stores import MemoryStore
from koasession.stores import memory as memory_module


class Ctx:
    def __init__(self, loaded_key: str | None = None) -> None:
        self.loaded_key = loaded_key


class Clock:
    """A monotonic clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    real = memory_module.time
    monkeypatch.setattr(
        memory_module, "time", types.SimpleNamespace(monotonic=fake.monotonic, time=real.time)
    )
    return fake


async def present(store: MemoryStore, *keys: str) -> set[str]:
    return {k for k in keys if await store.get(k) is not None}


async def test_least_recently_used_goes_first(clock: Clock) -> None:
    store = MemoryStore(max_entries=3)
    for key in ("a", "b", "c"):
        await store.set(key, {"k": key}, 60, ctx=Ctx())
    assert await store.get("a") == {"k": "a"}  # a read makes "a" recently used
    await store.set("d", {}, 60, ctx=Ctx())
    assert await present(store, "a", "c", "d") == {"a", "c", "d"}
    assert await store.get("b") is None  # oldest use: evicted, its user is logged out
    await store.set("c", {"k": "c2"}, 60, ctx=Ctx("c"))  # a write is a use too
    await store.set("e", {}, 60, ctx=Ctx())
    assert await store.get("a") is None
    assert await present(store, "c", "d", "e") == {"c", "d", "e"}
    assert len(store) == 3


async def test_an_expired_entry_goes_before_any_live_one(clock: Clock) -> None:
    store = MemoryStore(max_entries=3)
    await store.set("old-live", {}, 600, ctx=Ctx())
    await store.set("mid-live", {}, 600, ctx=Ctx())
    await store.set("recent-short", {}, 5, ctx=Ctx())  # the most recently used
    clock.now += 10
    await store.set("new", {}, 600, ctx=Ctx())
    assert await present(store, "old-live", "mid-live", "new") == {"old-live", "mid-live", "new"}
    assert len(store) == 3


async def test_an_extended_lifetime_is_not_expired_at_the_old_deadline(clock: Clock) -> None:
    store = MemoryStore(max_entries=2)
    await store.set("a", {}, 5, ctx=Ctx())
    await store.set("b", {}, 600, ctx=Ctx())
    await store.set("a", {"v": 2}, 600, ctx=Ctx("a"))  # rolling: a new, later deadline
    clock.now += 10
    await store.set("c", {}, 600, ctx=Ctx())
    # Nothing had expired, so the least recently used live session ("b") made room.
    assert await store.get("a") == {"v": 2}
    assert await store.get("b") is None
    assert await store.get("c") == {}


async def test_a_shortened_lifetime_expires_at_the_new_deadline(clock: Clock) -> None:
    store = MemoryStore(max_entries=2)
    await store.set("a", {}, 600, ctx=Ctx())
    await store.set("b", {}, 600, ctx=Ctx())
    await store.set("a", {}, 5, ctx=Ctx("a"))  # "a" is now the most recently used
    clock.now += 10
    assert await store.purge_expired() == 1
    assert await present(store, "a", "b") == {"b"}
    await store.set("c", {}, 600, ctx=Ctx())
    assert await present(store, "b", "c") == {"b", "c"}


async def test_purge_expired_drops_exactly_the_expired(clock: Clock) -> None:
    store = MemoryStore(max_entries=1000)
    for i in range(300):
        await store.set(f"s{i}", {}, 1 + i % 3, ctx=Ctx())  # lifetimes of 1, 2 and 3 s
    await store.set("forever", {}, float("inf"), ctx=Ctx())
    clock.now += 2.5
    assert await store.purge_expired() == 200
    assert len(store) == 101
    assert await store.get("s2") == {} and await store.get("s1") is None
    assert await store.get("forever") == {}


@pytest.mark.parametrize("seed", range(6))
async def test_random_operations_match_the_documented_policy(clock: Clock, seed: int) -> None:
    """Thousands of random reads, writes, deletes and clock steps against a plain model of
    the policy: whenever the store holds ``max_entries`` live sessions, a new one evicts the
    least recently used live session; expired ones are never visible."""
    rng = random.Random(seed)
    capacity = rng.choice([1, 3, 17, 50])
    store = MemoryStore(max_entries=capacity)
    model: OrderedDict[str, float] = OrderedDict()  # key -> deadline, in order of use
    keys = [f"k{i}" for i in range(capacity * 3)]

    def expire_model() -> None:
        for key in [k for k, deadline in model.items() if deadline <= clock.now]:
            del model[key]

    for _ in range(3000):
        op = rng.random()
        key = rng.choice(keys)
        expire_model()
        if op < 0.4:
            value = await store.get(key)
            assert (value is not None) == (key in model), (key, seed)
            if key in model:
                model.move_to_end(key)
        elif op < 0.8:
            ttl = rng.choice([0.5, 1.0, 3.0, 10.0])
            loaded = key if key in model else None
            assert await store.set(key, {"k": key}, ttl, ctx=Ctx(loaded)) is True
            if loaded is None:
                while len(model) >= capacity:
                    model.popitem(last=False)
            model[key] = clock.now + ttl
            model.move_to_end(key)
        elif op < 0.88:
            await store.destroy(key)
            model.pop(key, None)
        else:
            clock.now += rng.choice([0.1, 0.5, 1.0, 2.0])
        assert len(store) <= capacity
    expire_model()
    assert {k for k in keys if await store.get(k) is not None} == set(model)


async def test_long_runs_at_capacity_keep_eviction_and_expiry_exact(clock: Clock) -> None:
    """Thousands of evictions leave skipped items in the expiry queue until it is rebuilt;
    before and after, the policy holds."""
    store = MemoryStore(max_entries=10)
    for i in range(5000):
        await store.set(f"s{i}", {"i": i}, 600, ctx=Ctx())
        clock.now += 0.001
    assert len(store) == 10
    assert await present(store, *(f"s{i}" for i in range(4985, 5000))) == {
        f"s{i}" for i in range(4990, 5000)
    }
    await store.set("s4995", {"short": True}, 1, ctx=Ctx("s4995"))  # shortened lifetime
    clock.now += 2
    await store.set("new", {}, 600, ctx=Ctx())
    # The expired session made room; every live one stayed.
    assert await store.get("s4995") is None
    live = {f"s{i}" for i in range(4990, 5000)} - {"s4995"}
    assert await present(store, *live, "new") == live | {"new"}
    clock.now += 600
    assert await store.purge_expired() == 10
    assert len(store) == 0
