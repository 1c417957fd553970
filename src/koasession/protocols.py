"""The shapes of everything an application plugs in or receives: stores, key carriers, hooks.

This module sits at the bottom of the package's import graph (it imports nothing from
koasession), so options, stores and the engine can all name these types without an import cycle.
Every plug-in point of :class:`~koasession.SessionOptions` is typed with a protocol from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, Literal, Protocol, runtime_checkable

#: Session data: a JSON object.
SessionData = dict[str, Any]
#: A lifetime in seconds, or ``"session"`` for a cookie that ends with the browser session.
MaxAge = float | Literal["session"]


class HookOptions(Protocol):
    """The options a hook, store or key carrier can read from ``ctx.options``.

    Read-only here: change options for one request through ``session.options``.
    """

    @property
    def key(self) -> str:
        """The cookie name."""
        ...

    @property
    def max_age(self) -> MaxAge:
        """The session lifetime in seconds, or ``"session"``."""
        ...

    @property
    def rolling(self) -> bool:
        """True when every response re-sends the cookie."""
        ...

    @property
    def renew(self) -> bool:
        """True when a session near its expiry is renewed."""
        ...

    @property
    def signed(self) -> bool:
        """True when the cookie is signed."""
        ...

    @property
    def prefix(self) -> str | None:
        """The store id prefix."""
        ...

    @property
    def scope_key(self) -> str:
        """Where the session sits in the ASGI scope."""
        ...

    @property
    def session_store_ttl(self) -> float:
        """The store TTL of ``max_age="session"`` sessions, in seconds."""
        ...


class SessionView(Protocol):
    """The session an application and the hooks see: a mapping plus koa's session methods."""

    def __getitem__(self, key: str, /) -> Any: ...
    def __setitem__(self, key: str, value: Any, /) -> None: ...
    def __delitem__(self, key: str, /) -> None: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...

    @property
    def is_new(self) -> bool:
        """True when the session was created by this request."""
        ...

    @property
    def populated(self) -> bool:
        """True when the session holds data."""
        ...

    @property
    def external_key(self) -> str | None:
        """The store id (store mode)."""
        ...

    def to_json(self) -> SessionData:
        """The data, without metadata."""
        ...

    async def save(self) -> None:
        """Commit now, even if nothing changed."""

    async def regenerate(self) -> None:
        """Replace the session with a new, empty one under a new id."""

    async def manually_commit(self) -> None:
        """Commit now (with ``auto_commit=False``)."""

    def destroy(self) -> None:
        """Remove the session at commit."""
        ...


class HookContext(Protocol):
    """What hooks, stores, ``external_key`` and ``context_store`` receive as ``ctx``.

    :class:`~koasession.SessionContext` is the implementation the middleware passes.
    """

    #: Free per-request storage for hooks and stores.
    state: dict[str, Any]

    @property
    def scope(self) -> MutableMapping[str, Any]:
        """The ASGI scope of the request."""
        ...

    @property
    def session(self) -> SessionView | None:
        """The session, or ``None`` once it was removed."""
        ...

    @property
    def options(self) -> HookOptions:
        """This request's options."""
        ...

    @property
    def loaded_key(self) -> str | None:
        """The store id loaded for this request; ``None`` when the session started fresh."""
        ...

    @property
    def is_secure(self) -> bool:
        """True when the request came over https (or a trusted proxy said so)."""
        ...

    @property
    def cookies(self) -> dict[str, str]:
        """The request cookies by name."""
        ...

    def get_header(self, name: str) -> str | None:
        """The first request header called ``name``, decoded as latin-1."""
        ...

    def set_header(self, name: str, value: str) -> None:
        """Add a header to the response."""
        ...


@runtime_checkable
class Store(Protocol):
    """A server-side session store (koa-session's ``{get, set, destroy}``).

    Methods may be plain functions or coroutines; durations are seconds; ``ctx`` is the
    request's :class:`HookContext`.

    ``get`` receives the configured lifetime as koa passes it: seconds, or the string
    ``"session"`` for a cookie that ends with the browser session (``max_age="session"``); the
    engine passes it unchanged, so a store that derives an expiry from it must handle
    ``"session"``. ``None`` is allowed for direct calls. ``set`` always receives a number: the
    store TTL in seconds (``session_store_ttl`` for ``"session"`` lifetimes).

    Stores that want the "no resurrection" guarantee use ``ctx.loaded_key``: ``set`` with
    ``key == ctx.loaded_key`` must only *update* an entry that still exists; any other key must
    only *insert* an entry that does not exist yet, raising
    :class:`~koasession.errors.SessionIdCollision` when it does. ``set`` may return ``False`` to
    say nothing was written because the entry was gone.
    """

    def get(
        self, key: str, max_age: MaxAge | None, *, rolling: bool, ctx: HookContext
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
        ctx: HookContext,
    ) -> bool | Awaitable[bool | None] | None:
        """Save ``data`` under ``key`` for ``max_age`` seconds."""

    def destroy(self, key: str, *, ctx: HookContext) -> Awaitable[None] | None:
        """Remove the entry saved under ``key``; a missing entry is not an error."""
        ...


@runtime_checkable
class ClosableStore(Store, Protocol):
    """A :class:`Store` that holds resources and releases them in :meth:`close`."""

    def close(self) -> Awaitable[None] | None:
        """Release connections, threads and files; the middleware calls it at shutdown."""
        ...


@runtime_checkable
class TouchableStore(Store, Protocol):
    """A :class:`Store` that can refresh an entry without rewriting its data.

    When the only reason to save is a lifetime refresh (``rolling``, ``renew`` or idle
    activity) and the data is what this request loaded, the middleware calls :meth:`touch`
    instead of ``set``: a slow read-only request then cannot overwrite what a concurrent
    request wrote meanwhile. Stores without it keep koa's behaviour (a full ``set``).
    """

    def touch(
        self, key: str, max_age: float, *, fields: SessionData, ctx: HookContext
    ) -> bool | Awaitable[bool | None] | None:
        """Atomically set the metadata ``fields`` (numbers among ``_expire``, ``_maxAge`` and
        ``_accessed``) in the value under ``key`` and extend its lifetime to ``max_age``
        seconds, leaving every other key as stored. Return ``False`` when the entry is gone
        (nothing is created), ``None`` when this entry cannot be touched and needs a full
        ``set``."""
        ...


@runtime_checkable
class MergeableStore(Store, Protocol):
    """A :class:`Store` that applies a change to the stored value instead of replacing it.

    With ``merge=True`` a save of a session loaded from the store calls :meth:`merge` with the
    top-level keys this request changed or deleted, so two requests that change different keys
    both land.
    """

    def merge(
        self,
        key: str,
        changed: SessionData,
        deleted: list[str],
        max_age: float,
        *,
        ctx: HookContext,
    ) -> bool | Awaitable[bool | None] | None:
        """Atomically set the keys ``changed`` and remove the keys ``deleted`` in the value
        under ``key`` (other keys as stored) and extend its lifetime to ``max_age`` seconds.
        Return ``False`` when the entry is gone (nothing is created), ``None`` when this
        change cannot be merged and needs a full ``set``."""
        ...


#: ``context_store``: a class built once per request as ``cls(ctx)``, giving a :class:`Store`.
ContextStoreFactory = Callable[[HookContext], Store]


@runtime_checkable
class ExternalKey(Protocol):
    """Carries the session id outside the cookie (koa's ``externalKey``), e.g. in a header."""

    def get(self, ctx: HookContext) -> str | Awaitable[str | None] | None:
        """The session id the request carries, or ``None``."""
        ...

    def set(self, ctx: HookContext, value: str) -> Awaitable[None] | None:
        """Send ``value`` as the session id with the response."""
        ...


#: ``on_event``: called with an event name and its payload; may return an awaitable.
EventListener = Callable[[str, dict[str, Any]], object]
#: ``genid``: makes a new store id (plain or async).
GenId = Callable[[HookContext], str | Awaitable[str]]
#: ``valid``: a truthy result (or awaitable of one) accepts the loaded data.
ValidHook = Callable[[HookContext, SessionData], object]
#: ``before_save``: called before each commit; may change the session.
BeforeSaveHook = Callable[[HookContext, SessionView], object]
#: ``encode``: serialises a cookie payload to cookie-safe text.
Encoder = Callable[[SessionData], str]
#: ``decode``: parses cookie text back into a payload.
Decoder = Callable[[str], object]
