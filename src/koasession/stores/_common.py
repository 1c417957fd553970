"""Helpers shared by the bundled stores: id checks, hashed ids, write modes, owners, JSON.

Nothing here is public API; the stores re-export what users need.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import math
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

from .. import codec
from ..devices import read_device
from ..errors import ConfigurationError, check_flag
from ..ids import is_valid_id
from .base import SessionData

#: How ``set`` must write: ``insert`` only if absent, ``update`` only if present, ``upsert`` both.
WriteMode = Literal["insert", "update", "upsert"]

#: A function of the session data returning the owner (for example the user id), or ``None``.
OwnerFunc = Callable[[SessionData], "str | int | None"]

# A hash key shorter than this would make the HMAC of an id guessable by brute force.
_MIN_HASH_KEY_BYTES = 32


def pool_options_of(store: str, pool_options: object) -> dict[str, Any]:
    """``pool_options`` as a new dict; what ``dict()`` cannot take (a string from a settings
    file) is refused by name rather than with dict()'s own words."""
    if pool_options is None:
        return {}
    problem = ConfigurationError(
        f"{store}: pool_options must be a dict of driver options, e.g. "
        f"pool_options={{'max_size': 10}}; got {type(pool_options).__name__}"
    )
    if isinstance(pool_options, (str, bytes)):
        raise problem
    try:
        return dict(pool_options)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        raise problem from None


def check_pool_sizes(
    store: str, options: Mapping[str, Any], low: str, high: str, defaults: tuple[int, int]
) -> None:
    """Refuse pool sizes the driver refuses when it makes the pool, at the first request (a
    503 each time): not whole numbers, or ``low`` over ``high`` (the store's defaults count)."""
    sizes = []
    for name, default, least in ((low, defaults[0], 0), (high, defaults[1], 1)):
        value = options.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigurationError(
                f"{store}: pool_options {name} must be a whole number, {least} or more; "
                f"got {value!r}"
            )
        sizes.append(value)
    if sizes[0] > sizes[1]:
        raise ConfigurationError(
            f"{store}: pool_options {low}={sizes[0]} is over {high}={sizes[1]} (the store's "
            f"defaults are {low}={defaults[0]}, {high}={defaults[1]}): raise {high} too"
        )


def check_driver_options(
    store: str,
    options: Mapping[str, Any],
    *takers: Callable[..., Any],
    set_by_store: Collection[str] = (),
) -> None:
    """Refuse ``pool_options`` that none of ``takers`` has a keyword parameter for, and those
    in ``set_by_store`` (passed by the store itself, so a second value fails at first use).

    ``takers`` are the driver's functions the options go through, the one that gets what the
    others leave last (the pool's, then the connection's). The drivers pass unknown names on
    to their connections, which are made at the first request: there a misspelt option failed
    every store call, which the middleware answers as a store outage (503). The drivers' own
    signatures are the list, so it follows their versions. When the last one takes any keyword
    (``**kwargs``: a ``connect=`` of the application's own, say) or a signature cannot be read,
    the names are left to the driver.
    """
    accepted: set[str] = set()
    takes_any = False  # whether the last taker has **kwargs
    for taker in takers:
        try:
            parameters = inspect.signature(taker).parameters.values()
        except (TypeError, ValueError):  # pragma: no cover - a compiled function with no signature
            return
        accepted.update(
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        )
        takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    if takes_any:
        accepted.update(options)
    accepted.difference_update(set_by_store)
    unknown = sorted(set(options) - accepted)
    if unknown:
        named = ", ".join(
            f"{name!r}"
            + (" (the store passes it)" if name in set_by_store else "")
            + "".join(f" (did you mean {m!r}?)" for m in get_close_matches(name, accepted, 1))
            for name in unknown
        )
        raise ConfigurationError(
            f"{store}: pool_options {named} not taken by its driver; "
            f"it takes {', '.join(sorted(accepted))}"
        )


def running_loop(store: object) -> asyncio.AbstractEventLoop:
    """The running asyncio event loop, for a store whose driver needs one; outside asyncio, the
    :func:`not_on_asyncio` error instead of the driver's "no running event loop"."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise not_on_asyncio(store) from None


def not_on_asyncio(store: object) -> ConfigurationError:
    """The error of a bundled store called outside an asyncio event loop (under trio, say).

    A ``ConfigurationError`` rather than a store outage: no retry helps, the application must
    be served on asyncio (or use a store written for its library).
    """
    name = type(store).__name__
    return ConfigurationError(
        f"{name} needs an asyncio event loop (its driver runs only on asyncio), but it was "
        f"called {_where()}: serve the app on asyncio (uvicorn, Hypercorn's default worker, "
        "Granian), or use MemoryStore or a store written for that library"
    )


def _where() -> str:
    sniffio = sys.modules.get("sniffio")  # anyio's; when loaded, it can name the library
    if sniffio is not None:
        try:
            return f"under {sniffio.current_async_library()}"
        except sniffio.AsyncLibraryNotFoundError:
            pass
    return "outside any asyncio event loop"


def valid_id(key: object) -> bool:
    """Return whether ``key`` is a well-formed session id: the middleware's one id rule.

    See :mod:`koasession.ids` for the rule, and why no id can collide with a store's own keys
    (the RedisStore owner index) or carry a Redis key pattern or SQL into a query.
    """
    return is_valid_id(key)


def dumps(data: SessionData) -> str:
    """Serialise exactly as ``JSON.stringify`` does (the package's one JSON policy,
    :func:`koasession.codec.dumps`): a Koa app sharing the store reads what it would write, and
    a lone surrogate is escaped rather than failing the store's UTF-8 encoding."""
    return codec.dumps(data)


def loads(raw: str | bytes) -> SessionData | None:
    """Parse stored JSON with the package's one JSON policy (:func:`koasession.codec.loads_object`).

    Anything that is not a JSON object, not UTF-8, nested deeper than the middleware's limit or
    carrying ``NaN``/``Infinity``/an overflowing number is treated as a miss (``None``), exactly as
    the same text in a cookie would be.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            return None
    return codec.loads_object(raw)


def ttl_seconds(max_age: float | None) -> float | None:
    """Normalise a store lifetime: ``None``, infinite or NaN mean "no expiry"; floor at 0."""
    if max_age is None:
        return None
    age = float(max_age)
    if math.isnan(age) or math.isinf(age):
        return None
    return max(age, 0.0)


class LoadedKeyContext(Protocol):
    """What a store needs from the request context: the id loaded for this request."""

    @property
    def loaded_key(self) -> str | None:
        """The id loaded from the store for this request, ``None`` for a fresh session."""


def write_mode(key: str, ctx: LoadedKeyContext | None) -> WriteMode:
    """Decide insert/update/upsert from the ``ctx.loaded_key`` contract of :mod:`.base`.

    Without a context (a direct call by application code) there is no request to protect, so the
    store simply upserts.
    """
    if ctx is None:
        return "upsert"
    return "update" if key == ctx.loaded_key else "insert"


#: The metadata fields ``touch`` may set. They are numbers under fixed names, so a SQL store can
#: set them with constant JSON paths and no value ever becomes part of a statement.
TOUCH_FIELDS = frozenset({"_expire", "_maxAge", "_accessed"})


def touch_items(fields: Mapping[str, object]) -> list[tuple[str, float]]:
    """The ``fields`` of a ``touch`` call as (name, number) pairs, after checking them."""
    items: list[tuple[str, float]] = []
    for name, value in fields.items():
        if name not in TOUCH_FIELDS:
            raise ValueError(f"touch() can only set {sorted(TOUCH_FIELDS)}; got {name!r}")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value):  # type: ignore[arg-type]
            raise ValueError(f"touch() needs a number for {name!r}; got {value!r}")
        items.append((name, value))  # type: ignore[arg-type]
    return items


def merge_items(
    changed: Mapping[str, object], deleted: Sequence[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The arguments of a ``merge`` call checked: (name, value as JSON text) pairs to set and
    the names to delete. Raises ``ValueError`` for data JSON cannot hold, like ``set``."""
    if isinstance(deleted, str) or not all(isinstance(n, str) for n in deleted):
        raise ValueError(f"merge() needs a list of key names to delete; got {deleted!r}")
    items = []
    for name, value in changed.items():
        if not isinstance(name, str):
            raise ValueError(f"merge() needs str keys; got {name!r}")
        items.append((name, codec.dumps(value)))
    return items, list(deleted)


def loads_value(raw: str) -> Any:
    """A value serialised by :func:`merge_items`, back as a Python value."""
    return codec.loads(raw)


def dumps_name(name: str) -> str:
    """A key name as a JSON string."""
    return codec.dumps(name)


def json_path(name: str) -> str | None:
    """The JSON path of the top-level key ``name`` for SQLite and MySQL (``$."name"``), or
    ``None`` when it cannot be written as one: neither quotes nor escapes are portable."""
    if '"' in name or "\\" in name:
        return None
    return f'$."{name}"'


@dataclass(frozen=True)
class StoredSession:
    """One session as listed by ``list_owner``.

    ``key`` is the id as the store keeps it: the session id itself, or its HMAC when the store
    was made with ``hash_ids=True`` (the raw id is then unknown to the store by design). It is
    for server-side code only: without ``hash_ids`` it *is* the cookie, so never show it.
    ``expires_at`` is a Unix timestamp in seconds, or ``None`` for no expiry.

    What a "where you are signed in" page shows: ``handle`` (opaque, safe to put in a page and
    give back to ``revoke``; no one can derive the cookie id from it), ``device`` (the facts
    :func:`koasession.devices.record_device` saved: ``user_agent``, ``ip`` when recorded),
    ``created_at`` and ``last_seen`` (Unix seconds, ``None`` when unknown) and ``is_current``
    (the session whose id was passed as ``current``).
    """

    key: str
    data: SessionData = field(hash=False)
    expires_at: float | None = None
    handle: str = ""
    device: dict[str, Any] | None = field(default=None, hash=False)
    created_at: float | None = None
    last_seen: float | None = None
    is_current: bool = False


# Domain separation: a handle is never equal to a digest the store computes for anything else.
_HANDLE_PREFIX = b"koasession handle\x00"


def session_handle(stored_key: str) -> str:
    """The opaque handle of the session kept under ``stored_key``.

    A SHA-256 of the stored key: the same in every process (a page listed by one worker can
    revoke through another) and not invertible, since session ids carry 256 random bits (or are
    already an HMAC with ``hash_ids``).
    """
    return hashlib.sha256(_HANDLE_PREFIX + stored_key.encode()).hexdigest()[:32]


def _ms_seconds(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1000
    return None


def describe(entry: StoredSession, current_key: str | None) -> StoredSession:
    """``entry`` (key, data, expiry) completed with its handle, device facts and timestamps.

    Timestamps come from the device facts, else from the middleware's own metadata
    (``_created``, ``_accessed``, in milliseconds) when the session recorded it.
    """
    device = read_device(entry.data)
    created = device.pop("created_at", None) if device is not None else None
    seen = device.pop("last_seen", None) if device is not None else None
    if created is None:
        created = _ms_seconds(entry.data.get("_created"))
    if seen is None:
        seen = _ms_seconds(entry.data.get("_accessed"))
    return StoredSession(
        entry.key,
        entry.data,
        entry.expires_at,
        handle=session_handle(entry.key),
        device=device,
        created_at=None if created is None else float(created),
        last_seen=None if seen is None else float(seen),
        is_current=current_key is not None and entry.key == current_key,
    )


_S = TypeVar("_S", bound="StoreOptionsMixin")


class StoreOptionsMixin:
    """Id validation, optional id hashing, the owner function and ``async with`` support,
    shared by every store."""

    _hash_key: bytes | None
    _owner: OwnerFunc | None

    def _init_common(
        self,
        *,
        hash_ids: bool,
        hash_key: str | bytes | None,
        owner: OwnerFunc | None,
    ) -> None:
        if check_flag("hash_ids", hash_ids):
            if hash_key is None:
                raise ConfigurationError(
                    "hash_ids=True needs hash_key: a secret of at least 32 bytes, kept out of "
                    "the store, used to HMAC session ids"
                )
            key_bytes = hash_key.encode() if isinstance(hash_key, str) else bytes(hash_key)
            if len(key_bytes) < _MIN_HASH_KEY_BYTES:
                raise ConfigurationError(
                    f"hash_key must be at least {_MIN_HASH_KEY_BYTES} bytes (got {len(key_bytes)})"
                )
            self._hash_key = key_bytes
        else:
            if hash_key is not None:
                # A hash key without hash_ids is almost certainly a forgotten flag: say so early
                # rather than silently keeping raw ids.
                raise ConfigurationError("hash_key was given but hash_ids is False")
            self._hash_key = None
        if owner is not None and not callable(owner):
            raise ConfigurationError("owner must be a function of the session data")
        self._owner = owner

    @property
    def owner(self) -> OwnerFunc | None:
        """The owner function given at construction (``None``: no per-owner index)."""
        return self._owner

    def _stored_key(self, key: str) -> str:
        """The key under which the store keeps the session ``key`` (HMAC'd when enabled)."""
        if self._hash_key is None:
            return key
        return hmac.new(self._hash_key, key.encode("ascii"), hashlib.sha256).hexdigest()

    def _owner_of(self, data: SessionData | None) -> str | None:
        """The owner id of ``data`` as a string, or ``None`` (no owner function, or no owner)."""
        if self._owner is None or data is None:
            return None
        value = self._owner(data)
        if value is None:
            return None
        # bool is an int subclass; an owner of True is a bug in the owner function, not an id.
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(f"owner function must return str, int or None, not {type(value)!r}")
        return str(value)

    async def close(self) -> None:
        """Release what the store opened (each store says what)."""

    async def __aenter__(self: _S) -> _S:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _require_owner(self) -> None:
        if self._owner is None:
            raise ConfigurationError("this store was created without owner=; no owner index")

    # -- the owner index: each store implements these three ------------------------------------

    async def _owner_entries(self, owner: str) -> list[StoredSession]:
        """The live sessions of ``owner``: stored key, data and expiry only."""
        raise NotImplementedError

    async def _owner_destroy_all(self, owner: str) -> int:
        """Remove every session of ``owner``; return how many were live."""
        raise NotImplementedError

    async def _owner_destroy_one(self, stored_key: str, owner: str) -> bool:
        """Remove the session kept under ``stored_key`` if it is live and belongs to ``owner``;
        return whether it did."""
        raise NotImplementedError

    # -- the owner index: public, shared by every store ----------------------------------------

    async def list_owner(
        self, owner_id: str | int, *, current: str | None = None
    ) -> list[StoredSession]:
        """List the live sessions of ``owner_id``, with handles, device facts and timestamps.

        ``current`` is the id of the session making the request (``session.external_key``):
        its entry gets ``is_current=True``.
        """
        self._require_owner()
        current_key = None
        if current is not None and valid_id(current):
            current_key = self._stored_key(current)
        entries = await self._owner_entries(str(owner_id))
        return [describe(entry, current_key) for entry in entries]

    async def revoke(self, owner_id: str | int, handle: str) -> bool:
        """End the session of ``owner_id`` that ``handle`` (from :meth:`list_owner`) names;
        return whether one was ended. A handle of another owner's session ends nothing."""
        self._require_owner()
        if not isinstance(handle, str) or not handle.isascii():
            return False
        owner = str(owner_id)
        wanted = handle.encode()
        for entry in await self._owner_entries(owner):
            if hmac.compare_digest(session_handle(entry.key).encode(), wanted):
                return await self._owner_destroy_one(entry.key, owner)
        return False

    async def destroy_owner(self, owner_id: str | int, *, keep: str | None = None) -> int:
        """Remove every session of ``owner_id`` ("log out everywhere"); return how many.

        ``keep``: the id of a session to spare, usually the current one ("log out other
        devices"). In-flight requests of the removed sessions cannot bring them back.
        """
        self._require_owner()
        owner = str(owner_id)
        if keep is None:
            return await self._owner_destroy_all(owner)
        kept = self._stored_key(keep) if valid_id(keep) else None
        removed = 0
        for entry in await self._owner_entries(owner):
            if entry.key != kept:
                removed += await self._owner_destroy_one(entry.key, owner)
        return removed
