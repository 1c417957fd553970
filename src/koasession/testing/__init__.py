"""Test helpers: put a session into a test client's cookies, read the session a response set.

They work with the ``Client`` and ``AsyncClient`` (``ASGITransport``) of httpx and of its
successor httpx2, and with Starlette's ``TestClient`` (a client of either), and take either the
:class:`~koasession.SessionMiddleware` or any app it sits in (found with
:func:`find_middleware`). Cookies are made the way the middleware makes them: same payload
metadata, same encoding (custom ``encode``, encryption), same signature. (A
:class:`~koasession.config.SessionConfig` is accepted in place of the app as well.)::

    from koasession.testing import read_session, set_session

    async def test_profile(client):
        set_session(client, app, {"user": "ada"})  # logged in, without going through /login
        response = await client.get("/profile")
        assert read_session(response, app) == {"user": "ada", "visits": 1}

Cookie mode works synchronously. Store mode writes to the store, so it has the ``async``
variants (:func:`aset_session`, :func:`asession_cookies`, :func:`store_session`,
:func:`aread_session`); these work in cookie mode too.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar, cast

from .. import cookieformat, cookies, decisions
from ..asgi import Receive, Scope, Send, SessionMiddleware
from ..config import SessionConfig
from ..errors import NoSessionError
from ..lifecycle import RequestSession
from ..options import MaxAge, normalize_max_age
from ..session import check_key

__all__ = [
    "InvalidSessionCookie",
    "aforce_session",
    "alogin",
    "aread_session",
    "asession_cookies",
    "aset_session",
    "find_middleware",
    "force_session",
    "login",
    "read_session",
    "response_session_id",
    "session_cookies",
    "session_removed",
    "set_session",
    "store_session",
]


class InvalidSessionCookie(AssertionError):
    """A response set a session cookie the middleware would reject (bad signature, garbage)."""


class _Jar(Protocol):
    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None: ...

    def delete(self, name: str, domain: str | None = None, path: str | None = None) -> None: ...


class _URL(Protocol):
    @property
    def host(self) -> str: ...


class _Client(Protocol):
    """What the helpers need of a client: ``httpx.Client``, ``AsyncClient``, ``TestClient``."""

    @property
    def cookies(self) -> _Jar: ...

    @property
    def base_url(self) -> _URL: ...


class _Headers(Protocol):
    def get_list(self, key: str, split_commas: bool = False) -> list[str]: ...


class _Response(Protocol):
    """What the helpers need of a response: ``httpx.Response`` (and so ``TestClient``'s)."""

    @property
    def headers(self) -> _Headers: ...


# -- finding the middleware ------------------------------------------------------------------


async def _placeholder_app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
    raise RuntimeError("koasession.testing built this middleware only to read its configuration")


def _declared(entry: object) -> SessionMiddleware | None:
    """The middleware a Starlette ``Middleware`` or Litestar ``DefineMiddleware`` builds."""
    cls = getattr(entry, "cls", None) or getattr(entry, "middleware", None)
    if not (isinstance(cls, type) and issubclass(cls, SessionMiddleware)):
        return None
    args = getattr(entry, "args", ())
    kwargs = getattr(entry, "kwargs", {})
    return cls(_placeholder_app, *args, **kwargs)


def find_middleware(app: object, scope_key: str = "session") -> SessionMiddleware:
    """The :class:`~koasession.SessionMiddleware` for ``scope_key`` in or around ``app``.

    ``app`` may be the middleware itself, any ASGI middleware chain leading to it (through
    ``.app``), a Quart app after ``install()`` (``.asgi_app``), or a Starlette, FastAPI or
    Litestar app that declares it in its middleware list. In the last case a twin is built from
    the declaration: same options, same keys, same store object.
    """
    queue: deque[object] = deque([app])
    seen: set[int] = set()
    while queue:
        obj = queue.popleft()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, SessionMiddleware) and obj.config.options.scope_key == scope_key:
            return obj
        for attr in ("app", "asgi_app", "middleware_stack", "_app"):
            child = getattr(obj, attr, None)
            if child is not None and not hasattr(child, "__self__"):  # skip bound methods
                queue.append(child)
        for attr in ("user_middleware", "middleware"):
            entries = getattr(obj, attr, None)
            if isinstance(entries, (list, tuple)):
                for entry in entries:
                    built = _declared(entry)
                    if built is not None:
                        queue.append(built)
    raise NoSessionError(
        f"no koasession SessionMiddleware with scope_key={scope_key!r} found in {app!r}; "
        "pass the middleware itself"
    )


def _config(app: object, scope_key: str) -> SessionConfig:
    if isinstance(app, SessionConfig):
        return app
    return find_middleware(app, scope_key).config


# -- making cookies --------------------------------------------------------------------------


def _request_session(cfg: SessionConfig, max_age: MaxAge | float | None) -> RequestSession:
    # As over https, so that secure=True configurations can set their cookies; no request
    # exists, so hooks see no raw request and the session is published nowhere.
    rs = RequestSession(cfg, (), scheme="https", slot={})
    rs.adopt(None, None)
    if max_age is not None:
        rs.opts.max_age = normalize_max_age(max_age)
    return rs


def _checked(data: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for name in out:
        check_key(name)
    return out


def _cookie_values(rs: RequestSession) -> dict[str, str]:
    return cookieformat.values(rs.cookie_lines)


def session_cookies(
    app: object,
    data: Mapping[str, Any],
    *,
    max_age: MaxAge | float | None = None,
    scope_key: str = "session",
) -> dict[str, str]:
    """The cookies (``{name: value}``) that carry ``data`` as the session, in cookie mode.

    Signed or encrypted exactly as the middleware would, with koa's ``_expire`` / ``_maxAge``
    (or ``_session``) metadata; ``max_age`` overrides the configured lifetime in seconds. In
    store mode use ``await asession_cookies(...)``, which also writes to the store.
    """
    cfg = _config(app, scope_key)
    if cfg.options.uses_store:
        raise TypeError(
            "the middleware uses a store: use `await asession_cookies(...)` or "
            "`await aset_session(...)`, which write the data to the store"
        )
    rs = _request_session(cfg, max_age)
    rs.write_cookie(cfg.options.key, rs.encode(rs.payload(_checked(data))))
    return _cookie_values(rs)


async def store_session(
    app: object,
    data: Mapping[str, Any],
    *,
    max_age: MaxAge | float | None = None,
    scope_key: str = "session",
) -> str:
    """Save ``data`` in the middleware's store under a new id (``genid``); return the id.

    Store mode only. Useful with ``external_key`` (send the id the way your key carrier reads
    it); otherwise :func:`aset_session` also puts the signed id cookie in the client.
    """
    cfg = _config(app, scope_key)
    if not cfg.options.uses_store:
        raise TypeError("store_session() needs a middleware with store= or context_store=")
    rs = _request_session(cfg, max_age)
    await rs.save(_checked(data), changed=True)
    key = rs.external_key
    if key is None:  # pragma: no cover - save() always sets it or raises
        raise RuntimeError("the store did not accept the session")
    return key


async def asession_cookies(
    app: object,
    data: Mapping[str, Any],
    *,
    max_age: MaxAge | float | None = None,
    scope_key: str = "session",
) -> dict[str, str]:
    """Like :func:`session_cookies`, in both modes: in store mode the data goes to the store
    (under a new id) and the cookies carry the signed id."""
    cfg = _config(app, scope_key)
    if not cfg.options.uses_store:
        return session_cookies(cfg, data, max_age=max_age, scope_key=scope_key)
    if cfg.options.external_key is not None:
        raise TypeError(
            "with external_key the id does not travel in a cookie: use `await store_session(...)` "
            "and send the id it returns the way your external_key reads it"
        )
    rs = _request_session(cfg, max_age)
    await rs.save(_checked(data), changed=True)
    return _cookie_values(rs)


def _domain_for(client: _Client, cfg: SessionConfig) -> str:
    if cfg.options.domain:
        return cfg.options.domain
    try:
        host = client.base_url.host
    except AttributeError:
        return ""
    if host and "." not in host:
        host += ".local"  # what http.cookiejar records for dotless hosts such as "testserver"
    return host


def _put(client: _Client, cfg: SessionConfig, values: Mapping[str, str]) -> None:
    domain = _domain_for(client, cfg)
    jar = client.cookies
    for name in (cfg.options.key, cfg.options.key + ".sig"):
        jar.delete(name)
    for name, value in values.items():
        jar.set(name, value, domain=domain, path=cfg.options.path)


def set_session(
    client: _Client,
    app: object,
    data: Mapping[str, Any],
    *,
    max_age: MaxAge | float | None = None,
    scope_key: str = "session",
) -> dict[str, str]:
    """Make ``data`` the session the client sends from now on (cookie mode); return the cookies.

    Replaces any session cookies already in the client's jar. In store mode use
    ``await aset_session(...)``.
    """
    cfg = _config(app, scope_key)
    values = session_cookies(cfg, data, max_age=max_age, scope_key=scope_key)
    _put(client, cfg, values)
    return values


async def aset_session(
    client: _Client,
    app: object,
    data: Mapping[str, Any],
    *,
    max_age: MaxAge | float | None = None,
    scope_key: str = "session",
) -> dict[str, str]:
    """Like :func:`set_session`, in both modes (store mode saves ``data`` in the store)."""
    cfg = _config(app, scope_key)
    values = await asession_cookies(cfg, data, max_age=max_age, scope_key=scope_key)
    _put(client, cfg, values)
    return values


# -- reading responses -----------------------------------------------------------------------


def _set_cookies(response: _Response) -> dict[str, tuple[str, dict[str, str]]]:
    """``{name: (value, attributes)}`` of the response's Set-Cookie lines (last one wins)."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for line in response.headers.get_list("set-cookie"):
        first, *attrs = line.split(";")
        name, _, value = first.partition("=")
        parsed: dict[str, str] = {}
        for attr in attrs:
            key, _, attr_value = attr.strip().partition("=")
            parsed[key.lower()] = attr_value
        out[name.strip()] = (value.strip(), parsed)
    return out


def _is_removal(value: str, attrs: Mapping[str, str]) -> bool:
    return not value or attrs.get("max-age") == "0" or attrs.get("expires") == cookies.EPOCH


def _verified_value(response: _Response, cfg: SessionConfig) -> str | None:
    """The session cookie value the response set, signature checked; None if not set/removed."""
    jar = _set_cookies(response)
    name = cfg.options.key
    if name not in jar:
        return None
    value, attrs = jar[name]
    if _is_removal(value, attrs):
        return None
    signer = cfg.signer
    if signer is not None:
        sig = jar.get(name + ".sig")
        if sig is None or _is_removal(*sig):
            raise InvalidSessionCookie(f"the response set {name!r} without {name + '.sig'!r}")
        _, rotated, problem = cookieformat.read_signed(
            {name: value, name + ".sig": sig[0]}, name, signer
        )
        if problem is not None or rotated:
            raise InvalidSessionCookie(
                f"the signature of {name!r} does not verify with the first key"
            )
    return value


def _decode(cfg: SessionConfig, value: str) -> dict[str, Any]:
    decode = None if cfg.cipher is not None else cfg.options.decode
    data, _, problem = cookieformat.open_payload(value, cipher=cfg.cipher, decode=decode)
    if problem is not None:
        raise InvalidSessionCookie(f"the session cookie does not decode to an object: {value!r}")
    payload: dict[str, Any] = data
    return payload


def _strip(data: dict[str, Any], metadata: bool) -> dict[str, Any]:
    if metadata:
        return data
    return decisions.split_metadata(data)[0]  # the engine's own split


def read_session(
    response: _Response | _Client,
    app: object = None,
    *,
    metadata: bool = False,
    scope_key: str = "session",
) -> dict[str, Any] | None:
    """The session data a response wrote into its cookie, or a client now holds.

    ``None`` when the response did not write the session, or removed it (see
    :func:`session_removed`), or the client holds no session cookie. The signature is verified
    against the first key and the payload decoded (or decrypted); :class:`InvalidSessionCookie`
    when either fails. Metadata (``_expire``, ``_maxAge``...) is stripped unless
    ``metadata=True``. ``app`` may be left out for a client whose app can be found (Starlette's
    ``TestClient``, httpx's ``ASGITransport``). In store mode, a client is read from the store
    (outside a running event loop); a response needs ``await aread_session(...)``.
    """
    if _is_client(response):
        client: Any = response
        cfg = _config(_app_of(client, app), scope_key)
        if cfg.options.uses_store:
            return _run(client, lambda: aread_session(client, cfg, metadata=metadata))
        value = _jar_value(client, cfg)
        return None if value is None else _strip(_decode(cfg, value), metadata)
    if app is None:
        raise TypeError("read_session(response, app): pass the app (or its middleware)")
    cfg = _config(app, scope_key)
    if cfg.options.uses_store:
        raise TypeError("the middleware uses a store: use `await aread_session(...)`")
    value = _verified_value(cast(_Response, response), cfg)
    if value is None:
        return None
    return _strip(_decode(cfg, value), metadata)


def response_session_id(
    response: _Response, app: object, *, scope_key: str = "session"
) -> str | None:
    """The store id a response put in the session cookie (store mode), signature checked."""
    cfg = _config(app, scope_key)
    if not cfg.options.uses_store:
        raise TypeError("response_session_id() is for store mode; use read_session()")
    return _verified_value(response, cfg)


async def aread_session(
    response: _Response | _Client,
    app: object = None,
    *,
    metadata: bool = False,
    scope_key: str = "session",
) -> dict[str, Any] | None:
    """Like :func:`read_session`, in both modes: in store mode the data is read from the store
    under the id the response's cookie (or the client's) carries (``None`` if the store has
    nothing)."""
    is_client = _is_client(response)
    if is_client:
        app = _app_of(response, app)
    elif app is None:
        raise TypeError("aread_session(response, app): pass the app (or its middleware)")
    cfg = _config(app, scope_key)
    if not cfg.options.uses_store:
        if is_client:
            value = _jar_value(response, cfg)
            return None if value is None else _strip(_decode(cfg, value), metadata)
        return read_session(response, cfg, metadata=metadata, scope_key=scope_key)
    if is_client:
        key = _jar_value(response, cfg)
    else:
        key = _verified_value(cast(_Response, response), cfg)
    if key is None:
        return None
    rs = _request_session(cfg, None)
    opts = cfg.options
    assert rs.store is not None  # store mode
    result = rs.store.get(key, opts.max_age, rolling=opts.rolling, ctx=rs.ctx)
    stored = await result if inspect.isawaitable(result) else result
    if stored is None:
        return None
    if not isinstance(stored, dict):
        raise InvalidSessionCookie(f"the store holds a {type(stored).__name__} under {key!r}")
    return _strip(stored, metadata)


def session_removed(response: _Response, app: object, *, scope_key: str = "session") -> bool:
    """True when the response expired the session cookie (``destroy()``, ``scope[...] = None``)."""
    cfg = _config(app, scope_key)
    jar = _set_cookies(response)
    entry = jar.get(cfg.options.key)
    return entry is not None and _is_removal(*entry)


# -- logged-in clients -------------------------------------------------------------------------

_T = TypeVar("_T")


def _is_client(obj: object) -> bool:
    return hasattr(obj, "base_url") and hasattr(obj, "cookies")


def _app_of(client: object, app: object) -> object:
    """The app a test client calls: ``app`` if given, else Starlette's ``client.app`` or the
    ``app`` of httpx's ``ASGITransport``."""
    if app is not None:
        return app
    found = getattr(client, "app", None) or getattr(
        getattr(client, "_transport", None), "app", None
    )
    if found is None:
        raise TypeError(
            f"cannot tell which app {type(client).__name__} calls; pass middleware=app (the "
            "SessionMiddleware or an app it sits in)"
        )
    return found


def _jar_value(client: Any, cfg: SessionConfig) -> str | None:
    """The session cookie the client holds, signature checked; ``None`` when it holds none."""
    name = cfg.options.key
    jar: dict[str, str] = {}
    for cookie in client.cookies.jar:
        if cookie.name in (name, name + ".sig") and cookie.value is not None:
            jar[cookie.name] = cookie.value
    value = jar.get(name)
    if not value:
        return None
    if cfg.signer is not None:
        checked, _, problem = cookieformat.read_signed(jar, name, cfg.signer)
        if problem is not None or checked is None:
            raise InvalidSessionCookie(f"the client's {name!r} cookie is not validly signed")
    return value


def _run(client: object, make: Callable[[], Awaitable[_T]]) -> _T:
    """Run store I/O from a synchronous helper: in the ``TestClient``'s event loop when it is
    running (``with TestClient(app) as client``), else in a fresh one."""

    async def call() -> _T:
        return await make()

    portal = getattr(client, "portal", None)
    if portal is not None:
        result: _T = portal.call(call)
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(call())
    raise TypeError(
        "the middleware uses a store and an event loop is running: use the async variant "
        "(`await alogin(...)`, `await aread_session(...)`)"
    )


def login(
    client: _Client,
    data: Mapping[str, Any],
    *,
    middleware: object = None,
    max_age: MaxAge | float | None = None,
    scope_key: str = "session",
) -> dict[str, str]:
    """Make the client logged in as ``data``, in one call (Django's ``force_login``).

    Cookie mode: the signed (or encrypted) session cookie goes into the client's jar. Store
    mode: ``data`` is saved in the store under a new id and the signed id cookie goes into
    the jar; from inside a running event loop use ``await alogin(...)``. ``middleware`` is the
    :class:`~koasession.SessionMiddleware` or an app it sits in; it may be left out when the
    client knows its app (Starlette's ``TestClient``, httpx's ``ASGITransport``). Replaces any
    session the client held; returns the cookies set.
    """
    app = _app_of(client, middleware)
    cfg = _config(app, scope_key)
    if cfg.options.uses_store:
        return _run(client, lambda: alogin(client, data, middleware=cfg, max_age=max_age))
    return set_session(client, cfg, data, max_age=max_age, scope_key=scope_key)


async def alogin(
    client: _Client,
    data: Mapping[str, Any],
    *,
    middleware: object = None,
    max_age: MaxAge | float | None = None,
    scope_key: str = "session",
) -> dict[str, str]:
    """:func:`login` for async tests, in both modes."""
    app = _app_of(client, middleware)
    return await aset_session(client, app, data, max_age=max_age, scope_key=scope_key)


#: Django's name for :func:`login`.
force_session = login
#: Django's name for :func:`alogin`.
aforce_session = alogin
