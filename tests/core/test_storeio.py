"""The store I/O policy on its own: timeout, error mapping, id-collision retry, vanished entries."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import pytest

from _services import require_module
from koasession import storeio
from koasession.errors import ConfigurationError, SessionIdCollision, StoreError


class _Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str, str]] = []

    def __call__(self, operation: str, key: str, exc: BaseException) -> None:
        self.reports.append((operation, key, type(exc).__name__))


async def test_returns_sync_and_async_results() -> None:
    async def aget(key: str, *args: Any, **kw: Any) -> Any:
        return {"key": key, "args": args, "kw": kw}

    def get(key: str) -> str:
        return key.upper()

    got = await storeio.call("get", aget, "k", (1,), {"x": 2}, timeout=1.0, store="s")
    assert got == {"key": "k", "args": (1,), "kw": {"x": 2}}
    assert await storeio.call("get", get, "k", timeout=None, store="s") == "K"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            ConnectionError("down"),
            "session store 'S' get(#8254c329a928) failed: ConnectionError('down')",
        ),
        (
            StoreError("RedisStore: down"),
            "session store get(#8254c329a928) failed: RedisStore: down",
        ),
    ],
)
async def test_failures_become_store_error_and_are_reported(error: Exception, message: str) -> None:
    async def get(key: str) -> None:
        raise error

    report = _Recorder()
    with pytest.raises(StoreError) as info:
        await storeio.call("get", get, "k", timeout=1.0, store="S", report=report)
    assert str(info.value) == message
    assert info.value.__cause__ is error
    assert report.reports == [("get", "k", type(error).__name__)]


@pytest.mark.parametrize(
    "error",
    [TypeError("bad owner"), SessionIdCollision("taken"), ConfigurationError("not on asyncio")],
)
async def test_application_errors_and_collisions_pass_through(error: Exception) -> None:
    def get(key: str) -> None:
        raise error

    report = _Recorder()
    with pytest.raises(type(error)):
        await storeio.call("set", get, "k", timeout=1.0, store="S", report=report)
    assert report.reports == []


async def test_timeout_does_not_wait_for_cancelled_cleanup() -> None:
    cleanup_started = asyncio.Event()

    async def stalled(key: str) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleanup_started.set()
            await asyncio.sleep(10)  # a driver's slow cancel path: never awaited by the caller

    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(StoreError, match=r"timed out after 0\.05 s"):
        await storeio.call("get", stalled, "k", timeout=0.05, store="S")
    assert loop.time() - start < 1.0
    await asyncio.wait_for(cleanup_started.wait(), 1.0)


class _TimedStore:
    """A store that says how long its calls can last at most (``call_deadline``)."""

    def __init__(self, call_deadline: object) -> None:
        self.call_deadline = call_deadline

    async def get(self, key: str) -> asyncio.Task[Any] | None:
        return asyncio.current_task()


@pytest.mark.parametrize(
    ("deadline", "own_task"),
    [(0.5, False), (1.0, False), (1.5, True), (None, True), (0, True), ("0.5", True)],
)
async def test_a_store_that_ends_its_calls_in_time_is_awaited_in_the_callers_task(
    deadline: object, own_task: bool
) -> None:
    # A store whose calls end by themselves within the timeout needs no task of its own (one
    # costs event-loop turns per call); any other store gets one, to be left at the timeout.
    store = _TimedStore(deadline)
    task = await storeio.call("get", store.get, "k", timeout=1.0, store=store)
    assert (task is not asyncio.current_task()) is own_task


async def test_a_store_that_ends_its_calls_in_time_still_fails_as_store_error() -> None:
    async def get(key: str) -> None:
        raise StoreError("SomeStore: timed out after 0.5 s")

    report = _Recorder()
    with pytest.raises(StoreError, match=r"get\(#8254c329a928\) failed: SomeStore: timed out"):
        await storeio.call("get", get, "k", timeout=1.0, store=_TimedStore(0.5), report=report)
    assert report.reports == [("get", "k", "StoreError")]


async def test_save_new_id_retries_collisions_with_fresh_ids() -> None:
    taken = {"a", "b"}
    fresh = iter(["b", "c"])

    async def write(key: str) -> str:
        if key in taken:
            raise SessionIdCollision(key)
        return "ok"

    async def new_id() -> str:
        return next(fresh)

    assert await storeio.save_new_id(write, "a", new_id, loaded_key=None) == ("c", "ok")


async def test_save_new_id_does_not_replace_the_loaded_id() -> None:
    async def write(key: str) -> None:
        raise SessionIdCollision(key)

    async def new_id() -> str:  # pragma: no cover - must not be called
        raise AssertionError

    with pytest.raises(SessionIdCollision):
        await storeio.save_new_id(write, "a", new_id, loaded_key="a")


async def test_save_new_id_gives_up_after_the_attempts() -> None:
    calls: list[str] = []

    async def write(key: str) -> None:
        calls.append(key)
        raise SessionIdCollision(key)

    async def new_id() -> str:
        return f"id{len(calls)}"

    with pytest.raises(SessionIdCollision):
        await storeio.save_new_id(write, "a", new_id, loaded_key=None)
    assert len(calls) == storeio.GENID_ATTEMPTS


@pytest.mark.parametrize(
    ("written", "expected"), [(False, True), (None, False), (True, False), (0, False)]
)
def test_vanished(written: object, expected: bool) -> None:
    assert storeio.vanished(written) is expected


# -- off asyncio: trio (Hypercorn's trio worker, anyio's trio backend) --------------------------


def test_the_timeout_holds_under_trio() -> None:
    """A call past ``store_timeout`` fails as a timeout under trio too (through anyio), and a
    call in time returns its result."""
    trio = require_module("trio")

    async def stalled(key: str) -> None:
        await trio.sleep(60)

    async def quick(key: str) -> str:
        await trio.sleep(0)
        return key.upper()

    async def main() -> tuple[str, float, str]:
        report = _Recorder()
        assert await storeio.call("get", quick, "k", timeout=1.0, store="S") == "K"
        started = trio.current_time()
        with pytest.raises(StoreError) as info:
            await storeio.call("get", stalled, "k", timeout=0.05, store="S", report=report)
        assert report.reports == [("get", "k", "TimeoutError")]
        return str(info.value), trio.current_time() - started, repr(info.value.__cause__)

    message, waited, cause = trio.run(main)
    assert message == "session store 'S' get(#8254c329a928) failed: timed out after 0.05 s"
    assert "TimeoutError" in cause
    assert waited < 5


def test_a_failure_under_trio_is_a_store_error() -> None:
    trio = require_module("trio")

    async def down(key: str) -> None:
        await trio.sleep(0)
        raise ConnectionError("down")

    async def main() -> str:
        with pytest.raises(StoreError) as info:
            await storeio.call("get", down, "k", timeout=1.0, store="S")
        return str(info.value)

    assert trio.run(main) == "session store 'S' get(#8254c329a928) failed: ConnectionError('down')"


def test_the_timeout_holds_under_trio_without_anyio(monkeypatch: pytest.MonkeyPatch) -> None:
    """A raw trio app (Hypercorn's trio worker installs no anyio): trio's own timeout."""
    trio = require_module("trio")
    monkeypatch.setitem(sys.modules, "anyio", None)  # import anyio raises ImportError

    async def stalled(key: str) -> None:
        await trio.sleep(60)

    async def main() -> str:
        with pytest.raises(StoreError) as info:
            await storeio.call("get", stalled, "k", timeout=0.05, store="S")
        return str(info.value)

    assert trio.run(main) == "session store 'S' get(#8254c329a928) failed: timed out after 0.05 s"


def test_a_timeout_on_another_library_without_anyio_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    """Neither asyncio nor trio, and no anyio: a ConfigurationError that says what to do (the
    coroutine is stepped by hand here, as an unknown library would)."""
    monkeypatch.setitem(sys.modules, "anyio", None)
    monkeypatch.setitem(sys.modules, "trio", None)

    async def get(key: str) -> str:
        return key

    step = storeio.call("get", get, "k", timeout=1.0, store="S")
    with pytest.raises(ConfigurationError, match=r"outside asyncio and trio needs anyio"):
        step.send(None)
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]
