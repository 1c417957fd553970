"""``SessionConfig``: everything a middleware computes once from its options and keys."""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from . import atrest, events
from .errors import ConfigurationError
from .ids import make_genid
from .options import (
    SessionOptions,
    SessionOptionsDict,
    build_options,
    is_async_callable,
    validate,
    validate_keys,
)
from .plaincookie import PlainCookie
from .protocols import GenId, Store
from .released import ReleasedEngine
from .signing import Signer

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .crypto import CookieCipher


def _binds(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def check_wrapped_app(app: object, *, wsgi: bool) -> None:
    """Refuse, when the middleware is made, an app it could not call: not callable (keys given
    as the first argument), or an app of the other protocol. The type is named, never the
    value, which may be a key."""
    kind = "a WSGI" if wsgi else "an ASGI"
    if not callable(app):
        raise TypeError(
            f"SessionMiddleware wraps {kind} app, its first argument; got a "
            f"{type(app).__name__} (the keys go in keys=[...])"
        )
    if is_async_callable(app):
        if wsgi:
            raise TypeError(
                "SessionMiddleware of koasession.wsgi wraps a WSGI app, and this one is async "
                "(ASGI): use koasession.SessionMiddleware"
            )
        return
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return
    if not wsgi and not _binds(signature, 3) and _binds(signature, 2):
        raise TypeError(
            "SessionMiddleware wraps an ASGI app (scope, receive, send), and this one takes "
            "(environ, start_response), a WSGI app: use koasession.wsgi.SessionMiddleware "
            "(koasession.flask.init_app for Flask)"
        )


def _exclusion(
    exclude: Sequence[str] | Callable[[MutableMapping[str, Any]], object] | None,
) -> Callable[[MutableMapping[str, Any]], object] | None:
    if exclude is None or callable(exclude):
        return exclude
    prefixes = tuple(exclude)
    if not prefixes:
        return None

    def excluded(scope: MutableMapping[str, Any]) -> bool:
        path: str = scope.get("path", "")
        return path.startswith(prefixes)

    return excluded


def check_second_middleware(installed: SessionOptions, new: SessionOptions, how: str) -> None:
    """Refuse a second session middleware on one app that would share the first's scope slot
    or cookie: every request would fail (the outer finds the inner's session in its slot), or
    the two would overwrite each other's cookie. ``how`` names the call, for the message."""
    if installed.scope_key == new.scope_key:
        clash = f"scope_key={new.scope_key!r}"
    elif (installed.key, installed.path, installed.domain) == (new.key, new.path, new.domain):
        clash = f"the cookie key={new.key!r}"
    else:
        return
    raise ConfigurationError(
        f"{how} was already called for this app with {clash}: a second session middleware "
        "needs a scope_key= and a key= (cookie name) of its own, e.g. "
        "key='prefs', scope_key='prefs'; call it once for one session"
    )


class SessionConfig:
    """Validated options plus the signer, cipher and id generator built from them."""

    __slots__ = (
        "_context_stores",
        "cipher",
        "eager",
        "excluded",
        "genid",
        "keys",
        "notices",
        "options",
        "plain_cookie",
        "record_created",
        "released",
        "signer",
        "store_cipher",
        "store_timeout",
    )

    def __init__(self, options: SessionOptions, keys: list[str | bytes]) -> None:
        self.options = options
        #: The stand-in engine shared by every ended request that neither had an id nor changed
        #: its options (see :mod:`koasession.released`): made here once, so that ending a
        #: request is one attribute read.
        self.released = ReleasedEngine(None, options)
        self.keys = keys
        self.signer = (
            Signer(keys, options.algorithms)
            if options.signed and keys and not (options.encrypt and not options.uses_store)
            else None
        )
        self.cipher: CookieCipher | None = None
        #: Seals stored values in store mode with ``encrypt=True`` (see :mod:`atrest`).
        self.store_cipher: CookieCipher | None = None
        if options.encrypt:
            if options.uses_store:
                self.store_cipher = atrest.make_cipher(keys)
            else:
                from .crypto import CookieCipher

                self.cipher = CookieCipher(keys, cookie_name=options.key)
        #: The default configuration's fast lane for its cookie (see :mod:`koasession.plaincookie`).
        self.plain_cookie = PlainCookie.for_options(options, self.signer, self.cipher)
        self.genid: GenId = options.genid or make_genid(options.prefix)
        #: Whether new sessions carry ``_created`` (``session.created_at``) without
        #: ``absolute_timeout``. koa keeps it on ``ctx.session`` (out of ``toJSON()``) and drops
        #: it on its next save, so it is harmless to a Koa app, but not byte-identical.
        self.record_created = options.record_created is True
        # asyncio.wait_for costs more than a whole in-process store call, and such a store
        # cannot hang on a network: it declares ``in_process = True`` to skip the timeout.
        in_process = getattr(options.store, "in_process", False) is True
        self.store_timeout = None if in_process else options.store_timeout
        # Cookie mode stays lazy unless a hook needs awaiting before the handler reads data;
        # store mode loads before the handler unless lazy=True (then on `await session.load()`).
        self.eager = (options.uses_store and not options.lazy) or is_async_callable(options.valid)
        #: ``exclude`` as a test of the ASGI scope: True skips the session for that request.
        self.excluded = _exclusion(options.exclude)
        #: What this middleware has explained once in the log (event name and reason).
        self.notices: set[tuple[str, Any]] = set()
        # context_store instances that can be closed, held weakly: closed at lifespan shutdown
        # if they outlive their request.
        self._context_stores: weakref.WeakSet[Store] = weakref.WeakSet()

    def track_context_store(self, instance: Store) -> None:
        """Remember a ``context_store`` instance with a ``close()`` so shutdown can close it."""
        if callable(getattr(instance, "close", None)):
            # An instance that cannot be weakly referenced (__slots__ without __weakref__)
            # is not tracked rather than kept alive past its request.
            with contextlib.suppress(TypeError):
                self._context_stores.add(instance)

    def context_store_instances(self) -> list[Store]:
        """The closeable ``context_store`` instances made so far that are still alive."""
        return list(self._context_stores)

    def offer_store_timeout(self, store: object = None) -> None:
        """Tell ``store`` (default: the ``store`` option) ``store_timeout`` if it wants to bound
        its own driver timeouts by it (the optional ``use_store_timeout`` of
        :mod:`koasession.stores.base`); the engine offers it to each ``context_store`` too."""
        hook = getattr(self.options.store if store is None else store, "use_store_timeout", None)
        if self.store_timeout and callable(hook):
            hook(self.store_timeout)

    async def close_stores(self) -> None:
        """Close ``store`` and the live ``context_store`` instances, where they have a
        ``close()`` (sync or async); an adapter calls it at shutdown.

        A failure to close one store is logged and does not stop the others.
        """
        for store in [self.options.store, *self.context_store_instances()]:
            close = getattr(store, "close", None)
            if store is None or not callable(close):
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                events.logger.exception("closing the session store %r failed", store)

    @classmethod
    def build(cls, keys: object = None, **kwargs: Unpack[SessionOptionsDict]) -> SessionConfig:
        """Validate ``kwargs`` as :class:`SessionOptions` and ``keys``; raise on any problem.

        A misspelt option is a ``TypeError`` naming it; a bad value a ``ConfigurationError``.
        """
        options = validate(build_options(dict(kwargs)))
        key_list = validate_keys(
            keys,
            required=options.signed or options.encrypt,
            allow_weak=options.allow_weak_keys,
        )
        if options.encrypt and not key_list:
            raise ConfigurationError("encrypt=True needs keys=[...]")
        return cls(options, key_list)
