"""A PostgreSQL session store on asyncpg.

One table (created when missing): ``id text primary key, data text, expires_at timestamptz,
owner text``, with indexes on ``expires_at`` (purge) and ``owner`` (owner index). Expiry uses
the database clock (``now()``), so application servers with skewed clocks agree.

Writes are single statements whose row locks make "no resurrection" hold across servers: an
update of a loaded session is ``UPDATE ... WHERE id = $1 AND <live>`` (0 rows once a logout
deleted it), an insert is ``INSERT ... ON CONFLICT`` that only takes over an *expired* row.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import parse_qsl, unquote

try:
    import asyncpg  # type: ignore[import-untyped]
except ImportError as exc:  # exercised by a test that hides asyncpg
    from ._sql import missing_driver

    raise missing_driver("PostgresStore", "asyncpg", "postgres") from exc

from ..errors import ConfigurationError, SessionIdCollision
from ._common import (
    LoadedKeyContext,
    OwnerFunc,
    StoredSession,
    StoreOptionsMixin,
    check_driver_options,
    check_pool_sizes,
    dumps,
    dumps_name,
    loads,
    merge_items,
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
    index_name,
    url_password,
)
from .base import MaxAge, SessionData

__all__ = ["PostgresStore"]

_LIVE = "(expires_at IS NULL OR expires_at > now())"
# NULL seconds give a NULL expires_at: no expiry.
_EXPIRES = "now() + $3::float8 * interval '1 second'"

# Errors of a connection that died under us (server restarted, socket reset): the pool
# replaces such a connection, so a retry on a fresh one usually succeeds. Timeouts are not
# among them: retrying would only double the wait.
_BROKEN = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


def _rowcount(status: str) -> int:
    # asyncpg returns the command tag: "INSERT 0 1", "UPDATE 0", "DELETE 3".
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, IndexError):
        return 0


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def check_dsn(dsn: str) -> None:
    """Refuse, when the store is made, a DSN that asyncpg would refuse at the first request:
    another scheme (a Redis URL, SQLAlchemy's ``postgresql+asyncpg://``) or a port that is not
    a number from 1 to 65535. Passwords are never shown."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme.lower() not in ("postgresql", "postgres"):
        hint = (
            f" (drop SQLAlchemy's driver suffix: {scheme.partition('+')[0]}://...)"
            if scheme.lower().partition("+")[0] in ("postgresql", "postgres")
            else ""
        )
        shown = f"{scheme}://..." if sep else "a DSN without a scheme"
        raise ConfigurationError(
            f"PostgresStore needs a postgresql:// (or postgres://) DSN; got {shown}{hint}"
        )
    sslmode = dict(parse_qsl(rest.partition("?")[2])).get("sslmode")
    if sslmode is not None and sslmode not in _SSLMODES:
        raise ConfigurationError(
            f"PostgresStore: sslmode={sslmode!r} in the DSN; asyncpg takes {', '.join(_SSLMODES)}"
        )
    hosts = rest.partition("/")[0].partition("?")[0].rpartition("@")[2]
    for host in hosts.split(","):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        if ":" not in port:
            continue
        port = port.rpartition(":")[2]
        if not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigurationError(
                f"PostgresStore: invalid port {port!r} in the DSN (a number from 1 to 65535)"
            )


def describe_dsn(dsn: str) -> tuple[str, tuple[str, ...]]:
    """Return (``host:port/dbname`` of a ``postgresql://`` DSN, the passwords it contains).

    The address names the server in error messages; the passwords are what must never appear
    in them.
    """
    _, _, rest = dsn.partition("://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    params = dict(parse_qsl(query))
    secrets = list(url_password(userinfo))
    if params.get("password"):
        secrets.append(params["password"])
    hosts = unquote(hosts) or params.get("host", "localhost")
    port = params.get("port", "5432")
    parts = []
    for host in hosts.split(","):
        bracketed = host.startswith("[")
        if (bracketed and "]:" in host) or (not bracketed and host.count(":") == 1):
            parts.append(host)  # it names its port
        elif host.count(":") > 1 and not bracketed:
            parts.append(f"[{host}]:{port}")
        else:
            parts.append(f"{host}:{port}")  # a name, an address or a socket directory
    dbname = unquote(path) or params.get("dbname", "")
    address = ",".join(parts) + (f"/{dbname}" if dbname else "")
    return address, tuple(s for s in secrets if s)


class PostgresStore(StoreOptionsMixin, PooledSQLStore):
    """Session store on PostgreSQL.

    The store connects lazily, inside the running event loop, and keeps one pool per loop: a
    store made at import time works under successive test clients, pytest-asyncio's per-test
    loops and server reloads. Nothing it starts keeps the process alive; ``await store.close()``
    (or ``async with store``) closes its pools, and the next call opens a new one.

    Every call is bounded: connecting by ``connect_timeout``, waiting for a pooled connection
    by ``connect_timeout``, and each statement by ``command_timeout``. A read that fails
    because its pooled connection died (the server restarted) is retried once on a fresh
    connection, and the pool then replaces its other connections. Failures raise
    :class:`~koasession.errors.StoreError` naming the store and its address, never a password.

    :param dsn_or_pool: a ``postgresql://`` DSN (the store then owns its pools) or an
        ``asyncpg.Pool`` (used as is, only in the loop that created it; not closed by
        :meth:`close`).
    :param table: table name, optionally ``schema.table``.
    :param create_table: create the table and indexes when missing (on first use, under an
        advisory lock so that several servers starting together do not race).
    :param hash_ids: keep HMAC-SHA256(``hash_key``, id) instead of the id.
    :param owner: a function of the session data returning its owner; stored in the ``owner``
        column for :meth:`list_owner`, :meth:`revoke` and :meth:`destroy_owner`.
    :param purge_every: every this many writes, delete at most ``purge_limit`` expired rows
        (``0`` disables; then run :meth:`purge_expired` or ``koasession purge`` yourself).
    :param connect_timeout: seconds to open a connection or wait for a free pooled one.
    :param command_timeout: seconds one statement may take before it is cancelled.
    :param pool_options: passed to ``asyncpg.create_pool`` when a DSN is given (they override
        the defaults ``min_size=1, max_size=10`` and the timeouts above).

    ``address`` is the server as error messages name it (``host:port/dbname``, no password).
    """

    def __init__(
        self,
        dsn_or_pool: str | Any,
        *,
        table: str = DEFAULT_TABLE,
        create_table: bool = True,
        hash_ids: bool = False,
        hash_key: str | bytes | None = None,
        owner: OwnerFunc | None = None,
        purge_every: int = 1000,
        purge_limit: int = 1000,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        pool_options: dict[str, Any] | None = None,
    ) -> None:
        self._init_common(hash_ids=hash_ids, hash_key=hash_key, owner=owner)
        self._table, bare = check_table(table, allow_schema=True)
        self.table = table
        self._bare = bare
        self._purge = AutoPurge(purge_every, purge_limit)
        self._init_pooled(
            create_table=create_table,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        self._pool_options = pool_options_of("PostgresStore", pool_options)
        check_pool_sizes("PostgresStore", self._pool_options, "min_size", "max_size", (1, 10))
        # The rest of the options go to asyncpg.connect, or to a connect= of the application's.
        check_driver_options(
            "PostgresStore",
            self._pool_options,
            asyncpg.create_pool,
            self._pool_options.get("connect") or asyncpg.connect,
            set_by_store=("dsn",),
        )
        if isinstance(dsn_or_pool, str):
            check_dsn(dsn_or_pool)
            self._dsn: str | None = dsn_or_pool
            self.address, self._secrets = describe_dsn(dsn_or_pool)
            self._pools: PerLoop[Any] = PerLoop(self, self._open_pool, self._close_pool, _terminate)
        elif isinstance(dsn_or_pool, asyncpg.Pool):
            if pool_options:
                raise ConfigurationError("pool_options are only used with a DSN")
            self._dsn = None
            self.address, self._secrets = "an asyncpg pool", ()
            pool = dsn_or_pool

            async def given() -> Any:
                return pool

            self._pools = PerLoop(self, given, _leave_open, _leave_open_sync)
        else:
            raise ConfigurationError("PostgresStore needs a DSN string or an asyncpg.Pool")

    def __repr__(self) -> str:
        return f"PostgresStore({self.address}, table={self.table!r})"

    # -- setup ---------------------------------------------------------------------------------

    async def _open_pool(self) -> Any:
        options: dict[str, Any] = {
            "min_size": 1,
            "max_size": 10,
            "timeout": self._connect_timeout,
            "command_timeout": self._command_timeout,
        }
        options.update(self._pool_options)
        return await asyncpg.create_pool(self._dsn, **options)

    async def _close_pool(self, pool: Any) -> None:
        try:
            # close() waits for every connection to be released: bounded, since one may be
            # stuck on a server that stopped answering.
            await asyncio.wait_for(pool.close(), self._command_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            pool.terminate()

    async def _create(self, pool: Any) -> None:
        t = self._table
        lock_id = int.from_bytes(
            hashlib.sha256(f"koasession:{self.table}".encode()).digest()[:8], "big", signed=True
        )
        timeout = self._command_timeout
        async with pool.acquire(timeout=self._connect_timeout) as conn, conn.transaction():
            # CREATE ... IF NOT EXISTS is not safe against itself in PostgreSQL (two servers
            # can both try and one fails on the catalog); the advisory lock serialises them.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id, timeout=timeout)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} ("
                " id text PRIMARY KEY,"
                " data text NOT NULL,"
                " expires_at timestamptz,"
                " owner text)",
                timeout=timeout,
            )
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {index_name(self._bare, 'expires_at_idx')}"
                f" ON {t} (expires_at)",
                timeout=timeout,
            )
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {index_name(self._bare, 'owner_idx')}"
                f" ON {t} (owner) WHERE owner IS NOT NULL",
                timeout=timeout,
            )

    def _connection(self, pool: Any) -> AbstractAsyncContextManager[Any]:
        conn: AbstractAsyncContextManager[Any] = pool.acquire(timeout=self._connect_timeout)
        return conn

    def _broken(self, exc: BaseException) -> bool:
        return isinstance(exc, _BROKEN) and not isinstance(
            exc, (TimeoutError, asyncio.TimeoutError)
        )

    async def _reset(self, pool: Any) -> None:
        # Replaced on their next use rather than failing one request each.
        await pool.expire_connections()

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
        sql = f"SELECT data FROM {self._table} WHERE id = $1 AND {_LIVE}"
        skey = self._stored_key(key)

        async def query(conn: Any) -> Any:
            return await conn.fetchval(sql, skey, timeout=self._command_timeout)

        raw = await self._run("get", query, retry=True)
        return None if raw is None else loads(raw)

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
        args = (self._stored_key(key), dumps(data), ttl_seconds(max_age), self._owner_of(data))
        t = self._table
        mode = write_mode(key, ctx)
        if mode == "update":
            sql = (
                f"UPDATE {t} SET data = $2, expires_at = {_EXPIRES}, owner = $4"
                f" WHERE id = $1 AND {_LIVE}"
            )
        else:
            # An insert may take over an expired row (it is gone as far as anyone can see),
            # never a live one.
            guard = " WHERE s.expires_at IS NOT NULL AND s.expires_at <= now()"
            sql = (
                f"INSERT INTO {t} AS s (id, data, expires_at, owner)"
                f" VALUES ($1, $2, {_EXPIRES}, $4)"
                " ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data,"
                " expires_at = EXCLUDED.expires_at, owner = EXCLUDED.owner"
                + (guard if mode == "insert" else "")
            )

        async def query(conn: Any) -> str:
            status: str = await conn.execute(sql, *args, timeout=self._command_timeout)
            return status

        # Not retried: had the first attempt committed before its connection died, a retried
        # insert would report a collision with itself.
        written = _rowcount(await self._run("set", query)) > 0
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
    ) -> bool | None:
        """Extend the row under ``key`` to ``max_age`` seconds and set the metadata ``fields``
        in its value with one ``UPDATE`` (``jsonb ||``), keeping its data; ``False`` when the
        row is gone, ``None`` when its value holds U+0000, which ``jsonb`` cannot (the
        middleware then saves in full)."""
        patch = dumps(dict(touch_items(fields)))
        if not valid_id(key):
            raise ValueError("invalid session id")
        # jsonb refuses U+0000 in strings: such a value is left to a full save (None).
        sql = (
            f"UPDATE {self._table} SET data = (data::jsonb || $2::jsonb)::text,"
            f" expires_at = {_EXPIRES} WHERE id = $1 AND {_LIVE}"
            " AND strpos(data, '\\u0000') = 0"
        )
        skey = self._stored_key(key)
        args = (skey, patch, ttl_seconds(max_age))

        async def query(conn: Any) -> str:
            status: str = await conn.execute(sql, *args, timeout=self._command_timeout)
            return status

        # Safe to repeat: the same fields and lifetime give the same row.
        if _rowcount(await self._run("touch", query, retry=True)) > 0:
            return True
        live = await self._fetch(
            "touch", f"SELECT 1 FROM {self._table} WHERE id = $1 AND {_LIVE}", skey
        )
        return None if live else False

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
        with one ``UPDATE`` (``jsonb -`` and ``||``), keeping every other key as stored, and
        extend it to ``max_age`` seconds; ``False`` when the row is gone. ``None`` (save in
        full) with ``owner=``, whose column needs the whole value, or when the value or the
        change holds U+0000, which ``jsonb`` cannot."""
        items, names = merge_items(changed, deleted)
        if not valid_id(key):
            raise ValueError("invalid session id")
        patch = "{" + ",".join(f"{dumps_name(n)}:{raw}" for n, raw in items) + "}"
        if self._owner is not None or "\\u0000" in patch:
            return None
        sql = (
            f"UPDATE {self._table} SET data = ((data::jsonb - $4::text[]) || $2::jsonb)::text,"
            f" expires_at = {_EXPIRES} WHERE id = $1 AND {_LIVE}"
            " AND strpos(data, '\\u0000') = 0"
        )
        skey = self._stored_key(key)
        args = (skey, patch, ttl_seconds(max_age), names)

        async def query(conn: Any) -> str:
            status: str = await conn.execute(sql, *args, timeout=self._command_timeout)
            return status

        if _rowcount(await self._run("merge", query)) > 0:
            return True
        live = await self._fetch(
            "merge", f"SELECT 1 FROM {self._table} WHERE id = $1 AND {_LIVE}", skey
        )
        return None if live else False

    async def destroy(self, key: str, *, ctx: object | None = None) -> None:
        """Remove the row saved under ``key``; a missing or invalid id is not an error."""
        if not valid_id(key):
            return
        await self._execute(
            "destroy", f"DELETE FROM {self._table} WHERE id = $1", self._stored_key(key)
        )

    async def _execute(self, operation: str, sql: str, *args: Any) -> str:
        """Run one idempotent statement (retried once on a dead connection); its status."""

        async def query(conn: Any) -> str:
            status: str = await conn.execute(sql, *args, timeout=self._command_timeout)
            return status

        return await self._run(operation, query, retry=True)

    async def _fetch(self, operation: str, sql: str, *args: Any) -> list[Any]:
        """Fetch the rows of one query (not retried: it may write)."""

        async def query(conn: Any) -> list[Any]:
            rows: list[Any] = await conn.fetch(sql, *args, timeout=self._command_timeout)
            return rows

        return await self._run(operation, query)

    # -- owner index ---------------------------------------------------------------------------

    async def _owner_destroy_all(self, owner: str) -> int:
        # In-flight requests of these sessions cannot bring them back: their saves are updates.
        rows = await self._fetch(
            "destroy_owner",
            f"DELETE FROM {self._table} WHERE owner = $1 RETURNING {_LIVE} AS live",
            owner,
        )
        return sum(1 for row in rows if row["live"])

    async def _owner_destroy_one(self, stored_key: str, owner: str) -> bool:
        status = await self._execute(
            "revoke",
            f"DELETE FROM {self._table} WHERE id = $1 AND owner = $2 AND {_LIVE}",
            stored_key,
            owner,
        )
        return _rowcount(status) > 0

    async def _owner_entries(self, owner: str) -> list[StoredSession]:
        sql = (
            f"SELECT id, data, extract(epoch FROM expires_at)::float8 AS expires"
            f" FROM {self._table} WHERE owner = $1 AND {_LIVE} ORDER BY id"
        )

        async def query(conn: Any) -> list[Any]:
            rows: list[Any] = await conn.fetch(sql, owner, timeout=self._command_timeout)
            return rows

        result = []
        for row in await self._run("list_owner", query, retry=True):
            data = loads(row["data"])
            if data is not None:
                result.append(StoredSession(row["id"], data, row["expires"]))
        return result

    # -- housekeeping --------------------------------------------------------------------------

    async def _purge_batch(self, limit: int) -> int:
        t = self._table
        # SKIP LOCKED: concurrent purgers (one per server) split the work instead of queueing.
        # The outer expiry check guards against a row revived between the two scans.
        status = await self._execute(
            "purge_expired",
            f"DELETE FROM {t} WHERE id IN (SELECT id FROM {t}"
            f" WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)"
            f" AND expires_at <= now()",
            limit,
        )
        return _rowcount(status)

    async def purge_expired(self, limit: int | None = None) -> int:
        """Delete expired rows (at most ``limit`` when given); return how many were deleted."""
        if limit is not None:
            return await self._purge_batch(limit)
        status = await self._execute(
            "purge_expired", f"DELETE FROM {self._table} WHERE expires_at <= now()"
        )
        return _rowcount(status)

    async def drop_table(self) -> None:
        """Drop the table (tests and uninstall); the next call recreates it."""
        await self._execute("drop_table", f"DROP TABLE IF EXISTS {self._table}")
        self._ready = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the pools this store opened (a pool given to it is left open). The store stays
        usable: the next call opens a new pool."""
        await self._pools.close()


def _terminate(pool: Any) -> None:
    # The pool's loop is closed, so nothing can be awaited: abort its connections. On a closed
    # loop even that fails part-way; the sockets are then closed when garbage-collected.
    with contextlib.suppress(RuntimeError):
        pool.terminate()


async def _leave_open(pool: Any) -> None:
    """A pool given by the application is closed by the application."""


def _leave_open_sync(pool: Any) -> None:
    """A pool given by the application is closed by the application."""
