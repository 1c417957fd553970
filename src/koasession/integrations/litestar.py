"""Litestar: its ``request.session``, ``set_session()`` and ``clear_session()`` with koa semantics.

Litestar's connection API reads and writes ``scope["session"]`` directly:

- ``request.session`` returns ``scope["session"]``: here the koasession
  :class:`~koasession.Session` (a mutable mapping; ``await request.session.regenerate()`` and the
  other koa methods are available on it).
- ``request.set_session(value)`` stores ``value`` there. A ``dict`` replaces the session data
  (koa's ``ctx.session = {...}``); a Litestar data container (pydantic model, msgspec
  ``Struct``, dataclass, attrs class) is converted to a dict with Litestar's own JSON
  serialisation, the way Litestar's session backends store it.
- ``request.clear_session()`` stores the sentinel ``Empty``; it means removal (koa's
  ``ctx.session = null``): the store entry is destroyed and the cookies expire.

The core middleware accepts only a ``Session``, ``None`` or a ``dict`` in the scope, so
:class:`LitestarSessionMiddleware` translates Litestar's values the moment they are written. It
is the middleware to use with Litestar, either around the application (recommended: every
request, 404s included, gets a session)::

    app = LitestarSessionMiddleware(Litestar(route_handlers=[...]), keys=[...])

or in Litestar's middleware list, with :func:`session_middleware`::

    app = Litestar(route_handlers=[...], middleware=[session_middleware(keys=[...])])

Litestar converts exceptions into responses inside the application. A 4xx response commits
the session as it stands; a 5xx (Litestar's 500 for an unhandled exception included) commits
nothing automatically, and a ``StoreError`` from a session call becomes the middleware's 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from litestar.middleware import DefineMiddleware
from litestar.serialization import decode_json, encode_json
from litestar.types import Empty
from litestar.utils.scope import get_serializer_from_scope

from ..asgi import ASGIApp, Receive, Scope, Send, SessionMiddleware
from ..session import Session, check_key

__all__ = ["LitestarSessionMiddleware", "session_middleware", "to_koa_value"]


def _serializer(scope: Mapping[str, Any] | None) -> Callable[[Any], Any] | None:
    """The serializer Litestar itself would use for this request (plugins' type encoders)."""
    if scope is None or "route_handler" not in scope or "litestar_app" not in scope:
        return None
    try:
        return get_serializer_from_scope(cast("Any", scope))
    except Exception:  # pragma: no cover - a scope Litestar did not fully build
        return None


def to_koa_value(
    value: Any, scope: Mapping[str, Any] | None = None
) -> Session | dict[str, Any] | None:
    """Translate what Litestar code put in the scope into what the core middleware accepts.

    ``Empty`` and ``None`` become ``None`` (remove the session); a koasession ``Session`` or a
    ``dict`` is kept; a data container becomes the ``dict`` of its JSON form, serialised as
    Litestar serialises it for the request in ``scope`` (its plugins' encoders included) or,
    without a scope, with Litestar's default serializer (and pydantic's ``model_dump``).
    Anything that does not serialise to a JSON object is a ``TypeError``.
    """
    if value is Empty or value is None:
        return None
    if isinstance(value, (Session, dict)):
        return value
    try:
        model_dump = getattr(value, "model_dump", None)
        serializer = _serializer(scope)
        if serializer is None and callable(model_dump):
            converted = model_dump(mode="json")
        else:
            converted = decode_json(encode_json(value, serializer))
    except Exception as exc:  # Litestar raises its own SerializationException
        raise TypeError(
            f"cannot use a {type(value).__name__} as session data: {exc}; pass a dict, a pydantic "
            "model, a msgspec Struct, a dataclass or an attrs class"
        ) from exc
    if not isinstance(converted, dict):
        raise TypeError(
            f"session data must serialise to a JSON object; a {type(value).__name__} gave "
            f"{type(converted).__name__}"
        )
    return cast("dict[str, Any]", converted)


class _KoaScope(dict[str, Any]):
    """An ASGI scope whose session slot translates Litestar's values as they are written."""

    __slots__ = ("_session", "_session_key")

    def __init__(self, scope: Scope, session_key: str) -> None:
        super().__init__(scope)
        self._session_key = session_key
        self._session: Session | None = None

    def __setitem__(self, key: str, value: Any) -> None:
        if key == self._session_key:
            value = self._translate(value)
        super().__setitem__(key, value)

    def _translate(self, value: Any) -> Session | dict[str, Any] | None:
        koa_value = to_koa_value(value, self)
        if isinstance(koa_value, Session):
            if self._session is None:
                self._session = koa_value
            return koa_value
        session = self._session
        current: object = self.get(self._session_key)
        if session is not None and koa_value and current is session:
            # koa's ``ctx.session = {...}``, applied at once so that ``request.session`` stays
            # the Session (``await request.session.regenerate()`` after ``set_session``). The
            # old data is loaded first, as koa does, so the id and lifetime are kept.
            data = dict(koa_value)
            for name in data:
                check_key(name)
            session.clear()
            session.update(data)
            return session
        # Removal, an empty replacement, or a replacement after removal: the core applies these
        # at commit exactly as koa does.
        return koa_value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        items: Iterable[tuple[str, Any]]
        for source in (*args, kwargs):
            items = source.items() if isinstance(source, Mapping) else source
            for key, value in items:
                self[key] = value


class LitestarSessionMiddleware(SessionMiddleware):
    """:class:`~koasession.SessionMiddleware` for Litestar apps.

    Takes the same arguments. Each request's scope is a copy in which writes of
    ``scope[scope_key]`` are translated by :func:`to_koa_value`, so ``request.set_session()``
    and ``request.clear_session()`` behave as koa's ``ctx.session = {...}`` and
    ``ctx.session = null``, manual commits (``await request.session.save()``) included.
    """

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        keys: Sequence[str | bytes] | None = None,
        **options: Any,
    ) -> None:
        # Litestar's ASGI signature uses its own TypedDicts: accept any ASGI callable.
        super().__init__(cast("ASGIApp", app), keys, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        await super().__call__(_KoaScope(scope, self.config.options.scope_key), receive, send)


def session_middleware(
    keys: Sequence[str | bytes] | None = None, **options: Any
) -> DefineMiddleware:
    """A Litestar ``DefineMiddleware`` for ``Litestar(middleware=[...])``.

    Litestar builds one middleware per route handler from it; pass shared objects (a store) as
    options and they are shared. Unlike wrapping the application, requests that match no route
    (404, 405) do not get a session.
    """
    SessionMiddleware(_no_app, keys, **options)  # validate now, not at the first request
    factory = cast("Any", LitestarSessionMiddleware)
    return DefineMiddleware(factory, keys=keys, **options)


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
    raise RuntimeError("placeholder app used only to validate options")
