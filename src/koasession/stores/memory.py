"""An in-process session store with expiry and a bound on its size.

For development, tests and single-process deployments: data is lost on restart and is not shared
between worker processes. Use :class:`~koasession.stores.redis.RedisStore`,
:class:`~koasession.stores.postgres.PostgresStore` or
:class:`~koasession.stores.sqlite.SQLiteStore` otherwise.
"""

from __future__ import annotations

import heapq
import math
import struct
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from ..codec import loads_object, to_bytes
from ..errors import ConfigurationError, SessionIdCollision
from ._common import (
    LoadedKeyContext,
    OwnerFunc,
    StoredSession,
    StoreOptionsMixin,
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

# Every entry is ONE bytes object: this header, then the session's JSON as UTF-8 (the bytes
# JSON.stringify would write, the one JSON policy). The header holds the entry's deadline
# (time.monotonic(); inf = no expiry) and its use stamp (see MemoryStore._uses). Besides it a
# session has only its slot in the dict and an item in the log of uses: no entry object, no
# float, no queue item, which is what made it cost about twice as much. Keeping JSON, not the
# dict, also means every read returns a copy.
_HEADER = struct.Struct("<dq")
_DEADLINE = struct.Struct("<d")
_BODY = _HEADER.size  # where the JSON starts
_STAMP_AT = _DEADLINE.size  # where the use stamp starts
_STAMP = struct.Struct("<q")

# How many due items of the expiry list a write processes, so that expired entries are
# reclaimed steadily without a long pause on any one request.
_EXPIRE_PER_WRITE = 8
# A sweep lists the earliest deadlines of this share of the entries (at least _DUE_MIN of
# them), so that it runs once per that many expiries or rewrites (see MemoryStore._due).
_DUE_SHARE = 32
_DUE_MIN = 64
# The use log is rebuilt when it holds more than twice the entries plus this many items
# (uses superseded by later ones), so its size stays O(entries).
_USES_SLACK = 1024


def _deadline(raw: bytes) -> float:
    deadline: float = _DEADLINE.unpack_from(raw)[0]
    return deadline


def _stamp(raw: bytes) -> int:
    stamp: int = _STAMP.unpack_from(raw, _STAMP_AT)[0]
    return stamp


class MemoryStore(StoreOptionsMixin):
    """A dict-based store implementing the :class:`~koasession.stores.base.Store` protocol.

    - Entries expire after the ``max_age`` given to :meth:`set` (seconds, monotonic clock, so
      wall-clock jumps do not expire or revive sessions). ``session_ttl`` is the lifetime used
      when ``set`` is called with ``max_age=None`` (direct calls; the middleware always passes a
      finite lifetime).
    - **Eviction.** At most ``max_entries`` entries are held. A write of a new session into a
      full store first drops the expired entries if there are any, otherwise the *least
      recently used* session: the one whose last read or write is oldest. Evicting a live
      session logs its user out (their next request starts a fresh session), so size
      ``max_entries`` above the number of sessions alive at once; anyone can create sessions,
      so a flood of new sessions pushes out idle ones first. Every operation costs O(log n)
      amortised: now and then one rebuilds the log of uses or sweeps all entries for expired
      ones (O(n)), paid for by the many operations since the last time.
    - **Memory.** A session is one bytes object (a 16-byte header with its deadline, then its
      JSON as UTF-8) in a dict, plus an item in the log of uses: about 80 bytes on top of its
      JSON (more while the dict or the log has spare room), the id being shared with the
      caller (a new string with ``hash_ids``).
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
        # Stored key -> header + JSON (see _HEADER). A plain dict: its order is not used, since
        # evicting from the front of a dict that keeps moving keys to its end rescans the
        # deleted slots left there (O(n) per eviction), and an OrderedDict costs ~45 bytes more
        # per session.
        self._entries: dict[str, bytes] = {}
        # Recency: every read or write appends the key to this log and writes the position of
        # that item (its stamp) into the entry's header. An item whose stamp is no longer its
        # entry's was superseded by a later use: the first item whose stamp is still current
        # names the least recently used entry. _first_use is the stamp of _uses[0].
        self._uses: deque[str] = deque()
        self._first_use = 0
        # Expiry, without anything per entry. _due is a heap of (deadline, stored key) of the
        # entries with the earliest deadlines, as found by the last sweep or added since;
        # every entry not in it has a deadline >= _horizon. So until the clock reaches
        # _horizon the expired entries are all in _due; once it has, a sweep looks at every
        # entry. Every write keeps that true: a deadline before the horizon joins _due when it
        # falls within the deadlines listed (up to _due_last), or else lowers the horizon.
        self._due: list[tuple[float, str]] = []
        self._due_last = -math.inf
        self._horizon = math.inf
        self._owners: dict[str, set[str]] = {}
        self._owner_keys: dict[str, str] = {}  # stored key -> its owner, for entries with one

    # -- internals -----------------------------------------------------------------------------

    def _live(self, skey: str, now: float) -> bytes | None:
        raw = self._entries.get(skey)
        if raw is not None and _deadline(raw) <= now:
            self._drop(skey)
            return None
        return raw

    def _drop(self, skey: str) -> None:
        # Its items in the use log and the expiry list stay behind, to be skipped.
        if self._entries.pop(skey, None) is not None and self._owner_keys:
            owner = self._owner_keys.pop(skey, None)
            if owner is not None:
                self._unindex(owner, skey)

    def _unindex(self, owner: str, skey: str) -> None:
        members = self._owners.get(owner)
        if members is not None:
            members.discard(skey)
            if not members:
                del self._owners[owner]

    def _set_owner(self, skey: str, owner: str | None) -> None:
        old = self._owner_keys.get(skey)
        if old == owner:
            return
        if old is not None:
            self._unindex(old, skey)
            del self._owner_keys[skey]
        if owner is not None:
            self._owners.setdefault(owner, set()).add(skey)
            self._owner_keys[skey] = owner

    def _append_use(self, skey: str) -> int:
        """Append a use of ``skey`` to the log of uses; return the stamp that the caller must
        write into its entry right away."""
        if len(self._uses) > 2 * len(self._entries) + _USES_SLACK:
            self._compact_uses()
        self._uses.append(skey)
        return self._first_use + len(self._uses) - 1

    def _store(self, skey: str, stamp: int | None, deadline: float, body: bytes) -> None:
        """Write ``body`` with ``deadline`` under ``skey`` as its most recent use (``stamp``:
        that of the entry stored there now, if any)."""
        # An entry used last already needs no new item: a request's read then write of one
        # session, or one user's successive requests, add nothing to the log.
        if stamp is None or stamp != self._first_use + len(self._uses) - 1:
            stamp = self._append_use(skey)
        self._entries[skey] = _HEADER.pack(deadline, stamp) + body
        if deadline < self._horizon:
            if self._due and deadline <= self._due_last:
                heapq.heappush(self._due, (deadline, skey))
            else:
                self._horizon = deadline

    def _compact_uses(self) -> None:
        """Rebuild the use log with only its current items, restamping the entries."""
        entries = self._entries
        current: deque[str] = deque()
        stamp = self._first_use
        for skey in self._uses:
            raw = entries.get(skey)
            if raw is not None and _stamp(raw) == stamp:
                current.append(skey)
            stamp += 1
        for stamp, skey in enumerate(current):
            raw = entries[skey]
            entries[skey] = _HEADER.pack(_deadline(raw), stamp) + raw[_BODY:]
        self._uses = current
        self._first_use = 0

    def _drop_least_recently_used(self) -> None:
        uses = self._uses
        entries = self._entries
        while uses:  # every entry's current stamp is in the log: this finds one
            skey = uses.popleft()
            stamp = self._first_use
            self._first_use += 1
            raw = entries.get(skey)
            if raw is not None and _stamp(raw) == stamp:
                self._drop(skey)
                return

    def _expire(self, now: float, limit: int | None) -> int:
        """Drop entries that are due, processing at most ``limit`` items of the expiry list (no
        limit: all of them); return how many were dropped. A sweep, when one is needed, drops
        every expired entry whatever the limit."""
        dropped = 0
        entries = self._entries
        while limit is None or limit > 0:
            due = self._due
            if due and due[0][0] <= now:
                _, skey = heapq.heappop(due)
                raw = entries.get(skey)
                # Not expired: rewritten since it was listed, and that write listed it again
                # or left its deadline at or past the horizon.
                if raw is not None and _deadline(raw) <= now:
                    self._drop(skey)
                    dropped += 1
            elif self._horizon <= now:
                return dropped + self._sweep(now)
            else:
                break
            if limit is not None:
                limit -= 1
        return dropped

    def _sweep(self, now: float) -> int:
        """Drop every expired entry and list the earliest deadlines of the rest; return how
        many were dropped.

        O(n), paid for by the entries it lists (1/32 of them, at least 64): the clock passes
        the new horizon only after all of those have come due, expired or rewritten since (a
        write lowers the horizon only to a deadline later than every one listed).
        """
        entries = self._entries
        expired = [skey for skey, raw in entries.items() if _deadline(raw) <= now]
        for skey in expired:
            self._drop(skey)
        size = max(_DUE_MIN, len(entries) // _DUE_SHARE)
        timed = ((_deadline(raw), skey) for skey, raw in entries.items())
        earliest = heapq.nsmallest(size + 1, ((d, k) for d, k in timed if d < math.inf))
        # Sorted, so already a heap; the first one left out is the new horizon.
        self._horizon = earliest.pop()[0] if len(earliest) > size else math.inf
        self._due = earliest
        self._due_last = earliest[-1][0] if earliest else -math.inf
        return len(expired)

    def _make_room(self, now: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._expire(now, None)  # expired entries go before any live one
            while len(self._entries) >= self.max_entries:
                self._drop_least_recently_used()

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
        skey = key if self._hash_key is None else self._stored_key(key)
        raw = self._entries.get(skey)
        if raw is None:
            return None
        deadline, stamp = _HEADER.unpack_from(raw)
        if deadline <= time.monotonic():
            self._drop(skey)
            return None
        body = raw[_BODY:]
        if stamp != self._first_use + len(self._uses) - 1:  # not used last: record this use
            self._entries[skey] = _HEADER.pack(deadline, self._append_use(skey)) + body
        return loads_object(body.decode())  # valid UTF-8: the store wrote it

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
        body = to_bytes(data)  # before any state change: non-JSON data must not half-write
        owner = None if self._owner is None else self._owner_of(data)
        now = time.monotonic()
        skey = key if self._hash_key is None else self._stored_key(key)
        mode = write_mode(key, ctx)
        stamp = None  # that of the live entry under skey
        existing = self._entries.get(skey)
        if existing is not None:
            deadline, stamp = _HEADER.unpack_from(existing)
            if deadline <= now:
                self._drop(skey)
                stamp = None
        if mode == "insert" and stamp is not None:
            raise SessionIdCollision("session id already exists")
        if mode == "update" and stamp is None:
            return False
        ttl = ttl_seconds(max_age) if max_age is not None else self.session_ttl
        if stamp is None:
            self._expire(now, _EXPIRE_PER_WRITE)
            self._make_room(now)
        self._store(skey, stamp, math.inf if ttl is None else now + ttl, body)
        if owner is not None or self._owner_keys:
            self._set_owner(skey, owner)
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
        raw = self._live(skey, now)
        data = None if raw is None else loads(raw[_BODY:])
        if raw is None or data is None:
            return False
        for name in deleted:
            data.pop(name, None)
        data.update(changed)
        body = to_bytes(data)
        owner = self._owner_of(data)
        ttl = ttl_seconds(max_age) if max_age is not None else self.session_ttl
        self._store(skey, _stamp(raw), math.inf if ttl is None else now + ttl, body)
        if owner is not None or self._owner_keys:
            self._set_owner(skey, owner)
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
        raw = self._live(stored_key, time.monotonic())
        if raw is None or self._owner_keys.get(stored_key) != owner:
            return False
        self._drop(stored_key)
        return True

    async def _owner_entries(self, owner: str) -> list[StoredSession]:
        now = time.monotonic()
        wall = time.time()
        result = []
        for skey in sorted(self._owners.get(owner, ())):
            raw = self._live(skey, now)
            data = None if raw is None else loads(raw[_BODY:])
            if raw is None or data is None:
                continue
            deadline = _deadline(raw)
            expires = None if deadline == math.inf else wall + (deadline - now)
            result.append(StoredSession(skey, data, expires))
        return result

    async def purge_expired(self) -> int:
        """Drop every expired entry now; return how many were dropped."""
        return self._sweep(time.monotonic())

    def _dump(self) -> dict[str, str]:
        """The stored JSON text of every entry by stored key (for tests of what is kept)."""
        return {skey: raw[_BODY:].decode() for skey, raw in self._entries.items()}

    def __len__(self) -> int:
        """The number of entries held, including expired ones not yet reclaimed."""
        return len(self._entries)

    async def close(self) -> None:
        """Nothing to release. The data stays, so that a store shared by successive apps in
        one process (test clients, a server's lifespan) keeps its sessions."""
