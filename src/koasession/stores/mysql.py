"""A MySQL / MariaDB session store on asyncmy.

One InnoDB table (created when missing): ``id`` (ASCII, compared byte for byte, so ids that
differ only in case stay distinct sessions), ``data`` (utf8mb4 JSON text), ``expires_at``
(``DATETIME(6)`` in UTC, ``NULL`` for no expiry) and ``owner``, with indexes on ``expires_at``
(purge) and ``owner`` (owner index). Expiry uses the database clock (``UTC_TIMESTAMP(6)``), so
application servers with skewed clocks agree, whatever the server's time zone.

"No resurrection" comes from single statements under InnoDB's row locks: an update of a loaded
session is ``UPDATE ... WHERE id = %s AND <live>`` (0 rows matched once a logout deleted it; the
connection asks for *matched* rather than changed rows, so rewriting identical data still
counts), and an insert is a plain ``INSERT`` whose duplicate-key error means a collision, after
deleting the id's row only if it has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

try:
    import asyncmy
    from asyncmy import charset as asyncmy_charset
    from asyncmy.constants import CLIENT
except ImportError as exc:  # exercised by a test that hides asyncmy
    from ._sql import missing_driver

    raise missing_driver("MySQLStore", "asyncmy", "mysql") from exc

from ..errors import ConfigurationError, SessionIdCollision
from ._common import (
    LoadedKeyContext,
    OwnerFunc,
    StoredSession,
    StoreOptionsMixin,
    check_driver_options,
    check_pool_sizes,
    dumps,
    loads,
    pool_options_of,
    touch_items,
    ttl_seconds,
    valid_id,
    write_mode,
)
from ._sql import (
    DEFAULT_TABLE,
    AutoPurge,
    PerLoop,
    PooledSQLStore,
    check_table,
    json_merge,
    url_password,
)
from .base import MaxAge, SessionData

__all__ = ["MySQLStore"]

_NOW = "UTC_TIMESTAMP(6)"
_LIVE = f"(expires_at IS NULL OR expires_at > {_NOW})"
# A NULL number of microseconds gives a NULL expires_at: no expiry.
_EXPIRES = f"{_NOW} + INTERVAL %s MICROSECOND"
# Unix seconds of a UTC DATETIME, independent of the connection's time zone.
_EPOCH = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', expires_at) / 1000000"

_DEFAULT_TIMEOUT = 5.0
_DUPLICATE_KEY = 1062
# Client-side codes of a connection that died under us: "server has gone away", "lost
# connection during query", "lost connection at handshake".
_GONE = frozenset({2006, 2013, 2055})
# DATETIME ends in year 9999; longer lifetimes are stored as "no expiry" rather than failing.
_MAX_TTL = 7000 * 365 * 86400


def _error_code(exc: BaseException) -> int | None:
    code = exc.args[0] if exc.args else None
    return code if isinstance(code, int) else None


def describe_url(url: str) -> tuple[dict[str, Any], str, tuple[str, ...]]:
    """Split a ``mysql://`` / ``mariadb://`` URL into (asyncmy connect arguments, the address
    error messages name, the passwords they must never show).

    ``mysql://user:password@host:port/database``; ``?unix_socket=/run/mysqld/mysqld.sock``
    connects through a socket, ``?charset=`` overrides ``utf8mb4``.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("mysql", "mariadb"):
        raise ConfigurationError(f"not a mysql:// or mariadb:// URL: {parts.scheme}://...")
    params = dict(parse_qsl(parts.query))
    userinfo = parts.netloc.rpartition("@")[0]
    secrets = url_password(userinfo)
    try:
        port = parts.port or 3306
    except ValueError as exc:
        raise ConfigurationError(f"invalid port in the MySQL URL: {exc}") from None
    host = parts.hostname or "127.0.0.1"
    database = unquote(parts.path.lstrip("/"))
    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "charset": params.pop("charset", "utf8mb4"),
    }
    if database:
        kwargs["database"] = database
    if asyncmy_charset.charset_by_name(kwargs["charset"]) is None:
        # asyncmy fails each connection with "'NoneType' object has no attribute 'encoding'".
        raise ConfigurationError(
            f"unknown MySQL charset {kwargs['charset']!r} in the URL (the default is utf8mb4)"
        )
    socket = params.pop("unix_socket", None)
    if socket:
        kwargs["unix_socket"] = socket
    if params:
        raise ConfigurationError(
            f"unsupported MySQL URL parameters: {', '.join(sorted(params))} "
            "(give driver options with pool_options=)"
        )
    where = socket or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    address = where + (f"/{database}" if database else "")
    return kwargs, address, secrets


class MySQLStore(StoreOptionsMixin, PooledSQLStore):
    """Session store on MySQL (5.7+) or MariaDB (10.3+).

    The store connects lazily, inside the running event loop, and keeps one asyncmy pool per
    loop: a store made at import time works under successive test clients, pytest-asyncio's
    per-test loops and server reloads. Nothing it starts keeps the process alive;
    ``await store.close()`` (or ``async with store``) closes its pools, and the next call opens
    a new one.

    Every call is bounded: connecting and waiting for a pooled connection by
    ``connect_timeout``, each statement by ``command_timeout``. A read that fails because its
    pooled connection died (the server restarted) is retried once on a fresh connection, and
    the pool drops its other idle connections. Failures raise
    :class:`~koasession.errors.StoreError` naming the store and its address, never a password.

    :param url: ``mysql://user:password@host:3306/database`` (``mariadb://`` is the same);
        ``?unix_socket=/path`` for a local socket.
    :param table: table name, optionally ``database.table``.
    :param create_table: create the table with its indexes when missing (on first use).
    :param hash_ids: keep HMAC-SHA256(``hash_key``, id) instead of the id.
    :param owner: a function of the session data returning its owner (at most 255
        characters); stored in the ``owner`` column for :meth:`list_owner`, :meth:`revoke` and
        :meth:`destroy_owner`.
    :param purge_every: every this many writes, delete at most ``purge_limit`` expired rows
        (``0`` disables; then run :meth:`purge_expired` or ``koasession purge`` yourself).
    :param connect_timeout: seconds to open a connection or wait for a free pooled one
        (default 5, or the middleware's ``store_timeout`` when shorter).
    :param command_timeout: seconds one statement may take before it is abandoned (its
        connection is then closed, never reused half-read); default as ``connect_timeout``.
    :param pool_options: passed to ``asyncmy.create_pool`` (they override the defaults
        ``minsize=1, maxsize=10``; ``client_flag`` is combined with the flag the store needs).

    ``address`` is the server as error messages name it (``host:port/database``, no password).
    """

    def __init__(
        self,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        create_table: bool = True,
        hash_ids: bool = False,
        hash_key: str | bytes | None = None,
        owner: OwnerFunc | None = None,
        purge_every: int = 1000,
        purge_limit: int = 1000,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
        pool_options: dict[str, Any] | None = None,
    ) -> None:
        self._init_common(hash_ids=hash_ids, hash_key=hash_key, owner=owner)
        self._table, _ = check_table(table, allow_schema=True, quote="`")
        self.table = table
        self._purge = AutoPurge(purge_every, purge_limit)
        self._init_pooled(
            create_table=create_table,
            connect_timeout=_DEFAULT_TIMEOUT if connect_timeout is None else connect_timeout,
            command_timeout=_DEFAULT_TIMEOUT if command_timeout is None else command_timeout,
        )
        # Timeouts given here win over the middleware's store_timeout (use_store_timeout).
        self._adjustable = {
            name
            for name, value in (("connect", connect_timeout), ("command", command_timeout))
            if value is None
        }
        if not isinstance(url, str):
            raise ConfigurationError("MySQLStore needs a mysql:// URL")
        self._connect_args, self.address, self._secrets = describe_url(url)
        self._pool_options = pool_options_of("MySQLStore", pool_options)
        check_pool_sizes("MySQLStore", self._pool_options, "minsize", "maxsize", (1, 10))
        check_driver_options(
            "MySQLStore", self._pool_options, asyncmy.create_pool, asyncmy.connection.Connection
        )
        self._pools: PerLoop[Any] = PerLoop(self, self._open_pool, self._close_pool, _terminate)

    def __repr__(self) -> str:
        return f"MySQLStore({self.address}, table={self.table!r})"

    def use_store_timeout(self, timeout: float) -> None:
        """Bound the connect and statement timeouts by ``timeout``, unless they were given.

        The middleware calls this with its ``store_timeout`` (see :mod:`.base`), so that a
        call it gives up on also gives up its connection in time. It applies to pools already
        open as well.
        """
        if not timeout > 0:
            return
        if "connect" in self._adjustable:
            self._connect_timeout = min(self._connect_timeout, float(timeout))
        if "command" in self._adjustable:
            self._command_timeout = min(self._command_timeout, float(timeout))

    # -- setup ---------------------------------------------------------------------------------

    async def _open_pool(self) -> Any:
        options: dict[str, Any] = {
            "minsize": 1,
            "maxsize": 10,
            # asyncmy's own connect timeout counts whole seconds; the wait_for below is exact.
            "connect_timeout": max(1, round(self._connect_timeout)),
            # No driver read_timeout: its expiry looks like a lost connection (2013) and would
            # be retried. Statements are bounded by asyncio instead, which closes the
            # connection of a cancelled statement.
            # Every statement is its own transaction, as in the other SQL stores.
            "autocommit": True,
            **self._connect_args,
        }
        options.update(self._pool_options)
        # FOUND_ROWS: an UPDATE reports the rows it matched, so rewriting a session with
        # identical data is not mistaken for a session that was destroyed meanwhile.
        options["client_flag"] = int(options.get("client_flag", 0)) | CLIENT.FOUND_ROWS
        return await asyncio.wait_for(asyncmy.create_pool(**options), self._connect_timeout)

    async def _close_pool(self, pool: Any) -> None:
        pool.close()
        try:
            # wait_closed waits for every connection to come back: bounded, since one may be
            # stuck on a server that stopped answering.
            await asyncio.wait_for(pool.wait_closed(), self._command_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            pool.terminate()

    async def _create(self, pool: Any) -> None:
        # CREATE TABLE IF NOT EXISTS is atomic in MySQL (metadata locks), so servers starting
        # together need no extra lock. ascii_bin: ids are ASCII and compared byte for byte.
        async with self._connection(pool) as conn, conn.cursor() as cur:
            await self._bounded(
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._table} ("
                    " id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
                    " data LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,"
                    " expires_at DATETIME(6) NULL,"
                    " owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,"
                    " PRIMARY KEY (id),"
                    " KEY koasession_expires_at_idx (expires_at),"
                    " KEY koasession_owner_idx (owner)"
                    ") ENGINE=InnoDB"
                )
            )

    @contextlib.asynccontextmanager
    async def _acquire(self, pool: Any) -> AsyncIterator[Any]:
        # asyncmy's acquire has no timeout of its own.
        conn = await asyncio.wait_for(pool.acquire(), self._connect_timeout)
        try:
            yield conn
        finally:
            pool.release(conn)

    def _connection(self, pool: Any) -> AbstractAsyncContextManager[Any]:
        return self._acquire(pool)

    def _broken(self, exc: BaseException) -> bool:
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return False
        if isinstance(exc, asyncmy.errors.OperationalError):
            return _error_code(exc) in _GONE
        return isinstance(exc, (OSError, asyncmy.errors.InterfaceError))

    async def _reset(self, pool: Any) -> None:
        # Idle connections to a server that went away are dead too; the pool opens new ones.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.clear(), self._command_timeout)

    async def _bounded(self, awaitable: Any) -> Any:
        return await asyncio.wait_for(awaitable, self._command_timeout)

    async def _execute(self, operation: str, sql: str, *args: Any, retry: bool = True) -> int:
        """Run one statement; the number of rows it matched (retried once on a dead connection
        when ``retry``: the statement must then be idempotent)."""

        async def query(conn: Any) -> int:
            async with conn.cursor() as cur:
                await self._bounded(cur.execute(sql, args or None))
                count: int = cur.rowcount
                return count

        return await self._run(operation, query, retry=retry)

    async def _fetch(self, operation: str, sql: str, *args: Any) -> list[Any]:
        """The rows of one read-only query (retried once on a dead connection)."""

        async def query(conn: Any) -> list[Any]:
            async with conn.cursor() as cur:
                await self._bounded(cur.execute(sql, args or None))
                return list(await self._bounded(cur.fetchall()))

        return await self._run(operation, query, retry=True)

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
        invalid id never reaches the server)."""
        if not valid_id(key):
            return None
        rows = await self._fetch(
            "get",
            f"SELECT data FROM {self._table} WHERE id = %s AND {_LIVE}",
            self._stored_key(key),
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
        skey = self._stored_key(key)
        raw = dumps(data)
        ttl = ttl_seconds(max_age)
        micros = None if ttl is None or ttl > _MAX_TTL else round(ttl * 1_000_000)
        owner = self._owner_of(data)
        t = self._table
        mode = write_mode(key, ctx)
        # Writes are not retried: had the first attempt committed before its connection died,
        # a retried insert would report a collision with itself.
        if mode == "update":
            written = (
                await self._execute(
                    "set",
                    f"UPDATE {t} SET data = %s, expires_at = {_EXPIRES}, owner = %s"
                    f" WHERE id = %s AND {_LIVE}",
                    raw,
                    micros,
                    owner,
                    skey,
                    retry=False,
                )
                > 0
            )
        elif mode == "upsert":
            await self._execute(
                "set",
                f"INSERT INTO {t} (id, data, expires_at, owner) VALUES (%s, %s, {_EXPIRES}, %s)"
                " ON DUPLICATE KEY UPDATE data = VALUES(data), expires_at = VALUES(expires_at),"
                " owner = VALUES(owner)",
                skey,
                raw,
                micros,
                owner,
                retry=False,
            )
            written = True
        else:
            await self._insert(skey, raw, micros, owner)
            written = True
        if written:
            await self._purge.after_write(self._purge_batch)
        return written

    async def _insert(self, skey: str, raw: str, micros: int | None, owner: str | None) -> None:
        """Insert a new row; an expired row with that id is taken over, a live one is a
        collision."""
        sql = (
            f"INSERT INTO {self._table} (id, data, expires_at, owner)"
            f" VALUES (%s, %s, {_EXPIRES}, %s)"
        )
        for attempt in range(2):
            try:
                await self._execute("set", sql, skey, raw, micros, owner, retry=False)
                return
            except Exception as exc:
                cause = exc.__cause__
                duplicate = isinstance(cause, asyncmy.errors.IntegrityError) and (
                    _error_code(cause) == _DUPLICATE_KEY
                )
                if not duplicate:
                    raise
                if attempt:
                    raise SessionIdCollision("session id already exists") from None
            # The id exists: gone as far as anyone can see if it expired, so it may be reused.
            # Only an expired row is deleted; a concurrent insert of the same id then makes
            # the second INSERT fail, and exactly one of them wins.
            expired = await self._execute(
                "set",
                f"DELETE FROM {self._table} WHERE id = %s AND expires_at <= {_NOW}",
                skey,
            )
            if not expired:
                raise SessionIdCollision("session id already exists")

    async def touch(
        self,
        key: str,
        max_age: float | None = None,
        *,
        fields: Mapping[str, float],
        ctx: object | None = None,
    ) -> bool:
        """Extend the row under ``key`` to ``max_age`` seconds and set the metadata ``fields``
        in its value with one ``UPDATE`` (``JSON_SET``), keeping its data; ``False`` when the
        row is gone."""
        items = touch_items(fields)
        if not valid_id(key):
            raise ValueError("invalid session id")
        ttl = ttl_seconds(max_age)
        micros = None if ttl is None or ttl > _MAX_TTL else round(ttl * 1_000_000)
        data = "data"
        if items:
            # The names are TOUCH_FIELDS (checked above): constant paths, values bound.
            data = "JSON_SET(data" + "".join(f", '$.{n}', %s" for n, _ in items) + ")"
        count = await self._execute(
            "touch",
            f"UPDATE {self._table} SET data = {data}, expires_at = {_EXPIRES}"
            f" WHERE id = %s AND {_LIVE}",
            *[v for _, v in items],
            micros,
            self._stored_key(key),
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
        with one ``UPDATE`` (``JSON_REMOVE``, ``JSON_SET``), keeping every other key as stored,
        and extend it to ``max_age`` seconds; ``False`` when the row is gone. ``None`` (save
        in full) with ``owner=``, whose column needs the whole value, or for a key that has no
        JSON path (one holding ``"`` or ``\\``)."""
        if not valid_id(key):
            raise ValueError("invalid session id")
        # JSON_EXTRACT(text, '$') is JSON on MySQL and MariaDB alike (no CAST AS JSON there).
        update = json_merge(
            changed,
            deleted,
            remove="JSON_REMOVE",
            set_pair="%s, JSON_EXTRACT(%s, '$')",
            placeholder="%s",
        )
        if self._owner is not None or update is None:
            return None
        data, params = update
        ttl = ttl_seconds(max_age)
        micros = None if ttl is None or ttl > _MAX_TTL else round(ttl * 1_000_000)
        count = await self._execute(
            "merge",
            f"UPDATE {self._table} SET data = {data}, expires_at = {_EXPIRES}"
            f" WHERE id = %s AND {_LIVE}",
            *params,
            micros,
            self._stored_key(key),
            retry=False,
        )
        return count > 0

    async def destroy(self, key: str, *, ctx: object | None = None) -> None:
        """Remove the row saved under ``key``; a missing or invalid id is not an error."""
        if valid_id(key):
            await self._execute(
                "destroy", f"DELETE FROM {self._table} WHERE id = %s", self._stored_key(key)
            )

    # -- owner index ---------------------------------------------------------------------------

    async def _owner_destroy_all(self, owner: str) -> int:
        # In-flight requests of these sessions cannot bring them back: their saves are updates.
        # MySQL has no DELETE ... RETURNING: the live rows first, then the expired leftovers.
        live = await self._execute(
            "destroy_owner", f"DELETE FROM {self._table} WHERE owner = %s AND {_LIVE}", owner
        )
        await self._execute("destroy_owner", f"DELETE FROM {self._table} WHERE owner = %s", owner)
        return live

    async def _owner_destroy_one(self, stored_key: str, owner: str) -> bool:
        removed = await self._execute(
            "revoke",
            f"DELETE FROM {self._table} WHERE id = %s AND owner = %s AND {_LIVE}",
            stored_key,
            owner,
        )
        return removed > 0

    async def _owner_entries(self, owner: str) -> list[StoredSession]:
        rows = await self._fetch(
            "list_owner",
            f"SELECT id, data, {_EPOCH} FROM {self._table}"
            f" WHERE owner = %s AND {_LIVE} ORDER BY id",
            owner,
        )
        result = []
        for skey, raw, expires in rows:
            data = loads(raw)
            if data is not None:
                at = None if expires is None else float(expires)
                result.append(StoredSession(skey, data, at))
        return result

    # -- housekeeping --------------------------------------------------------------------------

    async def _purge_batch(self, limit: int) -> int:
        # DELETE ... LIMIT deletes in index order and re-checks expiry under the row lock, so
        # a row revived meanwhile is never taken.
        return await self._execute(
            "purge_expired",
            f"DELETE FROM {self._table} WHERE expires_at <= {_NOW} ORDER BY expires_at LIMIT %s",
            limit,
        )

    async def purge_expired(self, limit: int | None = None) -> int:
        """Delete expired rows (at most ``limit`` when given); return how many were deleted."""
        if limit is not None:
            return await self._purge_batch(limit)
        return await self._execute(
            "purge_expired", f"DELETE FROM {self._table} WHERE expires_at <= {_NOW}"
        )

    async def drop_table(self) -> None:
        """Drop the table (tests and uninstall); the next call recreates it."""
        await self._execute("drop_table", f"DROP TABLE IF EXISTS {self._table}")
        self._ready = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the pools this store opened. The store stays usable: the next call opens a new
        pool."""
        await self._pools.close()


def _terminate(pool: Any) -> None:
    if not pool._loop.is_closed():
        pool.terminate()  # a live loop of another thread (called in that loop)
        return
    # Nothing can run on a closed loop (Pool.terminate would schedule a task there): close the
    # connections directly. Even that fails part-way on a closed loop; the sockets are then
    # closed when garbage-collected.
    for conn in [*pool._free, *pool._used]:
        with contextlib.suppress(RuntimeError):
            conn.close()
