"""``Session``: the mapping an application reads and writes, koa's ``ctx.session``.

In cookie mode the data is loaded on first use, so a request that never looks at its session pays
for nothing. Data is plain JSON-safe values; nested values may be edited in place, because the
commit compares serialised data rather than watching assignments.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from .codec import META_KEYS
from .csrf import CSRF_SESSION_KEY
from .options import SessionOptions, normalize_max_age

if TYPE_CHECKING:
    from .lifecycle import RequestSession


def check_key(key: object) -> str:
    """Refuse keys JSON objects cannot hold and the names reserved for metadata."""
    if not isinstance(key, str):
        raise TypeError(f"session keys must be strings (JSON object keys); got {key!r}")
    if key in META_KEYS:
        raise KeyError(f"{key!r} is reserved for session metadata; use another name")
    return key


class Session(MutableMapping[str, Any]):
    """The session of one request: a mutable mapping plus koa's session methods."""

    __slots__ = ("_data", "_is_new", "_removed", "_require_save", "_rs")

    def __init__(self, rs: RequestSession) -> None:
        self._rs = rs
        self._data: dict[str, Any] | None = None
        self._removed = False
        self._require_save = False
        self._is_new = True

    def _load(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            self._rs.load()
            data = self._data
            assert data is not None
        return data

    # -- mapping protocol ----------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        data = self._load()
        data[check_key(key)] = value
        self._removed = False

    def __delitem__(self, key: str) -> None:
        del self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, key: object) -> bool:
        return key in self._load()

    def get(self, key: str, default: Any = None) -> Any:
        """``session[key]`` or ``default``."""
        return self._load().get(key, default)

    def clear(self) -> None:
        """Remove every value (the session is then saved empty, not removed)."""
        self._load().clear()

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
        """The store id of this session (store mode), current after ``regenerate()``."""
        return self._rs.external_key

    @property
    def options(self) -> SessionOptions:
        """This request's copy of the options; changes apply to this request only."""
        return self._rs.opts

    def destroy(self) -> None:
        """Remove the session at commit: store entry destroyed, cookies expired.

        Same as koa's ``ctx.session = null``. Writing to the session afterwards starts it again.
        """
        self._load().clear()
        self._removed = True

    async def save(self) -> None:
        """Save now, whether or not anything changed."""
        await self._rs.commit(save=True)

    async def regenerate(self) -> None:
        """Remove the old session and save the same data under a new id (after login).

        The CSRF secret (:mod:`koasession.csrf`) is not carried over: the new session makes a new
        one on its next ``csrf_token()``, so tokens from before a login stop working.
        """
        self._load().pop(CSRF_SESSION_KEY, None)
        await self._rs.commit(regenerate=True)

    async def manually_commit(self) -> None:
        """Commit now; the way to write when ``auto_commit=False``."""
        await self._rs.commit()
