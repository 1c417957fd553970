"""Pieces shared by the SQL stores: table-name checks, the automatic bounded purge, one
connection or pool per event loop, bounded and retried statements on a pool, and error messages
that name the store."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from ..errors import ConfigurationError, StoreError, check_flag
from ._common import json_path, merge_items, not_on_asyncio, running_loop

logger = logging.getLogger("koasession")

# Table names are interpolated into SQL (placeholders cannot name tables), so only plain
# identifiers, optionally schema-qualified, are accepted; they are then quoted (double quotes
# by default, backticks for MySQL).
_IDENT = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_TABLE_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})?")

DEFAULT_TABLE = "koasession_sessions"


def check_table(name: str, *, allow_schema: bool, quote: str = '"') -> tuple[str, str]:
    """Validate ``name`` and return (quoted name for SQL, bare table name for index names)."""
    if not isinstance(name, str) or _TABLE_RE.fullmatch(name) is None:
        raise ConfigurationError(
            f"invalid table name {name!r}: use letters, digits and '_' "
            "(optionally schema.table), at most 63 characters per part"
        )
    parts = name.split(".")
    if len(parts) > 1 and not allow_schema:
        raise ConfigurationError(f"invalid table name {name!r}: no schema here")
    return ".".join(f"{quote}{p}{quote}" for p in parts), parts[-1]


def index_name(table: str, suffix: str) -> str:
    """An index name derived from the table, within PostgreSQL's 63-byte identifier limit."""
    return f'"{(table[: 63 - len(suffix) - 1])}_{suffix}"'


def missing_driver(store: str, package: str, extra: str) -> ImportError:
    """The error for a store whose optional driver is not installed: it names the extra."""
    return ImportError(
        f"{store} needs the {package!r} package, an optional dependency of koasession: "
        f"pip install 'koasession[{extra}]'"
    )


def check_timeout(name: str, value: object) -> float:
    """Validate a timeout option: a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds")
    return float(value)


def url_password(userinfo: str) -> tuple[str, ...]:
    """The password of a URL's ``user:password`` part, as written and percent-decoded: both
    must be masked in error messages, whichever form a driver echoes."""
    if ":" not in userinfo:
        return ()
    password = userinfo.split(":", 1)[1]
    return tuple(s for s in (password, unquote(password)) if s)


def store_error(
    where: str, operation: str, exc: BaseException, secrets: tuple[str, ...]
) -> StoreError:
    """A :class:`StoreError` naming the store and its address (``where``) and the cause.

    Anything in ``secrets`` (a password from the DSN) is masked, even if a driver echoed it.
    """
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        reason = "timed out"
    else:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    message = f"{where}: {operation} failed: {reason}"
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return StoreError(message)


class AutoPurge:
    """Runs a bounded purge of expired rows every ``every`` writes.

    Bounded (at most ``limit`` rows) so that one unlucky request never pays for a table that
    grew for months; steady traffic reclaims space steadily. ``every=0`` disables it.
    """

    def __init__(self, every: int, limit: int) -> None:
        for name, value in (("purge_every", every), ("purge_limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{name} must be a non-negative integer")
        if every and not limit:
            raise ConfigurationError("purge_limit must be positive when purge_every is set")
        self.every = every
        self.limit = limit
        self._writes = 0

    async def after_write(self, purge: Callable[[int], Awaitable[int]]) -> None:
        """Count a write; on every ``every``-th one, purge at most ``limit`` expired rows."""
        if not self.every:
            return
        self._writes += 1
        if self._writes % self.every:
            return
        try:
            await purge(self.limit)
        except Exception:
            # The session itself was saved; a failed housekeeping pass must not fail the
            # request. The next pass retries.
            logger.warning("koasession: automatic purge of expired sessions failed", exc_info=True)


# -- one connection or pool per event loop -----------------------------------------------------

_T = TypeVar("_T")


class _Slot(Generic[_T]):
    """What one event loop holds: its resource (once opened) and the lock that opens it."""

    __slots__ = ("lock", "loop", "value")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.value: _T | None = None
        self.lock = asyncio.Lock()


class PerLoop(Generic[_T]):
    """Opens a resource lazily in the running event loop, one per loop.

    Sockets, futures and locks belong to the loop that created them, so a store used from a
    second loop (successive ``TestClient`` blocks, pytest-asyncio's per-test loops) would talk
    through a dead loop. Each loop gets its own resource instead, detected by loop identity (one
    pointer comparison on the hot path). A resource whose loop has been closed is discarded
    without awaiting anything, since awaiting on a closed loop is impossible.

    :param open: opens the resource in the running loop.
    :param close: releases the running loop's resource (awaited by :meth:`close`).
    :param discard: best-effort, synchronous release of a resource whose loop is gone.
    """

    def __init__(
        self,
        owner: object,
        open: Callable[[], Awaitable[_T]],
        close: Callable[[_T], Awaitable[None]],
        discard: Callable[[_T], None],
    ) -> None:
        self._owner = owner  # the store, named by the error of a call outside asyncio
        self._open = open
        self._close = close
        self._discard = discard
        self._slots: dict[asyncio.AbstractEventLoop, _Slot[_T]] = {}
        self._current: _Slot[_T] | None = None

    async def get(self) -> _T:
        """The running loop's resource, opened on first use."""
        slot = self._current
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise not_on_asyncio(self._owner) from None
        if slot is not None and slot.value is not None and slot.loop is loop:
            return slot.value
        slot = self._slot(loop)
        async with slot.lock:
            if slot.value is None:
                slot.value = await self._open()
            return slot.value

    def lock(self) -> asyncio.Lock:
        """The running loop's lock, for one-time set-up that must not run twice at once."""
        return self._slot(running_loop(self._owner)).lock

    def _slot(self, loop: asyncio.AbstractEventLoop) -> _Slot[_T]:
        slot = self._slots.get(loop)
        if slot is None:
            self._prune()
            slot = self._slots[loop] = _Slot(loop)
        self._current = slot
        return slot

    def _prune(self) -> None:
        for loop in [loop for loop in self._slots if loop.is_closed()]:
            value = self._slots.pop(loop).value
            if value is not None:
                self._discard(value)

    async def close(self) -> None:
        """Release every loop's resource: the running loop's is closed properly, the others
        (closed loops, or loops of other threads) discarded. Later calls open afresh."""
        slots, self._slots, self._current = self._slots, {}, None
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # closed from outside asyncio (a trio app's shutdown)
            running = None
        for loop, slot in slots.items():
            if slot.value is None:
                continue
            if loop is running:
                await self._close(slot.value)
            elif loop.is_closed():
                self._discard(slot.value)
            else:
                loop.call_soon_threadsafe(self._discard, slot.value)


# -- a pool per loop, with bounded and retried statements --------------------------------------

_R = TypeVar("_R")


class PooledSQLStore:
    """What the SQL stores on a network server share: a pool per event loop opened lazily, the
    table created once, and :meth:`_run`, which bounds a statement by the store's timeouts,
    retries an idempotent one once when its pooled connection turns out to be dead (a server
    restart), and turns any failure into a :class:`StoreError` naming the store.

    A subclass sets ``_pools``, ``_secrets``, ``_create_table`` and the timeouts (see
    :meth:`_init_pooled`) and implements the driver-specific hooks below.
    """

    _pools: PerLoop[Any]
    _secrets: tuple[str, ...]
    _create_table: bool
    _connect_timeout: float
    _command_timeout: float
    _ready: bool

    def _init_pooled(
        self, *, create_table: bool, connect_timeout: float, command_timeout: float
    ) -> None:
        self._create_table = check_flag("create_table", create_table)
        self._connect_timeout = check_timeout("connect_timeout", connect_timeout)
        self._command_timeout = check_timeout("command_timeout", command_timeout)
        self._ready = False

    # -- driver hooks --------------------------------------------------------------------------

    async def _create(self, pool: Any) -> None:
        """Create the table and its indexes when missing."""
        raise NotImplementedError

    def _connection(self, pool: Any) -> AbstractAsyncContextManager[Any]:
        """A pooled connection, waited for at most ``connect_timeout``."""
        raise NotImplementedError

    def _broken(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the connection died (then a retry on a fresh one may work).
        Timeouts are never broken connections: retrying would only double the wait."""
        raise NotImplementedError

    async def _reset(self, pool: Any) -> None:
        """Make the pool replace its connections: one died, so its siblings did too."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------

    async def _get_pool(self) -> Any:
        """The running loop's pool, opened (and the table created) on first use."""
        pool = await self._pools.get()
        if self._ready:
            return pool
        async with self._pools.lock():
            if not self._ready:
                if self._create_table:
                    await self._create(pool)
                self._ready = True
        return pool

    async def _run(
        self, operation: str, query: Callable[[Any], Awaitable[_R]], *, retry: bool = False
    ) -> _R:
        """Run ``query(connection)`` on a pooled connection, bounded by the store's timeouts.

        ``retry``: the query is idempotent, so a connection that turns out to be dead is
        replaced and the query run once more.
        """
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            pool = None
            try:
                pool = await self._get_pool()
                async with self._connection(pool) as conn:
                    return await query(conn)
            except ConfigurationError:
                raise  # not an outage (called outside asyncio): no retry, no StoreError
            except Exception as exc:
                if not self._broken(exc):
                    raise store_error(repr(self), operation, exc, self._secrets) from exc
                if pool is not None:
                    await self._reset(pool)
                if attempt + 1 == attempts:
                    raise store_error(repr(self), operation, exc, self._secrets) from exc
        raise AssertionError("unreachable")


def json_merge(
    changed: Mapping[str, Any],
    deleted: Sequence[str],
    *,
    remove: str,
    set_pair: str,
    placeholder: str,
) -> tuple[str, list[Any]] | None:
    """The SQL expression that rewrites the ``data`` column for a ``merge`` (SQLite, MySQL),
    and its parameters; ``None`` when a key has no portable JSON path (save in full then).

    ``remove`` is the dialect's JSON remove function (``json_remove``), ``set_pair`` one
    path/value argument pair of its ``json_set`` (``?, json(?)``), ``placeholder`` its parameter
    mark.
    """
    items, names = merge_items(changed, deleted)
    set_paths = [json_path(n) for n, _ in items]
    del_paths = [json_path(n) for n in names]
    if None in set_paths or None in del_paths:
        return None
    data = "data"
    params: list[Any] = [*del_paths]
    if del_paths:
        data = f"{remove}(data" + f", {placeholder}" * len(del_paths) + ")"
    if items:
        # SQL function names are case-insensitive in both dialects.
        data = f"json_set({data}" + f", {set_pair}" * len(items) + ")"
        for path, (_, raw) in zip(set_paths, items, strict=True):
            params += [path, raw]
    return data, params
