"""The store I/O policy: timeout, ``StoreError`` mapping, id-collision retry, vanished entries.

Nothing here knows the request: the engine (:mod:`koasession.lifecycle`) passes the store's
bound method, the timeout, and a callback that reports a failure (the ``store_error`` event).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .errors import ConfigurationError, SessionIdCollision, StoreError
from .ids import fingerprint

#: How many ids a save tries when the store reports a collision (``SessionIdCollision``).
GENID_ATTEMPTS = 5

#: Called once per failed store call with the operation, the key and the error.
FailureReport = Callable[[str, str, BaseException], None]


async def call(
    operation: str,
    method: Callable[..., Any],
    key: str,
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    timeout: float | None,
    store: object,
    report: FailureReport | None = None,
) -> Any:
    """Call a store method within ``timeout``; failures become :class:`StoreError`.

    The call runs as its own task and the request stops waiting for it at the timeout: a
    driver's clean-up of a cancelled operation (asyncpg cancels a query over a new
    connection, which a stalled server never answers) happens in the background instead of
    holding the response. A store whose ``call_deadline`` (seconds) says that each of its
    calls ends by itself, with an error, within ``timeout`` is awaited directly instead: a
    task of its own costs event-loop turns on every call.

    A ``TypeError`` passes through unchanged: it is the application's bug (an ``owner()``
    returning a non-string, data JSON cannot hold), not an outage to answer with 503. So does a
    ``ConfigurationError`` (a bundled store used outside asyncio, say), and
    ``SessionIdCollision``, which :func:`save_new_id` handles.

    Off asyncio (trio, through Hypercorn's trio worker or anyio), the timeout is anyio's, or
    trio's where anyio is not installed.
    """
    try:
        result = method(key, *args, **(kwargs or {}))
        if inspect.isawaitable(result):
            if timeout and not _ends_within(store, timeout):
                return await _bounded(result, timeout)
            return await result
        return result
    except (SessionIdCollision, TypeError, ConfigurationError):
        raise
    except Exception as exc:
        if isinstance(exc, StoreError):
            where, reason = "", str(exc)  # the bundled stores' errors name the store
        else:
            where = f" {store!r}"
            is_timeout = isinstance(exc, asyncio.TimeoutError)
            reason = f"timed out after {timeout} s" if is_timeout else repr(exc)
        if report is not None:
            report(operation, key, exc)
        # The id as its fingerprint: this message reaches logs and error trackers.
        shown = fingerprint(key) if isinstance(key, str) else repr(key)
        raise StoreError(f"session store{where} {operation}({shown}) failed: {reason}") from exc


def _ends_within(store: object, timeout: float) -> bool:
    deadline = getattr(store, "call_deadline", None)
    return isinstance(deadline, (int, float)) and 0 < deadline <= timeout


async def _bounded(awaitable: Awaitable[Any], timeout: float) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return await _bounded_off_asyncio(awaitable, timeout)
    task = asyncio.ensure_future(awaitable)
    finished = False
    try:
        await asyncio.wait((task,), timeout=timeout)
        finished = task.done()
    finally:
        if not finished:  # timed out, or the request itself was cancelled
            task.cancel()
            # Nobody awaits the task any more: retrieve its outcome so that a late failure is
            # not logged as "exception never retrieved".
            task.add_done_callback(_retrieve)
    if not finished:
        raise asyncio.TimeoutError()
    try:
        return task.result()
    finally:
        # A failure's traceback holds this frame and the task holds the failure: without the
        # task in the frame, that is no reference cycle left for the collector.
        del task


async def _bounded_off_asyncio(awaitable: Awaitable[Any], timeout: float) -> Any:
    """:func:`_bounded` on another async library: trio, through anyio when it is installed (as
    Starlette, FastAPI and Litestar install it), else through trio itself.

    The call is cancelled where it runs and its clean-up is awaited: structured concurrency
    has no background to leave it in, as asyncio's task does.
    """
    try:
        from anyio import move_on_after
    except ImportError:
        trio = sys.modules.get("trio")  # a raw trio app: no anyio, but trio is loaded
        if trio is None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never awaited: no "coroutine was never awaited" warning
            raise ConfigurationError(
                "store_timeout outside asyncio and trio needs anyio (pip install anyio); "
                "or set store_timeout=None"
            ) from None
        move_on_after = trio.move_on_after
    with move_on_after(timeout):
        return await awaitable
    raise asyncio.TimeoutError()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def save_new_id(
    write: Callable[[str], Awaitable[Any]],
    key: str,
    new_id: Callable[[], Awaitable[str]],
    *,
    loaded_key: str | None,
) -> tuple[str, Any]:
    """Write under ``key``, drawing a new id when the store reports a collision.

    Returns the key written and the store's answer. A collision on the loaded id (an update,
    not an insert) or on the last attempt propagates.
    """
    for attempt in range(GENID_ATTEMPTS):
        try:
            return key, await write(key)
        except SessionIdCollision:
            if key == loaded_key or attempt == GENID_ATTEMPTS - 1:
                raise
            key = await new_id()
    raise AssertionError("unreachable")  # pragma: no cover


def vanished(written: object) -> bool:
    """Whether a store's ``set`` answer says the entry was gone (destroyed concurrently).

    Stores return ``False`` from an update whose entry no longer exists; the engine must then
    neither resurrect it nor point the cookie at it.
    """
    return written is False
