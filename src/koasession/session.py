"""``Session``: the mapping an application reads and writes, koa's ``ctx.session``.

In cookie mode the data is loaded on first use, so a request that never looks at its session pays
for nothing. Data is plain JSON-safe values; nested values may be edited in place, because the
commit compares serialised data rather than watching assignments.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from .codec import META_KEYS
from .errors import ConfigurationError, NoSessionError, check_flag
from .options import SessionOptions, normalize_max_age, validate

if TYPE_CHECKING:
    from .config import SessionConfig

#: Options one request may change through ``session.options`` (koa's ``ctx.sessionOptions``):
#: everything that shapes how this request's session is written. ``signed`` and ``decode`` also
#: apply to reading when set before the session is first used (cookie mode loads lazily).
PER_REQUEST_OPTIONS = frozenset(
    {
        "max_age",
        "rolling",
        "renew",
        "overwrite",
        "http_only",
        "secure",
        "same_site",
        "partitioned",
        "priority",
        "domain",
        "path",
        "signed",
        "encode",
        "decode",
        "before_save",
        "session_store_ttl",
    }
)
#: The session key of the CSRF secret (:mod:`koasession.csrf`): not one of the metadata names
#: (``codec.META_KEYS``), so it is ordinary session data, and dropped by
#: :meth:`Session.regenerate`. Leave it alone.
CSRF_SESSION_KEY = "_csrf"

_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(SessionOptions))
_BOOL_OPTIONS = ("rolling", "renew", "overwrite", "http_only", "signed", "partitioned")


class RequestOptions(SessionOptions):
    """One request's copy of the options: ``session.options``, koa's ``ctx.sessionOptions``.

    The options in :data:`PER_REQUEST_OPTIONS` may be set, are checked like the middleware's
    own, and apply to this request only. Setting any other option raises
    :class:`~koasession.errors.ConfigurationError` naming it: the middleware reads those once
    for every request (or before the application runs), so a change would be silently ignored.
    """

    _has_keys: bool

    @classmethod
    def of(cls, cfg: SessionConfig) -> RequestOptions:
        """A copy of ``cfg``'s options for one request."""
        copy = object.__new__(cls)
        copy.__dict__.update(cfg.options.__dict__)
        copy.__dict__["_has_keys"] = bool(cfg.keys)
        return copy

    def copy(self) -> SessionOptions:
        """A plain (unrestricted) :class:`SessionOptions` with this request's values."""
        return SessionOptions(**{name: getattr(self, name) for name in _OPTION_NAMES})

    def override(self, **changes: Any) -> None:
        """Set options without the checks, for values the middleware derived itself."""
        self.__dict__.update(changes)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in PER_REQUEST_OPTIONS:
            if name in _OPTION_NAMES:
                raise ConfigurationError(
                    f"{name} cannot change per request: the middleware reads it once, not per "
                    "request; set it on SessionMiddleware (per-request options: "
                    f"{', '.join(sorted(PER_REQUEST_OPTIONS))})"
                )
            raise AttributeError(f"session.options has no option {name!r}")
        if name in _BOOL_OPTIONS:
            check_flag(name, value)
        if name in ("signed", "encode", "decode") and self.encrypt:
            raise ConfigurationError(f"{name} has no effect with encrypt=True")
        if name == "signed" and value and not self._has_keys:
            raise ConfigurationError(
                "signed=True needs keys=[...] on SessionMiddleware (koa: '.keys required for "
                "signed cookies')"
            )
        candidate = self.copy()
        setattr(candidate, name, value)
        validate(candidate)
        self.__dict__[name] = getattr(candidate, name)


def check_key(key: object) -> str:
    """Refuse keys JSON objects cannot hold and the names reserved for metadata."""
    if not isinstance(key, str):
        raise TypeError(f"session keys must be strings (JSON object keys); got {key!r}")
    if key in META_KEYS:
        raise KeyError(f"{key!r} is reserved for session metadata; use another name")
    return key


class SessionEngine(Protocol):
    """What a :class:`Session` needs from the per-request engine that owns it.

    :class:`koasession.lifecycle.RequestSession` implements it; the session uses nothing else.
    """

    @property
    def external_key(self) -> str | None:
        """The store id of the session (store mode)."""
        ...

    @property
    def opts(self) -> RequestOptions:
        """This request's own copy of the options."""
        ...

    @property
    def opts_view(self) -> SessionOptions:
        """The options in force, without copying them."""
        ...

    def load(self) -> None:
        """Load the data now; it calls :meth:`Session._adopt`."""
        ...

    async def load_async(self) -> None:
        """Load the data now, from the store if there is one; it calls :meth:`Session._adopt`."""
        ...

    async def commit(self, *, save: bool = False, regenerate: bool = False) -> None:
        """Decide and apply: remove, save or nothing."""
        ...

    async def flush(self) -> None:
        """Destroy the session and start an empty one with a new id."""
        ...

    def flush_now(self) -> None:
        """:meth:`flush` without I/O (cookie mode)."""
        ...

    async def reload(self) -> None:
        """Read the session again as the request sent it."""
        ...

    def reload_now(self) -> None:
        """:meth:`reload` without I/O (lazy cookie mode)."""
        ...

    def skip(self) -> None:
        """Write nothing automatically for this request."""
        ...

    def created_ms(self) -> float | None:
        """When the session was created, in ms since the epoch."""
        ...

    def accessed_ms(self) -> float | None:
        """The recorded last access, in ms since the epoch."""
        ...

    def expires_ms(self) -> float | None:
        """When the session expires, in ms since the epoch (``None``: browser session)."""
        ...


#: Where a time past Python's datetime range reads (see :func:`_datetime`).
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def _datetime(ms: float | None) -> datetime | None:
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        # The metadata's range is JavaScript's (to year 275760, as koa-session reads it), and
        # past year 9999 datetime cannot say: such a time reads as the latest datetime rather
        # than fail the request. Times before 1970 are refused when the session loads.
        return _LATEST


class _EngineHolder:
    """How a :class:`Session` reaches its engine: given, or made on first use.

    An adapter may pass ``make`` and ``request`` instead of the engine, so that a request that
    never touches its session never builds one (the untouched hot path, issue 12): ``_rs``
    calls ``make(session, request)`` the first time it is read.
    """

    __slots__ = ("_bound", "_make", "_request")

    #: The engine once there is one (typed loosely: adapters read their own engine class).
    _bound: Any
    _make: Callable[[Any, Any], SessionEngine] | None
    _request: Any

    @property
    def _rs(self) -> SessionEngine:
        """The engine, made on first use when the adapter deferred it."""
        rs: SessionEngine | None = self._bound
        if rs is None:
            make = self._make
            assert make is not None, "a Session needs an engine or a way to make one"
            rs = self._bound = make(self, self._request)
            self._make = self._request = None
        return rs

    def _rebind(self, rs: SessionEngine) -> None:
        """Talk to ``rs`` from now on (the engine's stand-in once the request ended)."""
        self._bound = rs
        self._make = self._request = None


class Session(_EngineHolder, MutableMapping[str, Any]):
    """The session of one request: a mutable mapping plus koa's session methods.

    Its engine (:class:`SessionEngine`) reads ``_data`` (``None`` until loaded), ``_removed``
    and ``_require_save``, and changes the state only through the methods of the "engine
    interface" section below.
    """

    __slots__ = ("_data", "_is_new", "_removed", "_require_save", "_writes")

    def __init__(
        self,
        rs: SessionEngine | None,
        make: Callable[[Session, Any], SessionEngine] | None = None,
        request: Any = None,
    ) -> None:
        self._bound: Any = rs  # see _EngineHolder
        self._make = make
        self._request = request
        self._data: dict[str, Any] | None = None
        self._removed = False
        self._require_save = False
        self._is_new = True
        #: Counts writes through this object (assignments, deletions, the engine's swaps). With
        #: no nested values, an unchanged count proves unchanged data without serialising it.
        self._writes = 0

    def _load(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            self._rs.load()
            data = self._data
            assert data is not None
        return data

    # -- engine interface ----------------------------------------------------------------
    def _adopt(self, data: dict[str, Any], *, is_new: bool) -> None:
        """Become ``data`` as loaded (``is_new``: nothing was loaded)."""
        self._data = data
        self._is_new = is_new
        self._writes += 1

    def _replace(self, data: dict[str, Any]) -> None:
        """Take over ``data`` the application assigned (koa's ``ctx.session = {...}``)."""
        self._data = data
        self._removed = False
        self._writes += 1

    def _mark_removed(self) -> None:
        """Remove at commit (koa's ``ctx.session = null``)."""
        if self._data is None:
            self._data = {}
        self._removed = True
        self._writes += 1

    def _require(self, required: bool = True) -> None:
        """Force (or, after a save, stop forcing) the next commit to save."""
        self._require_save = required

    # -- mapping protocol ----------------------------------------------------------------
    # The mapping methods read ``_data`` before calling ``_load``: once loaded, the commonest
    # case, that saves a call per access (issue 12).
    def __getitem__(self, key: str) -> Any:
        data = self._data
        return (self._load() if data is None else data)[key]

    def __setitem__(self, key: str, value: Any) -> None:
        data = self._data
        if data is None:
            data = self._load()
        if type(key) is not str or key in META_KEYS:
            check_key(key)  # its checks; a plain str key that is not reserved needs no call
        data[key] = value
        self._removed = False
        self._writes += 1

    def __delitem__(self, key: str) -> None:
        del self._load()[key]
        self._writes += 1

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, key: object) -> bool:
        return key in self._load()

    def get(self, key: str, default: Any = None) -> Any:
        """``session[key]`` or ``default``."""
        data = self._data
        return (self._load() if data is None else data).get(key, default)

    def clear(self) -> None:
        """Remove every value (the session is then saved empty, not removed)."""
        self._load().clear()
        self._writes += 1

    def __repr__(self) -> str:
        if self._data is None:
            return "<Session (not loaded)>"
        return f"<Session {self._data!r}{' removed' if self._removed else ''}>"

    # -- koa's session API ---------------------------------------------------------------
    @property
    def is_new(self) -> bool:
        """True when nothing was loaded (no cookie, or it was rejected)."""
        self._load()
        return self._is_new

    @property
    def populated(self) -> bool:
        """True when the session holds any value."""
        return bool(self._load())

    def to_json(self) -> dict[str, Any]:
        """A copy of the data, without metadata (koa's ``toJSON()``)."""
        return dict(self._load())

    @property
    def max_age(self) -> float | str:
        """This request's lifetime in seconds, or ``"session"``.

        Setting it (e.g. "remember me") changes this request's cookie lifetime and forces a save.
        """
        self._load()
        return self._rs.opts_view.max_age

    @max_age.setter
    def max_age(self, value: float | str) -> None:
        self._load()
        self._rs.opts.max_age = normalize_max_age(value)
        self._require_save = True

    @property
    def external_key(self) -> str | None:
        """The store id of this session (store mode), current after ``regenerate()``; ``None``
        from a committed removal until a save gives the new session its id."""
        return self._rs.external_key

    @property
    def options(self) -> RequestOptions:
        """This request's copy of the options (koa's ``ctx.sessionOptions``).

        Options that shape this request's save (:data:`PER_REQUEST_OPTIONS`: lifetime,
        rolling/renew, cookie attributes, ``signed``, ``encode``/``decode``, ``before_save``) may
        be set and apply to this request only; setting any other raises ``ConfigurationError``.
        """
        return self._rs.opts

    def destroy(self) -> None:
        """Remove the session at commit: store entry destroyed, cookies expired.

        Same as koa's ``ctx.session = null``. Writing to the session afterwards starts it again;
        once a commit (``await save()``) has removed it, what is written is a new session (in
        store mode saved under a new id, never the destroyed one).
        """
        self._load().clear()
        self._removed = True

    async def load(self) -> Session:
        """Load the data now if it is not loaded yet, and return the session.

        Needed before the first use in store mode with ``lazy=True`` (the store read is
        asynchronous); elsewhere it does nothing the first access would not do.
        """
        if self._data is None:
            await self._rs.load_async()
        return self

    async def save(self) -> None:
        """Save now, whether or not anything changed."""
        await self._rs.commit(save=True)

    async def regenerate(self) -> None:
        """Remove the old session and save the same data under a new id (after login).

        The CSRF secret (:mod:`koasession.csrf`) is not carried over: the new session makes a new
        one on its next ``csrf_token()``, so tokens from before a login stop working.
        """
        if CSRF_SESSION_KEY in self:
            # Through __delitem__, which counts the write: a commit that saw no write would
            # reuse the JSON as loaded, secret included.
            del self[CSRF_SESSION_KEY]
        await self._rs.commit(regenerate=True)

    async def manually_commit(self) -> None:
        """Commit now; the way to write when ``auto_commit=False``."""
        await self._rs.commit()

    # -- everyday verbs ------------------------------------------------------------------
    async def flush(self) -> None:
        """Destroy this session and continue with an empty new one (Django's ``flush()``).

        Store mode: the stored entry is destroyed now and the session gets a new id. Both
        modes: the cookie is expired, unless the application stores values afterwards, which
        are then saved as a new session (new id, new ``created_at``). Use it at logout.
        """
        await self._rs.flush()

    def flush_sync(self) -> None:
        """:meth:`flush` without awaiting, in cookie mode (it needs no I/O there).

        In store mode it raises ``TypeError``: destroying the entry is store I/O.
        """
        self._rs.flush_now()

    async def reload(self) -> None:
        """Read the session again as this request sent it, discarding unsaved changes.

        Store mode: the stored data is read again (changes another request saved meanwhile
        appear; a session destroyed meanwhile becomes a new one). Cookie mode: the request's
        cookie is decoded again.
        """
        await self._rs.reload()

    def reload_sync(self) -> None:
        """:meth:`reload` without awaiting, in cookie mode without an async ``valid``.

        Otherwise it raises ``TypeError``: reading needs the store (or the hook) awaited.
        """
        self._rs.reload_now()

    def skip_save(self) -> None:
        """Let this request write nothing, whatever changed.

        The automatic commit is skipped: no save, no rolling/renew/idle refresh, no removal.
        Explicit ``await session.save()``, ``regenerate()`` or ``flush()`` still act.
        """
        self._rs.skip()

    # -- metadata (read-only) ------------------------------------------------------------
    @property
    def created_at(self) -> datetime | None:
        """When the session was created (UTC), ``None`` if it carries no ``_created``.

        A new session answers now and saves that time. ``_created`` is recorded on every new
        session except with koa's ``algorithm="sha1"`` (unless ``absolute_timeout`` is set).
        A time past year 9999, which a koa-style payload may carry but ``datetime`` cannot
        hold, reads as ``datetime.max`` (UTC), here and in the other times.
        """
        return _datetime(self._rs.created_ms())

    @property
    def accessed_at(self) -> datetime | None:
        """The last access as recorded (UTC): only with ``idle_timeout``, else ``None``."""
        return _datetime(self._rs.accessed_ms())

    @property
    def expires_at(self) -> datetime | None:
        """When the session expires as loaded (UTC); ``None`` for ``max_age="session"``.

        A new session answers now plus its lifetime.
        """
        return _datetime(self._rs.expires_ms())

    @property
    def remaining(self) -> float | None:
        """Seconds until :attr:`expires_at` (0 at the earliest); ``None`` for browser sessions."""
        expires = self._rs.expires_ms()
        if expires is None:
            return None
        return max(0.0, (expires - time.time() * 1000) / 1000)


def find_session(holder: Mapping[str, Any], scope_key: str, *, where: str, fix: str) -> Session:
    """The :class:`Session` at ``holder[scope_key]`` (an ASGI scope, an aiohttp request).

    Otherwise a :class:`~koasession.errors.NoSessionError` naming the place (``where``, as in
    ``scope``) and, when nothing is there, how to put a session there (``fix``).
    """
    value = holder.get(scope_key, _MISSING)
    if isinstance(value, Session):
        return value
    with_key = "" if scope_key == "session" else f" with scope_key={scope_key!r}"
    if value is _MISSING:
        raise NoSessionError(f"no koasession Session under {where}[{scope_key!r}]: {fix}{with_key}")
    raise NoSessionError(
        f"{where}[{scope_key!r}] holds {type(value).__name__}, not a koasession Session: was it "
        "replaced, or is another session middleware installed under the same key?"
    )


_MISSING = object()
