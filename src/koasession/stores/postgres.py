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
import hashlib
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from ..errors import ConfigurationError, SessionIdCollision
from ._common import (
    LoadedKeyContext,
    OwnerFunc,
    StoredSession,
    StoreOptionsMixin,
    dumps,
    loads,
    ttl_seconds,
    valid_id,
    write_mode,
)
from ._sql import DEFAULT_TABLE, AutoPurge, check_table, index_name
from .base import SessionData

__all__ = ["PostgresStore"]

_LIVE = "(expires_at IS NULL OR expires_at > now())"
# NULL seconds give a NULL expires_at: no expiry.
_EXPIRES = "now() + $3::float8 * interval '1 second'"


def _rowcount(status: str) -> int:
    # asyncpg returns the command tag: "INSERT 0 1", "UPDATE 0", "DELETE 3".
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, IndexError):
        return 0


class PostgresStore(StoreOptionsMixin):
    """Session store on PostgreSQL.

    :param dsn_or_pool: a ``postgresql://`` DSN (the store then owns a pool created on first
        use) or an ``asyncpg.Pool`` (not closed by :meth:`close`).
    :param table: table name, optionally ``schema.table``.
    :param create_table: create the table and indexes when missing (on first use, under an
        advisory lock so that several servers starting together do not race).
    :param hash_ids: keep HMAC-SHA256(``hash_key``, id) instead of the id.
    :param owner: a function of the session data returning its owner; stored in the ``owner``
        column for :meth:`destroy_owner` and :meth:`list_owner`.
    :param purge_every: every this many writes, delete at most ``purge_limit`` expired rows
        (``0`` disables; then run :meth:`purge_expired` or ``koasession purge`` yourself).
    :param pool_options: passed to ``asyncpg.create_pool`` when a DSN is given.
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
        pool_options: dict[str, Any] | None = None,
    ) -> None:
        self._init_common(hash_ids=hash_ids, hash_key=hash_key, owner=owner)
        self._table, bare = check_table(table, allow_schema=True)
        self.table = table
        self._bare = bare
        self._create_table = create_table
        self._purge = AutoPurge(purge_every, purge_limit)
        if isinstance(dsn_or_pool, str):
            self._dsn: str | None = dsn_or_pool
            self._pool: Any = None
        elif isinstance(dsn_or_pool, asyncpg.Pool):
            if pool_options:
                raise ConfigurationError("pool_options are only used with a DSN")
            self._dsn = None
            self._pool = dsn_or_pool
        else:
            raise ConfigurationError("PostgresStore needs a DSN string or an asyncpg.Pool")
        self._pool_options = dict(pool_options or {})
        self._ready = False
        self._lock = asyncio.Lock()

    # -- setup ---------------------------------------------------------------------------------

    async def _get_pool(self) -> Any:
        if self._ready:
            return self._pool
        async with self._lock:
            if self._pool is None:
                options: dict[str, Any] = {"min_size": 1, "max_size": 10}
                options.update(self._pool_options)
                self._pool = await asyncpg.create_pool(self._dsn, **options)
            if self._create_table and not self._ready:
                await self._create(self._pool)
            self._ready = True
        return self._pool

    async def _create(self, pool: Any) -> None:
        t = self._table
        lock_id = int.from_bytes(
            hashlib.sha256(f"koasession:{self.table}".encode()).digest()[:8], "big", signed=True
        )
        async with pool.acquire() as conn, conn.transaction():
            # CREATE ... IF NOT EXISTS is not safe against itself in PostgreSQL (two servers
            # can both try and one fails on the catalog); the advisory lock serialises them.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} ("
                " id text PRIMARY KEY,"
                " data text NOT NULL,"
                " expires_at timestamptz,"
                " owner text)"
            )
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {index_name(self._bare, 'expires_at_idx')}"
                f" ON {t} (expires_at)"
            )
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {index_name(self._bare, 'owner_idx')}"
                f" ON {t} (owner) WHERE owner IS NOT NULL"
            )

    # -- Store protocol ------------------------------------------------------------------------

    async def get(
        self,
        key: str,
        max_age: float | None = None,
        *,
        rolling: bool = False,
        ctx: object | None = None,
    ) -> SessionData | None:
        """Return the data saved under ``key``; ``None`` if missing, expired or invalid (an
        invalid id never reaches the server)."""
        if not valid_id(key):
            return None
        pool = await self._get_pool()
        raw = await pool.fetchval(
            f"SELECT data FROM {self._table} WHERE id = $1 AND {_LIVE}", self._stored_key(key)
        )
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
        pool = await self._get_pool()
        if mode == "update":
            status = await pool.execute(
                f"UPDATE {t} SET data = $2, expires_at = {_EXPIRES}, owner = $4"
                f" WHERE id = $1 AND {_LIVE}",
                *args,
            )
        else:
            # An insert may take over an expired row (it is gone as far as anyone can see),
            # never a live one.
            guard = " WHERE s.expires_at IS NOT NULL AND s.expires_at <= now()"
            status = await pool.execute(
                f"INSERT INTO {t} AS s (id, data, expires_at, owner)"
                f" VALUES ($1, $2, {_EXPIRES}, $4)"
                " ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data,"
                " expires_at = EXCLUDED.expires_at, owner = EXCLUDED.owner"
                + (guard if mode == "insert" else ""),
                *args,
            )
        written = _rowcount(status) > 0
        if not written and mode == "insert":
            raise SessionIdCollision("session id already exists")
        if written:
            await self._purge.after_write(self._purge_batch)
        return written

    async def destroy(self, key: str, *, ctx: object | None = None) -> None:
        """Remove the row saved under ``key``; a missing or invalid id is not an error."""
        if not valid_id(key):
            return
        pool = await self._get_pool()
        await pool.execute(f"DELETE FROM {self._table} WHERE id = $1", self._stored_key(key))

    # -- owner index ---------------------------------------------------------------------------

    async def destroy_owner(self, owner_id: str | int) -> int:
        """Remove every session of ``owner_id`` ("log out everywhere"); return how many were
        live. In-flight requests of these sessions cannot bring them back."""
        self._require_owner()
        pool = await self._get_pool()
        rows = await pool.fetch(
            f"DELETE FROM {self._table} WHERE owner = $1 RETURNING {_LIVE} AS live", str(owner_id)
        )
        return sum(1 for row in rows if row["live"])

    async def list_owner(self, owner_id: str | int) -> list[StoredSession]:
        """List the live sessions of ``owner_id``."""
        self._require_owner()
        pool = await self._get_pool()
        rows = await pool.fetch(
            f"SELECT id, data, extract(epoch FROM expires_at)::float8 AS expires"
            f" FROM {self._table} WHERE owner = $1 AND {_LIVE} ORDER BY id",
            str(owner_id),
        )
        result = []
        for row in rows:
            data = loads(row["data"])
            if data is not None:
                result.append(StoredSession(row["id"], data, row["expires"]))
        return result

    # -- housekeeping --------------------------------------------------------------------------

    async def _purge_batch(self, limit: int) -> int:
        pool = await self._get_pool()
        t = self._table
        # SKIP LOCKED: concurrent purgers (one per server) split the work instead of queueing.
        # The outer expiry check guards against a row revived between the two scans.
        status = await pool.execute(
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
        pool = await self._get_pool()
        status = await pool.execute(f"DELETE FROM {self._table} WHERE expires_at <= now()")
        return _rowcount(status)

    async def drop_table(self) -> None:
        """Drop the table (tests and uninstall); the next call recreates it."""
        pool = await self._get_pool()
        await pool.execute(f"DROP TABLE IF EXISTS {self._table}")
        self._ready = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the pool if this store created it from a DSN."""
        if self._dsn is not None and self._pool is not None:
            pool, self._pool = self._pool, None
            self._ready = False
            await pool.close()
