"""The store protocol: what the middleware calls on a server-side session store.

A store keeps session data under a session id. Methods may be plain functions or coroutines;
durations are in seconds. The ``ctx`` keyword is the request's
:class:`~koasession.protocols.HookContext` (a :class:`~koasession.context.SessionContext`).
The protocols themselves live in :mod:`koasession.protocols` and are re-exported here.

``get``'s ``max_age`` is the configured lifetime as koa passes it: seconds, or the string
``"session"`` when ``max_age="session"`` (a browser-session cookie); a store that derives an
expiry from it must handle that string. ``set``'s ``max_age`` is always the store TTL in seconds
(``session_store_ttl`` for ``"session"`` lifetimes).

Stores that want the "no resurrection" guarantee use ``ctx.loaded_key``: it is the id that was
loaded from the store for this request (``None`` when the session started fresh). ``set`` with
``key == ctx.loaded_key`` must only *update* an entry that still exists; any other key must only
*insert* an entry that does not exist yet, raising :class:`~koasession.errors.SessionIdCollision`
when it does. ``set`` may return ``False`` to say that nothing was written because the entry was
gone (destroyed by a concurrent logout or login); the middleware then writes nothing and leaves
the cookie alone (a concurrent login may have replaced it), and the next request that sends the
old id finds it missing.

Optional methods (see :class:`ClosableStore`, :class:`TouchableStore`, :class:`MergeableStore`):

- ``close()`` (plain or coroutine) releases what the store opened: connections, threads, files.
  The middleware calls it at the ASGI lifespan shutdown, after the app's own shutdown, for
  ``store`` and for the ``context_store`` instances it made that are still alive. Without a
  lifespan (a script, a server that does not send it) call ``await store.close()`` yourself.
  Nothing a store starts may keep the process alive, closed or not. The bundled stores open
  their connections again if used after ``close()``.
- ``use_store_timeout(seconds)`` is called once by each middleware the store is given to, with
  that middleware's ``store_timeout`` (when it has one), so the store can bound its driver's own
  connect and read timeouts by it: a request that gives up on the store then also frees the
  connection in time. Timeouts configured on the store explicitly should win.
- ``touch(key, max_age, *, fields, ctx)`` refreshes an entry without rewriting its data: it
  sets the metadata ``fields`` (``_expire``, ``_maxAge``, ``_accessed``) in the stored value
  and the lifetime, atomically, and returns ``False`` when the entry is gone. The middleware
  calls it instead of ``set`` when a save would only refresh the lifetime (``rolling``,
  ``renew``, ``idle_timeout``) of data this request did not change, so a slow read-only request
  cannot overwrite a concurrent write. Every bundled store has it.
- ``merge(key, changed, deleted, max_age, *, ctx)`` applies one request's change to the stored
  value: it sets the top-level keys ``changed`` and removes the keys ``deleted``, atomically,
  keeping the others; ``False`` when the entry is gone, ``None`` to ask for a full ``set``.
  With ``merge=True`` the middleware calls it to save a session loaded from the store, so two
  requests that change different keys both land. Every bundled store has it.
"""

from __future__ import annotations

from ..protocols import (
    ClosableStore,
    HookContext,
    MaxAge,
    MergeableStore,
    SessionData,
    Store,
    TouchableStore,
)

__all__ = [
    "ClosableStore",
    "HookContext",
    "MaxAge",
    "MergeableStore",
    "SessionData",
    "Store",
    "TouchableStore",
]
