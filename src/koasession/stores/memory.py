"""An in-process session store with expiry and a bound on its size.

For development, tests and single-process deployments: data is lost on restart and is not shared
between worker processes. Use :class:`~koasession.stores.redis.RedisStore`,
:class:`~koasession.stores.postgres.PostgresStore` or
:class:`~koasession.stores.sqlite.SQLiteStore` otherwise.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict

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

# How many due expiry-queue items a write processes, so that expired entries are reclaimed
# steadily without a long pause on any one request.
_EXPIRE_PER_WRITE = 8
# The expiry queue is rebuilt when it holds more than twice the entries plus this many items
# (items left behind by destroyed and evicted entries), so its size stays O(entries).
_QUEUE_SLACK = 1024


class _Entry:
    """One stored session. ``queued`` is the deadline of its item in the expiry queue (at most
    ``deadline``, so nothing expires unseen), ``None`` when it has none."""

    __slots__ = ("deadline", "owner", "queued", "raw")

    def __init__(self, raw: str, deadline: float | None, owner: str | None) -> None:
        self.raw = raw  # JSON text: keeping text, not the dict, makes every get return a copy
        self.deadline = deadline  # time.monotonic() deadline; None = no expiry
        self.owner = owner
        self.queued: float | None = None


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
      a per-owner index for :meth:`destroy_owner` and :meth:`list_owner`.
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
        # A heap of (deadline, stored key). An item is current while it matches its entry's
        # ``queued``; items of dropped entries and superseded items are skipped when popped.
        self._expiry: list[tuple[float, str]] = []
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
        # Its expiry item, if any, stays in the heap and is skipped when it comes up.
        entry = self._entries.pop(skey, None)
        if entry is not None and entry.owner is not None:
            self._unindex(entry.owner, skey)
        return entry

    def _unindex(self, owner: str, skey: str) -> None:
        members = self._owners.get(owner)
        if members is not None:
            members.discard(skey)
            if not members:
                del self._owners[owner]

    def _schedule(self, skey: str, entry: _Entry, deadline: float | None) -> None:
        """Set the entry's deadline, queueing an item unless an earlier one is queued (that
        one is re-queued at the real deadline when it comes up: one item per entry)."""
        entry.deadline = deadline
        if deadline is not None and (entry.queued is None or deadline < entry.queued):
            heapq.heappush(self._expiry, (deadline, skey))
            entry.queued = deadline

    def _pop_due(self, now: float) -> bool:
        """Process the first queue item (due by ``now``); return whether it dropped an entry."""
        due, skey = heapq.heappop(self._expiry)
        entry = self._entries.get(skey)
        if entry is None or entry.queued != due:
            return False  # the entry is gone, or this item was superseded by an earlier one
        entry.queued = None
        if entry.deadline is not None and entry.deadline <= now:
            self._drop(skey)
            return True
        self._schedule(skey, entry, entry.deadline)  # extended since: queue the real deadline
        return False

    def _expire(self, now: float, limit: int | None) -> int:
        """Drop entries that are due, processing at most ``limit`` queue items (no limit: all
        of them); return how many entries were dropped."""
        dropped = 0
        expiry = self._expiry
        while expiry and expiry[0][0] <= now and (limit is None or limit > 0):
            dropped += self._pop_due(now)
            if limit is not None:
                limit -= 1
        return dropped

    def _make_room(self, now: float) -> None:
        entries = self._entries
        expiry = self._expiry
        while len(entries) >= self.max_entries:
            if expiry and expiry[0][0] <= now:
                self._pop_due(now)  # an expired entry goes before any live one
            else:
                self._drop(next(iter(entries)))

    def _compact(self) -> None:
        """Rebuild the expiry queue from the entries when skipped items dominate it."""
        if len(self._expiry) <= 2 * len(self._entries) + _QUEUE_SLACK:
            return
        queue = []
        for skey, entry in self._entries.items():
            entry.queued = entry.deadline
            if entry.deadline is not None:
                queue.append((entry.deadline, skey))
        heapq.heapify(queue)
        self._expiry = queue

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
            entry = self._entries[skey] = _Entry(raw, None, owner)
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
        self._schedule(skey, entry, deadline)
        self._compact()
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
        return self._expire(time.monotonic(), None)

    def __len__(self) -> int:
        """The number of entries held, including expired ones not yet reclaimed."""
        return len(self._entries)

    async def close(self) -> None:
        """Nothing to release. The data stays, so that a store shared by successive apps in
        one process (test clients, a server's lifespan) keeps its sessions."""
