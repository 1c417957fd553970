"""``SessionContext``: the per-request object handed to hooks, stores and key carriers.

It plays the part of koa's ``ctx``: the adapter's request (the ASGI scope), the session, this
request's options, a free ``state`` dict, request headers to read and response headers to add
(so a session id can travel in a header instead of a cookie)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .options import SessionOptions
    from .session import Session


class ContextSource(Protocol):
    """What a :class:`SessionContext` reads from its per-request engine.

    :class:`koasession.lifecycle.RequestSession` implements it.
    """

    raw: Any
    headers: Sequence[tuple[bytes, bytes]]
    extra_headers: Sequence[tuple[bytes, bytes]]

    @property
    def opts(self) -> SessionOptions:
        """This request's own copy of the options."""
        ...

    @property
    def loaded_key(self) -> str | None:
        """The store id loaded for this request."""
        ...

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies."""
        ...

    def current(self) -> Session | None:
        """The session as the application left it (``None`` once removed)."""
        ...

    def is_secure(self) -> bool:
        """Whether the request arrived over TLS."""
        ...


class SessionContext:
    """What hooks, stores, ``external_key`` and ``context_store`` receive as ``ctx``."""

    __slots__ = ("_rs", "state")

    def __init__(self, rs: ContextSource) -> None:
        self._rs = rs
        #: Free per-request storage for hooks and stores.
        self.state: dict[str, Any] = {}

    @property
    def scope(self) -> Any:
        """The adapter's request object: the ASGI scope under the ASGI middleware."""
        return self._rs.raw

    @property
    def session(self) -> Session | None:
        """The session (loading it if needed), or ``None`` once it was removed."""
        return self._rs.current()

    @property
    def options(self) -> SessionOptions:
        """This request's copy of the options (koa's ``ctx.sessionOptions``)."""
        return self._rs.opts

    @property
    def loaded_key(self) -> str | None:
        """The store id loaded for this request; ``None`` when the session started fresh.

        Stores use it to tell an update (only if the entry still exists) from an insert
        (only if the id is unused).
        """
        return self._rs.loaded_key

    @property
    def is_secure(self) -> bool:
        """True when the request came over https (or wss, or a trusted proxy said so)."""
        return self._rs.is_secure()

    @property
    def request_headers(self) -> list[tuple[bytes, bytes]]:
        """The raw request headers, as ``(name, value)`` byte pairs."""
        return list(self._rs.headers)

    def get_header(self, name: str) -> str | None:
        """The first request header called ``name`` (case-insensitive), decoded as latin-1."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.request_headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    @property
    def cookies(self) -> dict[str, str]:
        """The request cookies by name."""
        return self._rs.cookies

    def set_header(self, name: str, value: str) -> None:
        """Add a header to the response (sent with ``http.response.start``)."""
        header = (name.lower().encode("latin-1"), value.encode("latin-1"))
        self._rs.extra_headers = [*self._rs.extra_headers, header]

    def __repr__(self) -> str:
        raw = self._rs.raw
        path = raw.get("path") if isinstance(raw, dict) else getattr(raw, "path", None)
        return f"<SessionContext path={path!r}>"
