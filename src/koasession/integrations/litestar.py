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

Typed sessions and logins, through Litestar's dependency injection:

- ``dependencies={"cart": typed_session(Cart)}`` gives the handler's ``cart: Cart`` parameter a
  pydantic model validated from the session; its changes are written back when the handler
  returns. Needs pydantic (the ``[pydantic]`` extra); nothing else here does.
- :class:`LoginRequired` provides ``session["user_id"]`` or answers 401 ``{"status_code": 401,
  "detail": "Not logged in"}``. As a plugin it declares the session cookie as an OpenAPI
  ``apiKey`` security scheme; ``security=login.security`` marks the protected routes.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, WebSocketException
from litestar.middleware import DefineMiddleware
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.plugins import InitPlugin
from litestar.serialization import decode_json, encode_json
from litestar.types import Empty
from litestar.types import Scope as LitestarScope
from litestar.utils.scope import get_serializer_from_scope

from ..asgi import ASGIApp, Receive, Scope, Send, SessionMiddleware
from ..options import SessionOptionsDict
from ..session import Session, check_key, find_session
from ._login import (
    NOT_LOGGED_IN,
    check_cookie_name,
    check_login_arguments,
    logged_in_value,
    scheme_name_for,
)

if TYPE_CHECKING:
    from pydantic import BaseModel
    from typing_extensions import Unpack

__all__ = [
    "LitestarSessionMiddleware",
    "LoginRequired",
    "session_middleware",
    "to_koa_value",
    "typed_session",
]


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
    A route handler with ``opt={"skip_session": True}`` gets no session (no store call, no
    cookie), when the middleware runs per route (:func:`session_middleware`).
    """

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        keys: Sequence[str | bytes] | None = None,
        **options: Unpack[SessionOptionsDict],
    ) -> None:
        # Litestar's ASGI signature uses its own TypedDicts: accept any ASGI callable.
        super().__init__(cast("ASGIApp", app), keys, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            # The lifespan goes through the core, which closes the stores at shutdown.
            await super().__call__(scope, receive, send)
            return
        if _skips_session(scope):
            await self.app(scope, receive, send)
            return
        await super().__call__(_KoaScope(scope, self.config.options.scope_key), receive, send)


#: The route handler ``opt`` key that turns the session off for that route.
SKIP_SESSION = "skip_session"


def _skips_session(scope: Scope) -> bool:
    handler = scope.get("route_handler")
    opt = getattr(handler, "opt", None)
    return bool(opt and opt.get(SKIP_SESSION))


def session_middleware(
    keys: Sequence[str | bytes] | None = None, **options: Unpack[SessionOptionsDict]
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


def _lookup(scope: Mapping[str, Any], scope_key: str) -> Session:
    fix = "wrap the app in LitestarSessionMiddleware (or add session_middleware(...))"
    return find_session(scope, scope_key, where="scope", fix=fix)


def typed_session(
    model: type[BaseModel], *, key: str | None = None, scope_key: str = "session"
) -> Provide:
    """A Litestar dependency giving the session as a pydantic ``model``, written back.

    Use it under the handler parameter's name: ``dependencies={"cart": typed_session(Cart)}``
    and ``async def add(cart: Cart)``. ``key=None`` (the default) maps the model's fields onto
    the top-level session keys and leaves other keys alone; ``key="cart"`` keeps the model in
    ``session["cart"]``. Every field needs a default (a new session has no data): a
    ``TypeError`` here says which does not. Data that fails validation falls back to the
    defaults field by field and the repair is written back. Changes are written when the handler
    returns (before the response is sent; not when it raises), and only if the model's JSON
    changed. Needs pydantic (``pip install 'koasession[pydantic]'``).
    """
    from ._typed import TypedBinding  # pydantic is imported only by those who use it

    binding = TypedBinding(model, key)

    # Litestar injects its reserved ``scope`` kwarg by name; the annotation must be its Scope.
    async def dependency(scope: LitestarScope) -> AsyncGenerator[Any, None]:
        session = await _lookup(cast("Mapping[str, Any]", scope), scope_key).load()
        loaded = binding.load(session)
        yield loaded.model
        # Litestar runs this after the handler returned and before the response is sent; it is
        # not reached when the handler raises, so half-made changes are dropped.
        binding.write_back(session, loaded)

    dependency.__name__ = f"typed_session_{model.__name__}"
    return Provide(dependency)


class LoginRequired(InitPlugin):
    """Login-required dependency and OpenAPI declaration of the session cookie, for Litestar.

    ::

        login = LoginRequired()  # session["user_id"], cookie "koa.sess"

        @get("/me", dependencies={"user_id": login.dependency}, security=login.security)
        async def me(user_id: int) -> dict[str, int]: ...

        app = LitestarSessionMiddleware(Litestar([me], plugins=[login]), keys=...)

    :attr:`dependency` gives ``session[key]``, or answers 401 (Litestar's ``{"status_code": 401,
    "detail": "Not logged in"}``, no ``WWW-Authenticate``) when it is missing or ``None``; on a
    WebSocket it closes the connection with code 1008. As a plugin it adds the session cookie
    ``cookie`` (the middleware's ``key`` option) to the OpenAPI components as an ``apiKey`` in
    ``cookie`` named ``scheme_name`` (by default the cookie name); :attr:`security` goes in the
    protected handlers' (or their router's) ``security=``. A ``cookie`` that is not the
    middleware's is a ``RuntimeError`` at the first request, since the docs would be wrong.
    """

    __slots__ = ("cookie", "dependency", "key", "scheme_name", "scope_key")

    def __init__(
        self,
        key: str = "user_id",
        *,
        cookie: str = "koa.sess",
        scope_key: str = "session",
        scheme_name: str | None = None,
    ) -> None:
        check_login_arguments(key, cookie, scope_key)
        self.key = key
        self.cookie = cookie
        self.scope_key = scope_key
        self.scheme_name = scheme_name or scheme_name_for(cookie)

        async def logged_in(scope: LitestarScope) -> Any:
            session = await _lookup(cast("Mapping[str, Any]", scope), scope_key).load()
            check_cookie_name(session, cookie)
            value = logged_in_value(session, key)
            if value is None:
                if scope["type"] == ScopeType.WEBSOCKET:
                    raise WebSocketException(detail=NOT_LOGGED_IN, code=1008)
                raise NotAuthorizedException(detail=NOT_LOGGED_IN)
            return value

        logged_in.__name__ = f"login_required_{key}"
        #: The ``Provide`` to put under the handler parameter's name in ``dependencies=``.
        self.dependency = Provide(logged_in)

    @property
    def security(self) -> list[SecurityRequirement]:
        """The ``security=`` of protected handlers: the session cookie scheme, no scopes."""
        return [{self.scheme_name: []}]

    @property
    def components(self) -> Components:
        """The OpenAPI components declaring the session cookie (the plugin adds them)."""
        scheme = SecurityScheme(
            type="apiKey",
            name=self.cookie,
            security_scheme_in="cookie",
            description="The session cookie set by koasession; log in to get one.",
        )
        return Components(security_schemes={self.scheme_name: scheme})

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the session cookie's security scheme to the app's OpenAPI components."""
        if app_config.openapi_config is not None:
            # A copy with a new list: the config may be Litestar's shared default or reused by
            # another app.
            openapi = copy.copy(app_config.openapi_config)
            current = openapi.components
            merged = [*current] if isinstance(current, list) else [current]
            openapi.components = [*merged, self.components]
            app_config.openapi_config = openapi
        return app_config
