"""An in-process session store with expiry and a bound on its size.

For development, tests and single-process deployments: data is lost on restart and is not shared
between worker processes. Use :class:`~koasession.stores.redis.RedisStore`,
:class:`~koasession.stores.postgres.PostgresStore` or
:class:`~koasession.stores.sqlite.SQLiteStore` otherwise.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError, SessionIdCollision
from ._common import (
    LoadedKeyContext,
    OwnerFunc,
    StoredSession,
    StoreOptionsMixin,
    dumps,
    loads,
    loads_value,
    merge_items,
    touch_items,
    ttl_seconds,
    valid_id,
    write_mode,
)
from .base import MaxAge, SessionData

__all__ = ["MemoryStore"]

# How many due expiry-queue items a write processes, so that expired entries are reclaimed
# steadily without a long pause on any one request.
_EXPIRE_PER_WRITE = 8
# The ``queued`` value of an entry that is not in the expiry queue (no deadline).
_NOT_QUEUED = math.inf
# The expiry queue is rebuilt when it holds more than twice the entries plus this many items
# (items left behind by destroyed and evicted entries), so its size stays O(entries).
_QUEUE_SLACK = 1024


class _Entry:
    """One stored session, which is also its own item in the expiry queue.

    The queue is a heap ordered by ``queued``: the deadline the entry had when it was queued.
    It must not change while the entry is queued, and it is never after ``deadline``, so
    nothing expires unseen. A later deadline (a rolling session) is picked up when the entry
    comes up in the queue; an earlier one needs a fresh entry object, and the old one stays in
    the queue, emptied, to be skipped.
    """

    __slots__ = ("deadline", "owner", "queued", "raw", "skey")

    def __init__(self, skey: str, raw: str, owner: str | None) -> None:
        self.skey = skey
        self.raw = raw  # JSON text: keeping text, not the dict, makes every get return a copy
        self.deadline: float | None = None  # time.monotonic() deadline; None = no expiry
        self.owner = owner
        self.queued = _NOT_QUEUED

    def __lt__(self, other: _Entry) -> bool:
        return self.queued < other.queued


class MemoryStore(StoreOptionsMixin):
    """A dict-based store implementing the :class:`~koasession.stores.base.Store` protocol.

    - Entries expire after the ``max_age`` given to :meth:`set` (seconds, monotonic clock, so
      wall-clock jumps do not expire or revive sessions). ``session_ttl`` is the lifetime used
      when ``set`` is called with ``max_age=None`` (direct calls; the middleware always passes a
      finite lifetime).
    - **Eviction.** At most ``max_entries`` entries are held. A write of a new session into a
      full store first drops an expired entry if there is one, otherwise the *least recently
      used* session: the one whose last read or write is oldest. Evicting a live session logs
      its user out (their next request starts a fresh session), so size ``max_entries`` above
      the number of sessions alive at once; anyone can create sessions, so a flood of new
      sessions pushes out idle ones first. Every operation costs O(log n) amortised: expiry
      uses a queue ordered by deadline, recency an ordered dict.
    - Data is copied in and out through JSON, so callers never alias stored data.
    - Writes from the middleware follow the ``ctx.loaded_key`` contract (see
      :mod:`koasession.stores.base`): no resurrection after a destroy, and
      :class:`~koasession.errors.SessionIdCollision` on an insert of an existing id.
    - ``hash_ids=True`` keeps HMAC-SHA256(``hash_key``, id) instead of the id; ``owner`` maintains
      a per-owner index for :meth:`list_owner`, :meth:`revoke` and :meth:`destroy_owner`.
    - Nothing is bound to an event loop, and :meth:`close` keeps the data: one store can serve
      successive apps (test clients, reloads) in one process.
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
        # Order = recency of use (move_to_end on every read and write): the front is the least
        # recently used entry, evicted first when the store is full.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # A heap of entries by the deadline they were queued with (see _Entry). A popped entry
        # that is no longer the one stored under its key was dropped or replaced: skipped.
        self._expiry: list[_Entry] = []
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

    def _drop(self, skey: str) -> None:
        entry = self._entries.pop(skey, None)
        if entry is not None:
            entry.raw = ""  # it may wait in the expiry queue for a while: without the data
            if entry.owner is not None:
                self._unindex(entry.owner, skey)

    def _unindex(self, owner: str, skey: str) -> None:
        members = self._owners.get(owner)
        if members is not None:
            members.discard(skey)
            if not members:
                del self._owners[owner]

    def _set_deadline(self, entry: _Entry, deadline: float | None) -> None:
        """Give the stored ``entry`` a new deadline and make sure the queue will see it."""
        entry.deadline = deadline
        if deadline is None or deadline >= entry.queued:
            return  # no expiry, or queued no later than the deadline: seen in time
        if entry.queued < _NOT_QUEUED:
            # Queued for a later deadline, and a heap item cannot move: store a fresh copy
            # and leave the old one in the queue, to be skipped.
            fresh = _Entry(entry.skey, entry.raw, entry.owner)
            fresh.deadline = deadline
            entry.raw = ""
            self._entries[entry.skey] = fresh  # an OrderedDict keeps the key's position
            entry = fresh
        entry.queued = deadline
        heapq.heappush(self._expiry, entry)

    def _pop_due(self, now: float) -> bool:
        """Process the first queued entry (due by ``now``); return whether it was dropped."""
        entry = heapq.heappop(self._expiry)
        if self._entries.get(entry.skey) is not entry:
            return False  # dropped or replaced since it was queued
        entry.queued = _NOT_QUEUED
        if entry.deadline is not None and entry.deadline <= now:
            self._drop(entry.skey)
            return True
        self._set_deadline(entry, entry.deadline)  # extended since: queue the real deadline
        return False

    def _expire(self, now: float, limit: int | None) -> int:
        """Drop entries that are due, processing at most ``limit`` queued entries (no limit:
        all of them); return how many were dropped."""
        dropped = 0
        expiry = self._expiry
        while expiry and expiry[0].queued <= now and (limit is None or limit > 0):
            dropped += self._pop_due(now)
            if limit is not None:
                limit -= 1
        return dropped

    def _make_room(self, now: float) -> None:
        entries = self._entries
        expiry = self._expiry
        while len(entries) >= self.max_entries:
            if expiry and expiry[0].queued <= now:
                self._pop_due(now)  # an expired entry goes before any live one
            else:
                self._drop(next(iter(entries)))

    def _compact(self) -> None:
        """Rebuild the expiry queue from the entries when skipped ones dominate it."""
        if len(self._expiry) <= 2 * len(self._entries) + _QUEUE_SLACK:
            return
        queue = []
        for entry in self._entries.values():
            if entry.deadline is None:
                entry.queued = _NOT_QUEUED
            else:
                entry.queued = entry.deadline
                queue.append(entry)
        heapq.heapify(queue)
        self._expiry = queue

    # -- Store protocol ------------------------------------------------------------------------

    async def get(
        self,
        key: str,
        max_age: MaxAge | None = None,
        *,
        rolling: bool = False,
        ctx: object | None = None,
    ) -> SessionData | None:
        """Return a copy of the data under ``key``; ``None`` if missing, expired or invalid."""
        if not valid_id(key):
            return None
        skey = self._stored_key(key)
        entry = self._live(skey, time.monotonic())
        if entry is None:
            return None
        self._entries.move_to_end(skey)  # recently used: evicted last
        return loads(entry.raw)

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
        deadline = None if ttl is None else now + ttl
        entry = existing
        if entry is None:
            self._expire(now, _EXPIRE_PER_WRITE)
            self._make_room(now)
            entry = self._entries[skey] = _Entry(skey, raw, owner)
            if owner is not None:
                self._owners.setdefault(owner, set()).add(skey)
        else:
            entry.raw = raw
            if owner != entry.owner:
                if entry.owner is not None:
                    self._unindex(entry.owner, skey)
                if owner is not None:
                    self._owners.setdefault(owner, set()).add(skey)
                entry.owner = owner
            self._entries.move_to_end(skey)
        self._set_deadline(entry, deadline)
        self._compact()
        return True

    async def touch(
        self,
        key: str,
        max_age: float | None = None,
        *,
        fields: Mapping[str, float],
        ctx: object | None = None,
    ) -> bool:
        """Extend the entry under ``key`` to ``max_age`` seconds and set the metadata
        ``fields`` in its value, keeping its data; ``False`` when the entry is gone."""
        items = touch_items(fields)
        return self._patch(key, dict(items), [], max_age)

    async def merge(
        self,
        key: str,
        changed: Mapping[str, Any],
        deleted: Sequence[str],
        max_age: float | None = None,
        *,
        ctx: object | None = None,
    ) -> bool:
        """Set the keys ``changed`` and remove the keys ``deleted`` in the value under ``key``,
        keeping every other key as stored, and extend it to ``max_age`` seconds; ``False``
        when the entry is gone (nothing is created)."""
        items, names = merge_items(changed, deleted)
        return self._patch(key, {n: loads_value(v) for n, v in items}, names, max_age)

    def _patch(
        self, key: str, changed: dict[str, Any], deleted: list[str], max_age: float | None
    ) -> bool:
        # Synchronous from read to write: nothing else runs in between.
        if not valid_id(key):
            raise ValueError("invalid session id")
        now = time.monotonic()
        skey = self._stored_key(key)
        entry = self._live(skey, now)
        data = None if entry is None else loads(entry.raw)
        if entry is None or data is None:
            return False
        for name in deleted:
            data.pop(name, None)
        data.update(changed)
        entry.raw = dumps(data)
        owner = self._owner_of(data)
        if owner != entry.owner:
            if entry.owner is not None:
                self._unindex(entry.owner, skey)
            if owner is not None:
                self._owners.setdefault(owner, set()).add(skey)
            entry.owner = owner
        ttl = ttl_seconds(max_age) if max_age is not None else self.session_ttl
        self._set_deadline(entry, None if ttl is None else now + ttl)
        self._entries.move_to_end(skey)
        return True

    async def destroy(self, key: str, *, ctx: object | None = None) -> None:
        """Remove the entry saved under ``key``; a missing or invalid id is not an error."""
        if valid_id(key):
            self._drop(self._stored_key(key))

    # -- extras --------------------------------------------------------------------------------

    async def _owner_destroy_all(self, owner: str) -> int:
        members = list(self._owners.get(owner, ()))
        for skey in members:
            self._drop(skey)
        return len(members)

    async def _owner_destroy_one(self, stored_key: str, owner: str) -> bool:
        entry = self._live(stored_key, time.monotonic())
        if entry is None or entry.owner != owner:
            return False
        self._drop(stored_key)
        return True

    async def _owner_entries(self, owner: str) -> list[StoredSession]:
        now = time.monotonic()
        wall = time.time()
        result = []
        for skey in sorted(self._owners.get(owner, ())):
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
        return self._expire(time.monotonic(), None)

    def __len__(self) -> int:
        """The number of entries held, including expired ones not yet reclaimed."""
        return len(self._entries)

    async def close(self) -> None:
        """Nothing to release. The data stays, so that a store shared by successive apps in
        one process (test clients, a server's lifespan) keeps its sessions."""
