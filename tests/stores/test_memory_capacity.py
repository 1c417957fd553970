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
    """Thousands of evictions, then a shortened lifetime and a purge: the policy holds
    throughout."""
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


# -- the structures behind the policy: a log of uses, a short list of the earliest deadlines --


async def test_one_entry_store(clock: Clock) -> None:
    store = MemoryStore(max_entries=1)
    await store.set("a", {"v": 1}, 60, ctx=Ctx())
    await store.set("a", {"v": 2}, 60, ctx=Ctx("a"))  # an update of a full store evicts nothing
    assert await store.get("a") == {"v": 2}
    await store.set("b", {}, 60, ctx=Ctx())
    assert await present(store, "a", "b") == {"b"}
    await store.destroy("b")
    assert len(store) == 0
    await store.set("a", {"v": 3}, 60, ctx=Ctx())  # the evicted id can be used again
    assert await store.get("a") == {"v": 3} and len(store) == 1


async def test_touch_and_merge_after_expiry_create_nothing(clock: Clock) -> None:
    store = MemoryStore(max_entries=10)
    await store.set("a", {"v": 1}, 5, ctx=Ctx())
    clock.now += 5  # a deadline is the first moment the entry is gone
    assert await store.touch("a", 60, fields={"_expire": 1}) is False
    assert await store.merge("a", {"v": 2}, [], 60) is False
    assert await store.get("a") is None
    assert len(store) == 0


async def test_touch_and_merge_are_uses_that_set_the_deadline(clock: Clock) -> None:
    store = MemoryStore(max_entries=3)
    for key in ("a", "b", "c"):
        await store.set(key, {"k": key}, 10, ctx=Ctx())
    assert await store.touch("a", 100, fields={"_maxAge": 100000}) is True
    assert await store.merge("b", {"m": 1}, ["k"], 100) is True
    await store.set("d", {}, 100, ctx=Ctx())  # "c" is now the least recently used
    assert await present(store, "a", "b", "c", "d") == {"a", "b", "d"}
    clock.now += 50  # past the first deadline of "a" and "b", within the one they got
    assert await store.get("a") == {"k": "a", "_maxAge": 100000}
    assert await store.get("b") == {"m": 1}


async def test_expired_entries_beyond_the_listed_ones_go_before_live_ones(clock: Clock) -> None:
    """More entries than one sweep lists (64): all expired ones are found, wherever they are in
    the order of use."""
    store = MemoryStore(max_entries=300)
    for i in range(300):
        await store.set(f"s{i}", {}, 10 if i % 2 else 600, ctx=Ctx())
        clock.now += 0.01
    assert await store.purge_expired() == 0  # a sweep with nothing to drop lists 64 deadlines
    for i in reversed(range(300)):  # the order of use is now the reverse of the deadlines'
        assert await store.get(f"s{i}") == {}
    clock.now += 20
    fresh = [f"new{i}" for i in range(150)]
    for key in fresh:
        await store.set(key, {}, 600, ctx=Ctx())
    # The 150 expired made room for the 150 new ones; no live one went.
    live = {f"s{i}" for i in range(0, 300, 2)}
    assert await present(store, *live, *fresh) == live | set(fresh)
    assert len(store) == 300


async def test_a_deadline_earlier_than_those_listed_is_seen(clock: Clock) -> None:
    store = MemoryStore(max_entries=100)
    for i in range(100):
        await store.set(f"s{i}", {}, 100, ctx=Ctx())
        clock.now += 0.01
    await store.purge_expired()  # lists the 64 earliest deadlines
    await store.set("s99", {}, 1, ctx=Ctx("s99"))  # the latest deadline becomes the earliest
    clock.now += 2
    await store.set("new", {}, 100, ctx=Ctx())
    assert await store.get("s99") is None
    assert await present(store, "s0", "new") == {"s0", "new"}  # "s0" is the least recently used
    await store.set("s50", {}, 0, ctx=Ctx("s50"))  # a lifetime of 0: gone at once
    assert await store.get("s50") is None


async def test_a_deadline_between_those_listed_and_the_rest_is_seen(clock: Clock) -> None:
    store = MemoryStore(max_entries=200)
    for i in range(200):
        await store.set(f"s{i}", {}, 100 + i, ctx=Ctx())  # deadlines 1s apart
    await store.purge_expired()  # lists the 64 earliest: up to s63's, the rest from s64's
    await store.set("s150", {}, 163.5, ctx=Ctx("s150"))  # between s63's deadline and s64's
    clock.now += 163.7
    fresh = [f"new{i}" for i in range(65)]
    for key in fresh:
        await store.set(key, {}, 100, ctx=Ctx())
    # s0..s63 and s150 had expired and made room; every live one stayed.
    live = {f"s{i}" for i in range(64, 200)} - {"s150"}
    assert await present(store, *live, *fresh) == live | set(fresh)
    assert len(store) == 200


async def test_a_full_store_finds_the_expired_entry_behind_rewritten_ones(clock: Clock) -> None:
    """A write reclaims only a few expired entries on its own; in a full store it looks further,
    past entries whose listed deadline was extended since, before evicting a live one."""
    store = MemoryStore(max_entries=100)
    for i in range(100):
        await store.set(f"s{i}", {}, 100, ctx=Ctx())
        clock.now += 0.01
    await store.purge_expired()  # lists the 64 earliest deadlines: s0's to s63's
    for i in range(20):
        await store.set(f"s{i}", {}, 1000, ctx=Ctx(f"s{i}"))  # extended
    assert await store.get("s20") == {}  # now "s21" is the least recently used
    clock.now += 100 - 0.01 * 79  # past s20's deadline only
    await store.set("new", {}, 100, ctx=Ctx())
    assert await store.get("s20") is None
    assert await present(store, "s21", "new") == {"s21", "new"}


async def test_writes_reclaim_expired_entries_without_a_purge(clock: Clock) -> None:
    store = MemoryStore(max_entries=1000)
    for i in range(40):
        await store.set(f"old{i}", {}, 5, ctx=Ctx())
    await store.set("live", {}, 600, ctx=Ctx())
    clock.now += 10
    for i in range(10):  # each new session's write reclaims a few expired entries
        await store.set(f"new{i}", {}, 600, ctx=Ctx())
    assert len(store) == 11


async def test_many_reads_keep_the_order_of_use_exact(clock: Clock) -> None:
    """Thousands of reads of a few sessions fill the log of uses with superseded items, and
    it is rebuilt many times; the least recently used session is still the one evicted."""
    store = MemoryStore(max_entries=5)
    for key in "abcde":
        await store.set(key, {"k": key}, 600, ctx=Ctx())
    for i in range(5000):
        assert await store.get("abcd"[i % 4]) is not None
    await store.set("f", {}, 600, ctx=Ctx())  # "e" was never read: the least recently used
    assert await store.get("e") is None
    await store.get("a")  # the last reads were ..., c, d: "b" is now the oldest use
    await store.set("g", {}, 600, ctx=Ctx())
    assert await present(store, "a", "b", "c", "d", "f", "g") == {"a", "c", "d", "f", "g"}


@pytest.mark.parametrize("seed", range(4))
async def test_random_operations_on_larger_stores_match_the_policy(clock: Clock, seed: int) -> None:
    """As above with more entries than a sweep lists, lifetimes from 0 to none, and every
    kind of use (touch and merge set the deadline too)."""
    rng = random.Random(seed)
    capacity = rng.choice([70, 150, 300])
    store = MemoryStore(max_entries=capacity)
    model: OrderedDict[str, tuple[float, dict[str, int]]] = OrderedDict()  # in order of use
    keys = [f"k{i}" for i in range(capacity * 2)]
    ttls = [0.0, 0.5, 1.0, 3.0, 10.0, float("inf")]

    def expire_model() -> None:
        for key in [k for k, (deadline, _) in model.items() if deadline <= clock.now]:
            del model[key]

    for step in range(4000):
        op = rng.random()
        key = rng.choice(keys)
        expire_model()
        if op < 0.3:
            value = await store.get(key)
            assert value == (model[key][1] if key in model else None), (key, seed, step)
            if key in model:
                model.move_to_end(key)
        elif op < 0.6:
            ttl = rng.choice(ttls)
            loaded = key if key in model else None
            data = {"n": step}
            assert await store.set(key, data, ttl, ctx=Ctx(loaded)) is True
            if loaded is None:
                while len(model) >= capacity:
                    model.popitem(last=False)
            model[key] = (clock.now + ttl, data)
            model.move_to_end(key)
        elif op < 0.7:
            ttl = rng.choice(ttls)
            found = await store.touch(key, ttl, fields={"_accessed": step})
            assert found == (key in model), (key, seed, step)
            if key in model:
                model[key] = (clock.now + ttl, {**model[key][1], "_accessed": step})
                model.move_to_end(key)
        elif op < 0.8:
            ttl = rng.choice(ttls)
            found = await store.merge(key, {"m": step}, ["n"], ttl)
            assert found == (key in model), (key, seed, step)
            if key in model:
                data = {k: v for k, v in model[key][1].items() if k != "n"}
                model[key] = (clock.now + ttl, {**data, "m": step})
                model.move_to_end(key)
        elif op < 0.86:
            await store.destroy(key)
            model.pop(key, None)
        elif op < 0.87:
            await store.purge_expired()
            assert len(store) == len(model)
        else:
            clock.now += rng.choice([0.05, 0.2, 0.5, 1.0])
        assert len(model) <= len(store) <= capacity
    expire_model()
    assert {k for k in keys if await store.get(k) is not None} == set(model)
