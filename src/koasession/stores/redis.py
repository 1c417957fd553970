"""A Redis session store on redis-py's asyncio client (Redis, Redis Cluster, Valkey).

The default layout is koa-redis's, so a Koa service using koa-session + koa-redis and a Python
service using this store can share sessions: key = the session id as the middleware made it
(plus an optional ``key_prefix``), value = ``JSON.stringify(data)`` including ``_expire`` and
``_maxAge``, TTL = ceil(seconds) set with the write itself.

Writes are single atomic commands, which is what makes "no resurrection" hold even across many
application servers: an insert is ``SET NX`` (fails if the id exists) and an update of a loaded
session is ``SET XX`` (fails if a logout deleted it meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import time
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster

from ..errors import ConfigurationError, SessionIdCollision
from ._common import (
    LoadedKeyContext,
    OwnerFunc,
    StoredSession,
    StoreOptionsMixin,
    WriteMode,
    dumps,
    loads,
    ttl_seconds,
    valid_id,
    write_mode,
)
from .base import SessionData

__all__ = ["RedisStore"]

# redis-py's asyncio cluster client (seen with 8.1) can fail a burst of commands on fresh
# connections with "'NoneType' object has no attribute 'writelines'" while sending the
# CLIENT SETINFO handshake; skipping that purely informational handshake avoids the race.
# Newer redis-py spells this driver_info=None, older versions lib_name/lib_version=None.
_CLUSTER_HANDSHAKE_WORKAROUND: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(RedisCluster.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)

# The owner index lives under "<key_prefix>owner|<owner id>". '|' is outside the session id
# alphabet (see valid_id), so no session id can ever name an index key, or the reverse.
_OWNER_SEP = "owner|"


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class RedisStore(StoreOptionsMixin):
    """Session store on Redis (or Valkey), standalone or cluster.

    :param url_or_client: a ``redis://``/``rediss://``/``unix://`` URL, or a ready
        ``redis.asyncio.Redis`` / ``redis.asyncio.RedisCluster`` client (with or without
        ``decode_responses``). A client passed in is not closed by :meth:`close`.
    :param key_prefix: prepended to every key, to namespace sessions in a shared database.
    :param cluster: with a URL, connect with ``RedisCluster.from_url``.
    :param hash_ids: keep HMAC-SHA256(``hash_key``, id) as the key instead of the id, so a dump
        of the database cannot be replayed as cookies (this gives up koa-redis compatibility).
    :param owner: a function of the session data returning its owner (e.g. the user id);
        maintains a set per owner for :meth:`destroy_owner` and :meth:`list_owner`.
    :param max_concurrency: at most this many store operations in flight at once (others
        wait); ``None`` for no limit.
    :param client_options: passed to the connection pool when a URL is given (by default a
        blocking pool of at most 64 connections that waits up to 10 s for a free one), or to
        ``RedisCluster.from_url``.
    """

    def __init__(
        self,
        url_or_client: str | Redis | RedisCluster = "redis://127.0.0.1:6379",
        *,
        key_prefix: str = "",
        cluster: bool = False,
        hash_ids: bool = False,
        hash_key: str | bytes | None = None,
        owner: OwnerFunc | None = None,
        max_concurrency: int | None = 64,
        **client_options: Any,
    ) -> None:
        self._init_common(hash_ids=hash_ids, hash_key=hash_key, owner=owner)
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ConfigurationError("max_concurrency must be a positive integer or None")
        # Bounds the operations in flight. redis-py's cluster client has no blocking pool:
        # past max_connections per node it fails ("MaxConnectionsError") instead of waiting,
        # so a burst of requests on one session would turn into errors.
        self._limit: asyncio.Semaphore | contextlib.nullcontext[None] = (
            asyncio.Semaphore(max_concurrency)
            if max_concurrency is not None
            else contextlib.nullcontext()
        )
        if not isinstance(key_prefix, str):
            raise ConfigurationError("key_prefix must be a string")
        self.key_prefix = key_prefix
        self._owns_client = isinstance(url_or_client, str)
        self.client: Redis | RedisCluster
        if isinstance(url_or_client, str):
            if cluster:
                cluster_options = {**_CLUSTER_HANDSHAKE_WORKAROUND, **client_options}
                self.client = RedisCluster.from_url(url_or_client, **cluster_options)
            else:
                # A blocking pool: a burst of concurrent requests waits for a connection
                # instead of failing with "Too many connections".
                options: dict[str, Any] = {"max_connections": 64, "timeout": 10}
                options.update(client_options)
                pool = BlockingConnectionPool.from_url(url_or_client, **options)
                self.client = Redis.from_pool(pool)
        elif isinstance(url_or_client, (Redis, RedisCluster)):
            if client_options or cluster:
                raise ConfigurationError("client options are only used with a URL")
            self.client = url_or_client
        else:
            raise ConfigurationError("RedisStore needs a redis URL or a redis.asyncio client")

    # -- keys ----------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.key_prefix + self._stored_key(key)

    def _owner_key(self, owner_id: str) -> str:
        return f"{self.key_prefix}{_OWNER_SEP}{owner_id}"

    @staticmethod
    def _ttl(max_age: float | None) -> int | None:
        ttl = ttl_seconds(max_age)
        if ttl is None:
            return None  # koa-redis: no TTL for a 'session' lifetime
        # koa-redis rounds up to whole seconds; Redis refuses EX 0.
        return max(1, math.ceil(ttl))

    # -- Store protocol ------------------------------------------------------------------------

    async def get(
        self,
        key: str,
        max_age: float | None = None,
        *,
        rolling: bool = False,
        ctx: object | None = None,
    ) -> SessionData | None:
        """Return the data saved under ``key``; ``None`` if missing or invalid (no server call
        for an invalid id)."""
        if not valid_id(key):
            return None
        async with self._limit:
            return await self._get(key)

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

        With a request context, a loaded id is only updated (``SET XX``; ``False`` when it was
        destroyed meanwhile) and a new id only inserted (``SET NX``; raises
        :class:`~koasession.errors.SessionIdCollision` when taken). Without one, upsert.
        """
        if not valid_id(key):
            raise ValueError("invalid session id")
        raw = dumps(data)
        async with self._limit:
            return await self._set(key, data, raw, max_age, write_mode(key, ctx))

    async def destroy(self, key: str, *, ctx: object | None = None) -> None:
        """Remove the entry saved under ``key``; a missing or invalid id is not an error."""
        if valid_id(key):
            async with self._limit:
                await self._destroy(key)

    async def destroy_owner(self, owner_id: str | int) -> int:
        """Remove every session of ``owner_id`` ("log out everywhere"); return how many.

        A request of one of these sessions that is in flight cannot bring it back: its save is
        an update (``SET XX``) and finds nothing.
        """
        self._require_owner()
        async with self._limit:
            return await self._destroy_owner(str(owner_id))

    async def list_owner(self, owner_id: str | int) -> list[StoredSession]:
        """List the live sessions of ``owner_id``; ``key`` is the stored key minus the prefix."""
        self._require_owner()
        async with self._limit:
            return await self._list_owner(str(owner_id))

    # -- implementation ------------------------------------------------------------------------

    async def _get(self, key: str) -> SessionData | None:
        raw = await self.client.get(self._key(key))
        return None if raw is None else loads(raw)

    async def _set(
        self, key: str, data: SessionData, raw: str, max_age: float | None, mode: WriteMode
    ) -> bool:
        owner = self._owner_of(data)
        rkey = self._key(key)
        ttl = self._ttl(max_age)
        if owner is not None:
            # Index first: the index may briefly name a key that is not there (harmless, pruned
            # by list_owner), but never misses a live session that destroy_owner must find.
            await self._index_add(owner, rkey, ttl)
        track_old = self._owner is not None and mode != "insert"
        result = await self.client.set(
            rkey,
            raw,
            ex=ttl,
            nx=mode == "insert",
            xx=mode == "update",
            get=track_old,
        )
        if mode == "insert":
            if not result and _text(await self.client.get(rkey)) == raw:
                # redis-py retries a command after a connection error (Redis Cluster clients
                # do so often under bursts); when the first attempt had reached the server,
                # the retried SET NX finds our own value. Same random id and same data
                # (which carries a millisecond _expire) means it is our write, not a collision.
                result = True
            if not result:
                if owner is not None:
                    await self._index_remove_if_absent(owner, rkey)
                raise SessionIdCollision("session id already exists")
            return True
        if track_old:
            # SET ... GET returns the previous value (None when there was none).
            previous = _text(result)
            if previous is None and mode == "update":
                if owner is not None:
                    await self._index_remove_if_absent(owner, rkey)
                return False
            old_owner = self._owner_of(loads(previous)) if previous is not None else None
            if old_owner is not None and old_owner != owner:
                await self.client.srem(self._owner_key(old_owner), rkey)
            return True
        # SET XX without GET: None when the key was gone.
        return mode != "update" or bool(result)

    async def _destroy(self, key: str) -> None:
        rkey = self._key(key)
        if self._owner is None:
            await self.client.delete(rkey)
            return
        previous = _text(await self.client.getdel(rkey))
        old_owner = self._owner_of(loads(previous)) if previous is not None else None
        if old_owner is not None:
            await self.client.srem(self._owner_key(old_owner), rkey)

    # -- owner index ---------------------------------------------------------------------------

    async def _index_add(self, owner: str, rkey: str, ttl: int | None) -> None:
        okey = self._owner_key(owner)
        await self.client.sadd(okey, rkey)
        if ttl is None:
            await self.client.persist(okey)
        else:
            # The set must outlive its longest session: NX gives a fresh set a TTL, GT only
            # ever extends it (Redis/Valkey >= 7.0).
            await self.client.expire(okey, ttl, nx=True)
            await self.client.expire(okey, ttl, gt=True)

    async def _index_remove_if_absent(self, owner: str, rkey: str) -> None:
        if not await self.client.exists(rkey):
            await self.client.srem(self._owner_key(owner), rkey)

    async def _destroy_owner(self, owner_id: str) -> int:
        okey = self._owner_key(owner_id)
        members = [m for m in map(_text, await self.client.smembers(okey)) if m]
        removed = 0
        for rkey in members:
            # One key per command: keys of different sessions live in different cluster slots.
            removed += int(await self.client.delete(rkey))
        if members:
            # SREM only what was seen, so a session inserted meanwhile stays indexed.
            await self.client.srem(okey, *members)
        return removed

    async def _list_owner(self, owner: str) -> list[StoredSession]:
        okey = self._owner_key(owner)
        members = sorted(m for m in map(_text, await self.client.smembers(okey)) if m)
        result = []
        stale = []
        now = time.time()
        for rkey in members:
            raw = await self.client.get(rkey)
            data = None if raw is None else loads(raw)
            if data is None or self._owner_of(data) != owner:
                stale.append(rkey)
                continue
            pttl = int(await self.client.pttl(rkey))
            expires = now + pttl / 1000 if pttl >= 0 else None
            result.append(StoredSession(rkey[len(self.key_prefix) :], data, expires))
        for rkey in stale:
            # Re-check: the session may have been (re)written since we read it.
            raw = await self.client.get(rkey)
            if raw is None or self._owner_of(loads(raw)) != owner:
                await self.client.srem(okey, rkey)
        return result

    # -- lifecycle -----------------------------------------------------------------------------

    async def ping(self) -> bool:
        """Return whether the server answers (for health checks)."""
        return bool(await self.client.ping())

    async def close(self) -> None:
        """Close the client if this store created it from a URL."""
        if self._owns_client:
            await self.client.aclose()
