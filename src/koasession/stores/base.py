"""The store protocol: what the middleware calls on a server-side session store.

A store keeps session data under a session id. Methods may be plain functions or coroutines;
durations are in seconds. The ``ctx`` keyword is the request's
:class:`~koasession.context.SessionContext`.

Stores that want the "no resurrection" guarantee use ``ctx.loaded_key``: it is the id that was
loaded from the store for this request (``None`` when the session started fresh). ``set`` with
``key == ctx.loaded_key`` must only *update* an entry that still exists; any other key must only
*insert* an entry that does not exist yet, raising :class:`~koasession.errors.SessionIdCollision`
when it does. ``set`` may return ``False`` to say that nothing was written because the entry was
gone (destroyed by a concurrent logout or login); the middleware then writes nothing and leaves
the cookie alone (a concurrent login may have replaced it), and the next request that sends the
old id finds it missing.

Two optional methods (see :class:`ClosableStore`):

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
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..context import SessionContext

SessionData = dict[str, Any]


@runtime_checkable
class Store(Protocol):
    """A server-side session store (koa-session's ``{get, set, destroy}``)."""

    def get(
        self, key: str, max_age: float | None, *, rolling: bool, ctx: SessionContext
    ) -> SessionData | Awaitable[SessionData | None] | None:
        """Return the data saved under ``key``, or ``None`` when there is none."""

    def set(
        self,
        key: str,
        data: SessionData,
        max_age: float,
        *,
        rolling: bool,
        changed: bool,
        ctx: SessionContext,
    ) -> bool | Awaitable[bool | None] | None:
        """Save ``data`` under ``key`` for ``max_age`` seconds."""

    def destroy(self, key: str, *, ctx: SessionContext) -> Awaitable[None] | None:
        """Remove the entry saved under ``key``; a missing entry is not an error."""


@runtime_checkable
class ClosableStore(Store, Protocol):
    """A :class:`Store` that holds resources and releases them in :meth:`close`."""

    def close(self) -> Awaitable[None] | None:
        """Release connections, threads and files; the middleware calls it at shutdown."""
