"""A SQLite session store on aiosqlite: the embedded server-side store.

One database file, which survives restarts and is safe to share between the worker processes of
one machine: the database runs in WAL mode (readers never block the writer) with a busy timeout
(writers queue instead of failing), and every write is a single statement, atomic on its own.
SQLite serialises writers, which is what makes "no resurrection" hold: an update of a loaded
session only touches a row that is still live when its turn comes.

Expiry uses the application servers' wall clock (``time.time()``), stored as Unix seconds.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

try:
    import aiosqlite
except ImportError as exc:  # exercised by a test that hides aiosqlite
    from ._sql import missing_driver

    raise missing_driver("SQLiteStore", "aiosqlite", "sqlite") from exc

from ..errors import ConfigurationError, SessionIdCollision, check_flag
from ._common import (
    LoadedKeyContext,
    OwnerFunc,
    StoredSession,
    StoreOptionsMixin,
    dumps,
    loads,
    not_on_asyncio,
    touch_items,
    ttl_seconds,
    valid_id,
    write_mode,
)
from ._sql import (
    DEFAULT_TABLE,
    AutoPurge,
    check_table,
    index_name,
    json_merge,
    store_error,
)
from .base import MaxAge, SessionData

__all__ = ["SQLiteStore"]

_LIVE = "(expires_at IS NULL OR expires_at > ?)"

_R = TypeVar("_R")


def _worker(conn: aiosqlite.Connection) -> threading.Thread | None:
    # aiosqlite < 0.21 made the connection itself the worker thread; later versions hold one.
    thread = getattr(conn, "_thread", conn)
    return thread if isinstance(thread, threading.Thread) else None


def _daemonize(conn: aiosqlite.Connection) -> None:
    """Make the connection's worker thread a daemon before it starts.

    aiosqlite runs each connection in a non-daemon thread, which keeps the interpreter alive
    after the last line of a script (and after Ctrl-C on a server) until someone closes the
    connection. Python joins non-daemon threads before ``atexit`` handlers run, so closing at
    exit cannot help; a daemon thread can. An abandoned write is rolled back by SQLite's
    journal, so nothing is corrupted.
    """
    thread = _worker(conn)
    if thread is not None and not thread.is_alive():
        thread.daemon = True


async def _stopped(conn: aiosqlite.Connection) -> None:
    """Wait for the worker thread of a connection that failed to open to end.

    aiosqlite stops it without waiting, and the thread's last act is to report to the event
    loop: if the loop closed first (a script's ``asyncio.run`` ending on the error), the thread
    dies on "Event loop is closed" and prints its traceback.
    """
    thread = _worker(conn)
    if thread is not None and thread.is_alive():
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 5.0)


#: The database handles of connections a parent process opened before it forked this one
#: (gunicorn ``--preload``, for one), kept unused until this process ends. SQLite forbids
#: carrying a connection across a fork: closing the child's copy while the child has a
#: connection of its own to the file can release that one's locks (POSIX locks belong to the
#: process). Kept referenced until the interpreter ends, after the stores were closed at exit.
_INHERITED: list[object] = []


def _set_aside(conn: aiosqlite.Connection) -> None:
    """Keep the database handle of an inherited connection out of the garbage collector's way
    (see ``_INHERITED``); aiosqlite, which would warn that it was never closed, lets go of it."""
    handle = getattr(conn, "_connection", None)
    if handle is None:  # another aiosqlite: keep the whole connection instead
        _INHERITED.append(conn)
        return
    _INHERITED.append(handle)
    conn._connection = None


#: Every store of this process, told of a fork in the child (:meth:`SQLiteStore._forked`).
_STORES: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._forked()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _usable(conn: aiosqlite.Connection) -> bool:
    """Whether the connection's worker thread still runs.

    aiosqlite hands each result to the loop that asked for it; when that loop was closed
    with a call in flight, the worker thread dies, and every later call would wait forever.
    """
    thread = _worker(conn)
    return thread is None or thread.is_alive()


class SQLiteStore(StoreOptionsMixin):
    """Session store in a SQLite database file.

    The store opens its connection lazily, on first use. aiosqlite answers each call in the
    event loop that made it, so one connection serves successive loops (test clients,
    pytest-asyncio's per-test loops); a connection whose worker died with a closed loop is
    replaced. A connection opened before a fork (gunicorn ``--preload``) is set aside unused
    in the child, which opens its own; a connection given to the store cannot be reopened, so
    in a forked child its calls raise :class:`~koasession.errors.ConfigurationError`. The
    worker thread is a daemon: a script or a server that forgets to close the store still
    exits. ``await store.close()`` (or ``async with store``) closes the connection; the next
    call opens a new one. Failures raise :class:`~koasession.errors.StoreError` naming the
    store and its file.

    :param path: the database file (created when missing), or an open ``aiosqlite.Connection``
        (used as is and not closed by :meth:`close`; it should be in autocommit mode,
        ``isolation_level=None``).
    :param table: table name (created with its indexes when missing).
    :param busy_timeout: seconds a write waits for another process's write to finish (and the
        first use waits to switch a new file to WAL mode).
    :param hash_ids: keep HMAC-SHA256(``hash_key``, id) instead of the id.
    :param owner: a function of the session data returning its owner; stored in the ``owner``
        column for :meth:`list_owner`, :meth:`revoke` and :meth:`destroy_owner`.
    :param purge_every: every this many writes, delete at most ``purge_limit`` expired rows
        (``0`` disables; then run :meth:`purge_expired` or ``koasession purge`` yourself).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | aiosqlite.Connection,
        *,
        table: str = DEFAULT_TABLE,
        create_table: bool = True,
        busy_timeout: float = 5.0,
        hash_ids: bool = False,
        hash_key: str | bytes | None = None,
        owner: OwnerFunc | None = None,
        purge_every: int = 1000,
        purge_limit: int = 1000,
    ) -> None:
        self._init_common(hash_ids=hash_ids, hash_key=hash_key, owner=owner)
        self._table, bare = check_table(table, allow_schema=False)
        self.table = table
        self._bare = bare
        self._create_table = check_flag("create_table", create_table)
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, (int, float)):
            raise ConfigurationError(
                f"busy_timeout must be a number of seconds (0 or more); got {busy_timeout!r}"
            )
        if busy_timeout < 0:
            raise ConfigurationError("busy_timeout must be >= 0 seconds")
        self._busy_ms = int(busy_timeout * 1000)
        self._purge = AutoPurge(purge_every, purge_limit)
        if isinstance(path, aiosqlite.Connection):
            self.path: str | None = None
            self._conn: aiosqlite.Connection | None = path
            self._owns_conn = False
        elif isinstance(path, (str, os.PathLike)):
            self.path = os.fspath(path)
            if self.path in ("", ":memory:"):
                # Each connection would get its own private database: not a session store.
                raise ConfigurationError("SQLiteStore needs a file path, not ':memory:'")
            scheme, sep, rest = self.path.partition("://")
            if sep and scheme.isalpha():
                # The file would be "sqlite:/x.db" in a directory "sqlite:": every call failing.
                shown = rest[1:] if rest.startswith("/") else rest
                raise ConfigurationError(
                    f"SQLiteStore takes a file path, not a URL: SQLiteStore({shown!r}), or "
                    f"store_from_url({self.path!r}) from koasession.stores"
                )
            if os.path.isdir(self.path):
                raise ConfigurationError(
                    f"SQLiteStore needs the database file, and {self.path!r} is a directory: "
                    f"SQLiteStore({os.path.join(self.path, 'sessions.db')!r}) for a file in it"
                )
            self._conn = None
            self._owns_conn = True
        else:
            raise ConfigurationError("SQLiteStore needs a file path or an aiosqlite.Connection")
        self._ready = False  # the connection in _conn has been set up
        _STORES.add(self)
        # asyncio locks belong to one loop: a new one for each loop (the loop is kept so that
        # a new loop can never pass for the old one).
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        where = "an aiosqlite connection" if self.path is None else repr(os.path.abspath(self.path))
        return f"SQLiteStore({where}, table={self.table!r})"

    # -- setup ---------------------------------------------------------------------------------

    async def _db(self) -> aiosqlite.Connection:
        """The connection, opened (and the table created) on first use."""
        # The connection answers any asyncio loop, but aiosqlite needs one: outside asyncio its
        # error would be a "no current event loop" deep inside. (In line: every call runs it.)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise not_on_asyncio(self) from None
        conn = self._conn
        if self._ready and conn is not None and _usable(conn):
            return conn
        if self._lock_loop is not loop:
            self._lock_loop, self._lock = loop, asyncio.Lock()
        async with self._lock:
            conn = self._conn
            if conn is not None and not _usable(conn):
                if not self._owns_conn:
                    # Every call would wait on a thread that is gone, until the store_timeout.
                    raise ConfigurationError(
                        f"{self!r}: the aiosqlite connection it was given no longer runs (its "
                        "thread ended: it was opened before this process forked, or its event "
                        "loop closed during a call); give the store a path to open its own"
                    )
                conn = self._conn = None  # its thread is gone; the sqlite3 handle goes with GC
                self._ready = False
            if conn is None:
                assert self.path is not None
                # isolation_level=None: autocommit, so each statement is its own transaction
                # and concurrent coroutines sharing the connection never share a transaction.
                conn = aiosqlite.connect(self.path, isolation_level=None)
                _daemonize(conn)
                try:
                    await conn
                except Exception:
                    await _stopped(conn)
                    raise
                self._conn = conn
            if not self._ready:
                await self._setup(conn)
                self._ready = True
        return conn

    def _forked(self) -> None:
        """In a child just forked: let go of the connection the parent opened, without closing
        it (see ``_INHERITED``), so that the next call opens one of this process's own. A
        connection given to the store is kept: the next call finds its thread gone and says so.
        """
        if self._owns_conn and self._conn is not None:
            _set_aside(self._conn)
            self._conn = None
        self._ready = False

    async def _setup(self, conn: aiosqlite.Connection) -> None:
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        await conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        if self._owns_conn:
            await self._enable_wal(conn)
            # NORMAL is durable in WAL mode except for the last commits on power loss, an
            # acceptable trade for sessions.
            await conn.execute("PRAGMA synchronous = NORMAL")
        if self._create_table:
            await self._create(conn)

    async def _enable_wal(self, conn: aiosqlite.Connection) -> None:
        """Switch the file to WAL mode, retrying for up to ``busy_timeout``.

        While another connection holds a write lock on the file, SQLite refuses the switch
        with "database is locked" at once, without waiting on the busy timeout. Worker
        processes starting together on a new file meet this: with plain ``sqlite3``, six
        processes opening a fresh file at once failed about one start in sixty. Once the file
        is in WAL mode the statement is a no-op.
        """
        deadline = time.monotonic() + self._busy_ms / 1000
        delay = 0.002
        while True:
            try:
                await conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                remaining = deadline - time.monotonic()
                if "locked" not in str(exc) or remaining <= 0:
                    raise
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)

    async def _create(self, conn: aiosqlite.Connection) -> None:
        t = self._table
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " id TEXT PRIMARY KEY NOT NULL,"
            " data TEXT NOT NULL,"
            " expires_at REAL,"
            " owner TEXT)"
        )
        await conn.execute(
            f"CREATE INDEX IF NOT EXISTS {index_name(self._bare, 'expires_at_idx')}"
            f" ON {t} (expires_at)"
        )
        await conn.execute(
            f"CREATE INDEX IF NOT EXISTS {index_name(self._bare, 'owner_idx')}"
            f" ON {t} (owner) WHERE owner IS NOT NULL"
        )

    async def _run(
        self, operation: str, query: Callable[[aiosqlite.Connection], Awaitable[_R]]
    ) -> _R:
        """Run ``query(connection)``; a failure becomes a ``StoreError`` naming the file."""
        try:
            return await query(await self._db())
        except ConfigurationError:
            raise  # not an outage (called outside asyncio)
        except Exception as exc:
            raise store_error(repr(self), operation, exc, ()) from exc

    async def _execute(self, operation: str, sql: str, *params: Any) -> int:
        """Run one statement; return the number of rows it changed."""

        async def query(conn: aiosqlite.Connection) -> int:
            async with conn.execute(sql, params) as cursor:
                return cursor.rowcount

        return await self._run(operation, query)

    async def _fetch(self, operation: str, sql: str, *params: Any) -> list[Any]:
        """Run one query; return its rows."""

        async def query(conn: aiosqlite.Connection) -> list[Any]:
            # One call to aiosqlite's thread: a query run in one call and fetched in the next
            # holds a read transaction in between, and a write of a concurrent request on this
            # connection then fails at once with "database is locked" if another process wrote.
            return list(await conn.execute_fetchall(sql, params))

        return await self._run(operation, query)

    # -- Store protocol ------------------------------------------------------------------------

    async def get(
        self,
        key: str,
        max_age: MaxAge | None = None,
        *,
        rolling: bool = False,
        ctx: object | None = None,
    ) -> SessionData | None:
        """Return the data saved under ``key``; ``None`` if missing, expired or invalid (an
        invalid id never reaches the database)."""
        if not valid_id(key):
            return None
        rows = await self._fetch(
            "get",
            f"SELECT data FROM {self._table} WHERE id = ? AND {_LIVE}",
            self._stored_key(key),
            time.time(),
        )
        return loads(rows[0][0]) if rows else None

    async def set(
        self,
        key: str,
        data: SessionData,
        max_age: float | None = None,
        *,
        rolling: bool = False,
        changed: bool = True,
        ctx: LoadedKeyContext | None = None,
    ) -> bool:
        """Save ``data`` under ``key`` for ``max_age`` seconds (``None``: no expiry).

        With a request context, a loaded id is only updated (``False`` when it was destroyed
        meanwhile) and a new id only inserted (raises
        :class:`~koasession.errors.SessionIdCollision` when a live row has it). Without one,
        upsert.
        """
        if not valid_id(key):
            raise ValueError("invalid session id")
        now = time.time()
        ttl = ttl_seconds(max_age)
        skey = self._stored_key(key)
        raw = dumps(data)
        expires = None if ttl is None else now + ttl
        owner = self._owner_of(data)
        t = self._table
        mode = write_mode(key, ctx)
        if mode == "update":
            count = await self._execute(
                "set",
                f"UPDATE {t} SET data = ?, expires_at = ?, owner = ? WHERE id = ? AND {_LIVE}",
                raw,
                expires,
                owner,
                skey,
                now,
            )
        else:
            sql = (
                f"INSERT INTO {t} (id, data, expires_at, owner) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET data = excluded.data,"
                " expires_at = excluded.expires_at, owner = excluded.owner"
            )
            params: tuple[Any, ...] = (skey, raw, expires, owner)
            if mode == "insert":
                # An insert may take over an expired row, never a live one.
                sql += f" WHERE {t}.expires_at IS NOT NULL AND {t}.expires_at <= ?"
                params += (now,)
            count = await self._execute("set", sql, *params)
        written = count > 0
        if not written and mode == "insert":
            raise SessionIdCollision("session id already exists")
        if written:
            await self._purge.after_write(self._purge_batch)
        return written

    async def touch(
        self,
        key: str,
        max_age: float | None = None,
        *,
        fields: Mapping[str, float],
        ctx: object | None = None,
    ) -> bool:
        """Extend the row under ``key`` to ``max_age`` seconds and set the metadata ``fields``
        in its value with one ``UPDATE`` (``json_set``), keeping its data; ``False`` when the
        row is gone."""
        items = touch_items(fields)
        if not valid_id(key):
            raise ValueError("invalid session id")
        now = time.time()
        ttl = ttl_seconds(max_age)
        data = "data"
        params: list[Any] = []
        if items:
            # The names are TOUCH_FIELDS (checked above): constant paths, values bound.
            data = "json_set(data" + "".join(f", '$.{n}', ?" for n, _ in items) + ")"
            params = [v for _, v in items]
        count = await self._execute(
            "touch",
            f"UPDATE {self._table} SET data = {data}, expires_at = ? WHERE id = ? AND {_LIVE}",
            *params,
            None if ttl is None else now + ttl,
            self._stored_key(key),
            now,
        )
        return count > 0

    async def merge(
        self,
        key: str,
        changed: Mapping[str, Any],
        deleted: Sequence[str],
        max_age: float | None = None,
        *,
        ctx: object | None = None,
    ) -> bool | None:
        """Set the keys ``changed`` and remove the keys ``deleted`` in the value under ``key``
        with one ``UPDATE`` (``json_remove``, ``json_set``), keeping every other key as stored,
        and extend it to ``max_age`` seconds; ``False`` when the row is gone. ``None`` (save
        in full) with ``owner=``, whose column needs the whole value, or for a key that has no
        JSON path (one holding ``"`` or ``\\``)."""
        if not valid_id(key):
            raise ValueError("invalid session id")
        update = json_merge(
            changed, deleted, remove="json_remove", set_pair="?, json(?)", placeholder="?"
        )
        if self._owner is not None or update is None:
            return None
        data, params = update
        now = time.time()
        ttl = ttl_seconds(max_age)
        count = await self._execute(
            "merge",
            f"UPDATE {self._table} SET data = {data}, expires_at = ? WHERE id = ? AND {_LIVE}",
            *params,
            None if ttl is None else now + ttl,
            self._stored_key(key),
            now,
        )
        return count > 0

    async def destroy(self, key: str, *, ctx: object | None = None) -> None:
        """Remove the row saved under ``key``; a missing or invalid id is not an error."""
        if valid_id(key):
            await self._execute(
                "destroy", f"DELETE FROM {self._table} WHERE id = ?", self._stored_key(key)
            )

    # -- owner index ---------------------------------------------------------------------------

    async def _owner_destroy_all(self, owner: str) -> int:
        # In-flight requests of these sessions cannot bring them back: their saves are updates.
        # Two statements instead of DELETE ... RETURNING, which needs SQLite 3.35.
        live = await self._execute(
            "destroy_owner",
            f"DELETE FROM {self._table} WHERE owner = ? AND {_LIVE}",
            owner,
            time.time(),
        )
        await self._execute("destroy_owner", f"DELETE FROM {self._table} WHERE owner = ?", owner)
        return live

    async def _owner_destroy_one(self, stored_key: str, owner: str) -> bool:
        removed = await self._execute(
            "revoke",
            f"DELETE FROM {self._table} WHERE id = ? AND owner = ? AND {_LIVE}",
            stored_key,
            owner,
            time.time(),
        )
        return removed > 0

    async def _owner_entries(self, owner: str) -> list[StoredSession]:
        rows = await self._fetch(
            "list_owner",
            f"SELECT id, data, expires_at FROM {self._table}"
            f" WHERE owner = ? AND {_LIVE} ORDER BY id",
            owner,
            time.time(),
        )
        result = []
        for skey, raw, expires in rows:
            data = loads(raw)
            if data is not None:
                result.append(StoredSession(skey, data, expires))
        return result

    # -- housekeeping --------------------------------------------------------------------------

    async def _purge_batch(self, limit: int) -> int:
        t = self._table
        now = time.time()
        return await self._execute(
            "purge_expired",
            f"DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE expires_at <= ? LIMIT ?)",
            now,
            limit,
        )

    async def purge_expired(self, limit: int | None = None) -> int:
        """Delete expired rows (at most ``limit`` when given); return how many were deleted."""
        if limit is not None:
            return await self._purge_batch(limit)
        return await self._execute(
            "purge_expired", f"DELETE FROM {self._table} WHERE expires_at <= ?", time.time()
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection if this store opened it (a connection given to it is left
        open). The store stays usable: the next call opens a new connection."""
        if self._owns_conn and self._conn is not None:
            conn, self._conn = self._conn, None
            self._ready = False
            if not _usable(conn):
                return
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                # Closed from outside asyncio (a trio app's shutdown): nothing there can await
                # aiosqlite, so its thread closes the connection and stops, unawaited.
                conn.stop()
                return
            await conn.close()
