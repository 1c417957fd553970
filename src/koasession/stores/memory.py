"""An in-process session store with expiry and a bound on its size.

For development, tests and single-process deployments: data is lost on restart and is not shared
between worker processes. Use :class:`~koasession.stores.redis.RedisStore`,
:class:`~koasession.stores.postgres.PostgresStore` or
:class:`~koasession.stores.sqlite.SQLiteStore` otherwise.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

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
from .base import SessionData

__all__ = ["MemoryStore"]

# How many of the oldest entries a write inspects for expiry, so that expired entries are
# reclaimed steadily without an O(n) sweep on the request path.
_SWEEP_PER_WRITE = 8


@dataclass
class _Entry:
    raw: str  # JSON text: keeping text, not the dict, makes every get return a fresh copy
    deadline: float | None  # time.monotonic() deadline; None = no expiry
    owner: str | None


class MemoryStore(StoreOptionsMixin):
    """A dict-based store implementing the :class:`~koasession.stores.base.Store` protocol.

    - Entries expire after the ``max_age`` given to :meth:`set` (seconds, monotonic clock, so
      wall-clock jumps do not expire or revive sessions). ``session_ttl`` is the lifetime used
      when ``set`` is called with ``max_age=None`` (direct calls; the middleware always passes a
      finite lifetime).
    - At most ``max_entries`` live entries: a write that would exceed the bound first drops
      expired entries, then the least recently written one.
    - Data is copied in and out through JSON, so callers never alias stored data.
    - Writes from the middleware follow the ``ctx.loaded_key`` contract (see
      :mod:`koasession.stores.base`): no resurrection after a destroy, and
      :class:`~koasession.errors.SessionIdCollision` on an insert of an existing id.
    - ``hash_ids=True`` keeps HMAC-SHA256(``hash_key``, id) instead of the id; ``owner`` maintains
      a per-owner index for :meth:`destroy_owner` and :meth:`list_owner`.
    """

    #: Tells the middleware that calls never wait on I/O, so no timeout wrapper is needed.
    in_process = True

    def __init__(
        self,
        max_entries: int = 10000,
        session_ttl: float | None = 86400,
        *,
        hash_ids: bool = False,
        hash_key: str | bytes | None = None,
        owner: OwnerFunc | None = None,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError("max_entries must be a positive integer")
        self._init_common(hash_ids=hash_ids, hash_key=hash_key, owner=owner)
        self.max_entries = max_entries
        self.session_ttl = ttl_seconds(session_ttl)
        # Insertion order = last-write order (move_to_end on every write): the front is the
        # least recently written entry, evicted first when the store is full.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._owners: dict[str, set[str]] = {}

    # -- internals -----------------------------------------------------------------------------

    def _live(self, skey: str, now: float) -> _Entry | None:
        entry = self._entries.get(skey)
        if entry is None:
            return None
        if entry.deadline is not None and entry.deadline <= now:
            self._drop(skey)
            return None
        return entry

    def _drop(self, skey: str) -> _Entry | None:
        entry = self._entries.pop(skey, None)
        if entry is not None and entry.owner is not None:
            members = self._owners.get(entry.owner)
            if members is not None:
                members.discard(skey)
                if not members:
                    del self._owners[entry.owner]
        return entry

    def _sweep(self, now: float, limit: int | None) -> int:
        """Drop expired entries among the oldest ``limit`` (all when ``None``)."""
        expired = []
        for i, (skey, entry) in enumerate(self._entries.items()):
            if limit is not None and i >= limit:
                break
            if entry.deadline is not None and entry.deadline <= now:
                expired.append(skey)
        for skey in expired:
            self._drop(skey)
        return len(expired)

    def _make_room(self, now: float) -> None:
        if len(self._entries) < self.max_entries:
            return
        self._sweep(now, None)
        while len(self._entries) >= self.max_entries:
            self._drop(next(iter(self._entries)))

    # -- Store protocol ------------------------------------------------------------------------

    async def get(
        self,
        key: str,
        max_age: float | None = None,
        *,
        rolling: bool = False,
        ctx: object | None = None,
    ) -> SessionData | None:
        """Return a copy of the data under ``key``; ``None`` if missing, expired or invalid."""
        if not valid_id(key):
            return None
        entry = self._live(self._stored_key(key), time.monotonic())
        return None if entry is None else loads(entry.raw)

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
        """Save a copy of ``data`` under ``key`` for ``max_age`` seconds.

        Returns ``False`` when an update found the entry gone (destroyed meanwhile); raises
        :class:`~koasession.errors.SessionIdCollision` when an insert finds the id taken, and
        ``ValueError`` for an invalid id or data that is not JSON.
        """
        if not valid_id(key):
            raise ValueError("invalid session id")
        raw = dumps(data)  # before any state change: non-JSON data must not half-write
        owner = self._owner_of(data)
        now = time.monotonic()
        skey = self._stored_key(key)
        mode = write_mode(key, ctx)
        existing = self._live(skey, now)
        if mode == "insert" and existing is not None:
            raise SessionIdCollision("session id already exists")
        if mode == "update" and existing is None:
            return False
        ttl = ttl_seconds(max_age) if max_age is not None else self.session_ttl
        if existing is not None:
            self._drop(skey)
        else:
            self._sweep(now, _SWEEP_PER_WRITE)
            self._make_room(now)
        self._entries[skey] = _Entry(raw, None if ttl is None else now + ttl, owner)
        if owner is not None:
            self._owners.setdefault(owner, set()).add(skey)
        return True

    async def destroy(self, key: str, *, ctx: object | None = None) -> None:
        """Remove the entry saved under ``key``; a missing or invalid id is not an error."""
        if valid_id(key):
            self._drop(self._stored_key(key))

    # -- extras --------------------------------------------------------------------------------

    async def destroy_owner(self, owner_id: str | int) -> int:
        """Remove every session of ``owner_id`` ("log out everywhere"); return how many."""
        self._require_owner()
        members = list(self._owners.get(str(owner_id), ()))
        for skey in members:
            self._drop(skey)
        return len(members)

    async def list_owner(self, owner_id: str | int) -> list[StoredSession]:
        """List the live sessions of ``owner_id`` (copies of their data)."""
        self._require_owner()
        now = time.monotonic()
        wall = time.time()
        result = []
        for skey in list(self._owners.get(str(owner_id), ())):
            entry = self._live(skey, now)
            if entry is None:
                continue
            data = loads(entry.raw)
            if data is None:
                continue
            expires = None if entry.deadline is None else wall + (entry.deadline - now)
            result.append(StoredSession(skey, data, expires))
        return result

    async def purge_expired(self) -> int:
        """Drop every expired entry now; return how many were dropped."""
        return self._sweep(time.monotonic(), None)

    def __len__(self) -> int:
        """The number of entries held, including expired ones not yet reclaimed."""
        return len(self._entries)

    async def close(self) -> None:
        """Drop every entry (nothing else to release)."""
        self._entries.clear()
        self._owners.clear()
