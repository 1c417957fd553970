"""Session options: their defaults, normalisation and start-up validation.

Every rule here runs once, when the middleware is built, and a broken configuration fails with a
:class:`~koasession.errors.ConfigurationError` naming the option and the fix. A request gets its
own copy only when it changes something (``session.max_age = ...`` or ``session.options``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import urllib.parse
from collections.abc import Callable, MutableMapping, Sequence
from datetime import timedelta
from typing import Any, Literal, TypedDict, cast

from . import keystrength
from .cookies import is_token
from .cookiesize import check_compression
from .devices import DevicePolicy
from .errors import ConfigurationError, check_flag
from .fallbacks import FallbackReader
from .ids import prefix_problem
from .protocols import (
    BeforeSaveHook,
    ContextStoreFactory,
    Decoder,
    Encoder,
    EventListener,
    ExternalKey,
    GenId,
    MaxAge,
    Store,
    ValidHook,
)
from .serializers import Serializer
from .signing import ALGORITHMS

__all__ = [
    "MAX_AGE_CAP",
    "MIN_KEY_BYTES",
    "EventListener",
    "MaxAge",
    "SessionOptions",
    "SessionOptionsDict",
    "normalize_max_age",
    "validate",
    "validate_keys",
]

SameSite = Literal["lax", "strict", "none"]
Priority = Literal["low", "medium", "high"]
OnOversize = Literal["raise", "warn"]
OnStoreError = Literal["raise", "new_session"]

#: The longest lifetime browsers honour (RFC 6265bis caps cookies at 400 days).
MAX_AGE_CAP = 400 * 86400
#: Keys shorter than this many bytes are refused unless ``allow_weak_keys`` is set.
MIN_KEY_BYTES = 32
_PLACEHOLDER_KEYS = frozenset(
    {"secret", "your secret key", "changeme", "change me", "keyboard cat", "secret key", "key"}
)
_KEYGEN_HINT = (
    "`koasession keygen` (or python -c 'import secrets; print(secrets.token_urlsafe(32))')"
)
_WEAK_HINT = "; allow_weak_keys=True is only for tests and keys shared with a Koa app"
_FORBIDDEN_ATTR_CHARS = frozenset(";,\r\n\x00")
# RFC 6265 domain-value (a host name, optional leading dot), as Node's cookies module checks it.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_VALUE = re.compile(rf"\.?{_LABEL}(?:\.{_LABEL})*")
# RFC 6265 path-value without spaces or ',' (visible ASCII but ';' and ','), kept by quote().
_PATH_VALUE = re.compile(r"[\x21-\x2B\x2D-\x3A\x3C-\x7E]+")
_PATH_SAFE = "/:@!$&'()*+=~-._%"
_SAME_SITE = ("lax", "strict", "none")
_PRIORITY = ("low", "medium", "high")


@dataclasses.dataclass(eq=False)
class SessionOptions:
    """All options of :class:`~koasession.SessionMiddleware` except the keys.

    The one declaration of the option names and defaults; :class:`SessionOptionsDict` types the
    same names as keyword input (a test keeps the two in step). Durations are seconds. See the
    README's option table for the meaning of each.
    """

    key: str = "koa.sess"
    max_age: MaxAge = 86400.0
    auto_commit: bool = True
    overwrite: bool = True
    http_only: bool = True
    signed: bool = True
    rolling: bool = False
    renew: bool = False
    secure: bool | None = None
    same_site: SameSite | None = "lax"
    partitioned: bool = False
    priority: Priority | None = None
    domain: str | None = None
    path: str = "/"
    algorithm: str | Sequence[str] = "sha256"
    encode: Encoder | None = None
    decode: Decoder | None = None
    store: Store | None = None
    context_store: ContextStoreFactory | None = None
    external_key: ExternalKey | None = None
    prefix: str | None = None
    genid: GenId | None = None
    valid: ValidHook | None = None
    before_save: BeforeSaveHook | None = None
    on_event: EventListener | None = None
    proxy: bool = False
    scope_key: str = "session"
    encrypt: bool = False
    on_oversize: OnOversize = "raise"
    idle_timeout: float | None = None
    absolute_timeout: float | None = None
    on_store_error: OnStoreError = "raise"
    store_timeout: float | None = 5.0
    session_store_ttl: float = 86400.0
    allow_weak_keys: bool = False
    fallback: Sequence[FallbackReader] = ()
    compress: bool = False
    chunk: bool = False
    serializer: Serializer | None = None
    #: Write ``_created`` on every new session (``session.created_at``); False keeps cookies and
    #: store entries byte-identical to koa-session's (``absolute_timeout`` records it anyway).
    record_created: bool = True
    #: Record device facts (:mod:`koasession.devices`) for sessions with an owner, in store mode
    #: with a store ``owner`` function; ``None`` records nothing.
    device_policy: DevicePolicy | None = None
    merge: bool = False
    lazy: bool = False
    exclude: Sequence[str] | Callable[[MutableMapping[str, Any]], object] | None = None

    def copy(self) -> SessionOptions:
        """A shallow copy, for one request's private changes."""
        return dataclasses.replace(self)

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The signing algorithms, first one signing."""
        return (self.algorithm,) if isinstance(self.algorithm, str) else tuple(self.algorithm)

    @property
    def uses_store(self) -> bool:
        """True in store mode (a store or a context store is configured)."""
        return self.store is not None or self.context_store is not None


class SessionOptionsDict(TypedDict, total=False):
    """The options as keyword arguments: ``SessionMiddleware(app, keys, **options)``.

    Same names as :class:`SessionOptions`; the types are what callers may pass, which is wider
    than what is stored where the middleware normalises (durations also take a ``timedelta``).
    Used as ``**options: Unpack[SessionOptionsDict]`` so type checkers reject unknown names
    and wrong values.
    """

    key: str
    max_age: float | timedelta | Literal["session"]
    auto_commit: bool
    overwrite: bool
    http_only: bool
    signed: bool
    rolling: bool
    renew: bool
    secure: bool | None
    same_site: SameSite | None
    partitioned: bool
    priority: Priority | None
    domain: str | None
    path: str
    algorithm: str | Sequence[str]
    encode: Encoder | None
    decode: Decoder | None
    store: Store | None
    context_store: ContextStoreFactory | None
    external_key: ExternalKey | None
    prefix: str | None
    genid: GenId | None
    valid: ValidHook | None
    before_save: BeforeSaveHook | None
    on_event: EventListener | None
    proxy: bool
    scope_key: str
    encrypt: bool
    on_oversize: OnOversize
    idle_timeout: float | timedelta | None
    absolute_timeout: float | timedelta | None
    on_store_error: OnStoreError
    store_timeout: float | timedelta | None
    session_store_ttl: float | timedelta
    allow_weak_keys: bool
    fallback: Sequence[FallbackReader]
    compress: bool
    chunk: bool
    serializer: Serializer | None
    record_created: bool
    device_policy: DevicePolicy | None
    merge: bool
    lazy: bool
    exclude: Sequence[str] | Callable[[MutableMapping[str, Any]], object] | None


_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(SessionOptions))


def build_options(options: dict[str, object]) -> SessionOptions:
    """Make :class:`SessionOptions` from keyword options; an unknown name is a ``TypeError``.

    The error names the option, and the Python spelling when it is a koa-style (camelCase) name.
    Values are not checked here: see :func:`validate`.
    """
    unknown = [name for name in options if name not in _OPTION_NAMES]
    if unknown:
        name = unknown[0]
        snake = re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
        hint = f" (did you mean {snake!r}?)" if snake in _OPTION_NAMES else ""
        raise TypeError(f"SessionMiddleware got an unexpected option {name!r}{hint}")
    return SessionOptions(**options)  # type: ignore[arg-type]


def normalize_max_age(value: object, name: str = "max_age") -> MaxAge:
    """Turn seconds, a timedelta or ``"session"`` into float seconds or ``"session"``."""
    if value == "session":
        return "session"
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{name} must be a number of seconds, a datetime.timedelta or 'session'; got {value!r}"
        )
    if not value > 0:
        raise ConfigurationError(f"{name} must be positive; got {value!r}")
    if value < 1:
        # Max-Age is whole seconds: a lifetime under one is written as Max-Age=0, which tells
        # the browser to drop the cookie at once, so no session would ever come back.
        raise ConfigurationError(
            f"{name}={value!r} is under 1 second: it is in seconds, and Set-Cookie's Max-Age "
            "is whole seconds, so the cookie would expire at once; use 1 or more"
        )
    if value > MAX_AGE_CAP:
        hint = (
            f" ({value!r} looks like milliseconds: koasession takes seconds, "
            f"so koa's maxAge {int(value)} is max_age={value / 1000:g})"
            if 1000 * 60 <= value < float("inf")
            else ""
        )
        raise ConfigurationError(
            f"{name} is over the 400-day cap browsers apply ({MAX_AGE_CAP} s){hint}"
        )
    return float(value)


def _check_attr(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string; got {value!r}")
    bad = _FORBIDDEN_ATTR_CHARS.intersection(value)
    if bad:
        raise ConfigurationError(
            f"{name}={value!r} contains {''.join(sorted(bad))!r}, which would inject cookie "
            "attributes"
        )


def _check_path(path: str) -> None:
    # Headers are Latin-1 on the wire and a browser compares the path it sends, which is
    # percent-encoded: a raw non-ASCII path fails every response and would never match anyway.
    if "?" in path or "#" in path:
        # The path a browser compares is the request path without its query or fragment: a
        # cookie whose Path has either would never be sent back.
        raise ConfigurationError(
            f"path={path!r} has a query or fragment, which a request path never has, so the "
            f"cookie would never come back; use the path alone: "
            f"path={path.split('?')[0].split('#')[0] or '/'!r}"
        )
    if _PATH_VALUE.fullmatch(path) is None:
        raise ConfigurationError(
            f"path={path!r} cannot appear in a Set-Cookie line (visible ASCII only, no ';' or "
            "','); use the percent-encoded path browsers send: "
            f"path={urllib.parse.quote(path, safe=_PATH_SAFE)!r} (urllib.parse.quote(path))"
        )


def _check_domain(domain: str) -> None:
    if _DOMAIN_VALUE.fullmatch(domain) is not None:
        return
    try:
        ascii_form = domain.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_form = None
    if ascii_form is not None and ascii_form != domain and _DOMAIN_VALUE.fullmatch(ascii_form):
        raise ConfigurationError(
            f"domain={domain!r} is not ASCII, which a Set-Cookie line cannot carry; use its "
            f"IDNA (punycode) form: domain={ascii_form!r} ({domain!r}.encode('idna'))"
        )
    raise ConfigurationError(
        f"domain={domain!r} is not a host name: use letters, digits, '-' and '.' "
        "(e.g. domain='example.com'), IDNA (punycode) for international names"
    )


def is_async_callable(fn: object) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


def _check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name} must be callable; got {value!r}")


#: How the engine calls each hook: a function that cannot take these arguments (koa's
#: ``genid: () => uuid()`` ported as ``genid=lambda: ...``) would fail at every request.
_HOOK_CALLS = {
    "genid": ("ctx",),
    "valid": ("ctx", "data"),
    "before_save": ("ctx", "session"),
    "on_event": ("name", "payload"),
    "encode": ("data",),
    "decode": ("value",),
}


def _check_arity(name: str, fn: object, params: Sequence[str]) -> None:
    try:
        signature = inspect.signature(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return  # no signature to read (some builtins): nothing to check
    try:
        signature.bind(*params)
    except TypeError:
        label = getattr(fn, "__name__", type(fn).__name__)
        call = f"{name}({', '.join(params)})"
        raise ConfigurationError(
            f"{name} is called as {call}, which {label}{signature} cannot take; "
            f"define it as def {call}: ... (or lambda {', '.join(params)}: ...)"
        ) from None


def _check_methods(
    name: str, obj: object, methods: Sequence[str], *, instance: bool = True
) -> None:
    if instance and inspect.isclass(obj):
        # A class has its methods too (unbound): the calls would fail at each request instead.
        raise ConfigurationError(
            f"{name} must be an object, not the class {obj.__name__}: {name}={obj.__name__}(...)"
        )
    for method in methods:
        if not callable(getattr(obj, method, None)):
            raise ConfigurationError(f"{name} must have a callable {method}(); {obj!r} has none")


#: The options that are on or off.
_FLAGS = (
    "auto_commit",
    "overwrite",
    "http_only",
    "signed",
    "rolling",
    "renew",
    "partitioned",
    "proxy",
    "encrypt",
    "allow_weak_keys",
    "compress",
    "chunk",
    "record_created",
    "merge",
    "lazy",
)


def _check_store(store: object) -> None:
    # A class has its methods too (unbound): the calls would fail at each request instead.
    if inspect.isclass(store):
        raise ConfigurationError(
            f"store must be a store object, not the class {store.__name__}: "
            f"store={store.__name__}(...) (context_store= is the option that takes a class)"
        )
    if isinstance(store, str):
        raise ConfigurationError(
            f"store must be a store object, not a URL: "
            f"store=store_from_url({store!r}) (from koasession.stores)"
        )
    driver = type(store).__module__.partition(".")[0]
    if driver in _DRIVER_STORES:
        raise ConfigurationError(
            f"store must be a koasession store, not a {driver} {type(store).__name__}: "
            f"store={_DRIVER_STORES[driver]} (from koasession.stores)"
        )
    _check_methods("store", store, ("get", "set", "destroy"))


#: A driver's client passed as the store (its get/set are not a session store's): the store
#: that takes it.
_DRIVER_STORES = {
    "redis": "RedisStore(client)",
    "asyncpg": "PostgresStore(pool)",
    "aiosqlite": "SQLiteStore(connection)",
    "asyncmy": "MySQLStore('mysql://...')",
}


def _check_positive(name: str, value: object, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds; got {value!r}")


def _check_exclude(exclude: object) -> None:
    if callable(exclude):
        _check_arity("exclude", exclude, ("scope",))
        return
    if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Sequence):
        raise ConfigurationError(
            "exclude must be a list of path prefixes (exclude=['/static/', '/health']) or a "
            f"function of the ASGI scope returning True to skip the session; got {exclude!r}"
        )
    for prefix in exclude:
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ConfigurationError(
                f"exclude: every path prefix must be a str starting with '/'; got {prefix!r}"
            )


def _check_merge(opts: SessionOptions) -> None:
    if not opts.uses_store:
        raise ConfigurationError(
            "merge=True merges into a stored value, so it needs store mode (store= or "
            "context_store=); a cookie holds one client's whole session"
        )
    if opts.store is not None and not callable(getattr(opts.store, "merge", None)):
        raise ConfigurationError(
            f"merge=True needs a store with a merge() method (MergeableStore); {opts.store!r} "
            "has none: every bundled store has it, or leave merge off (last writer wins)"
        )


def validate(opts: SessionOptions) -> SessionOptions:
    """Normalise ``opts`` in place and check every rule; return it."""
    if not isinstance(opts.key, str) or not is_token(opts.key):
        raise ConfigurationError(
            f"key={opts.key!r} is not a valid cookie name (RFC 6265 token: visible ASCII "
            'without spaces or any of ()<>@,;:\\"/[]?={})'
        )
    opts.max_age = normalize_max_age(opts.max_age)
    check_flag("record_created", opts.record_created)
    if opts.device_policy is not None:
        if not isinstance(opts.device_policy, DevicePolicy):
            raise ConfigurationError(
                f"device_policy must be a koasession.devices.DevicePolicy or None; got "
                f"{opts.device_policy!r}"
            )
        if not opts.uses_store or (
            opts.store is not None and getattr(opts.store, "owner", None) is None
        ):
            raise ConfigurationError(
                "device_policy records devices per owner: it needs store=... created with "
                "owner=<function of the session data>"
            )
    for name in ("idle_timeout", "absolute_timeout", "store_timeout"):
        value = getattr(opts, name)
        if isinstance(value, timedelta):
            value = value.total_seconds()
            setattr(opts, name, value)
        _check_positive(name, value)
    if isinstance(opts.session_store_ttl, timedelta):
        opts.session_store_ttl = opts.session_store_ttl.total_seconds()
    _check_positive("session_store_ttl", opts.session_store_ttl, optional=False)
    if opts.session_store_ttl > MAX_AGE_CAP:
        # Past it the stores fail at each save (Redis: "not an integer or out of range",
        # PostgreSQL: "interval out of range"); no cookie lives longer anyway.
        raise ConfigurationError(
            f"session_store_ttl is over the 400-day cap max_age has too ({MAX_AGE_CAP} s); "
            f"got {opts.session_store_ttl!r}"
        )
    if opts.merge:
        _check_merge(opts)
    if opts.exclude is not None:
        _check_exclude(opts.exclude)

    _validate_attributes(opts)
    _validate_secure(opts)
    _validate_plugins(opts)
    return opts


def _validate_attributes(opts: SessionOptions) -> None:
    """The cookie attributes: path, domain, prefix, SameSite, priority."""
    for name in ("path", "domain", "prefix", "priority", "same_site"):
        _check_attr(name, getattr(opts, name))
    if opts.prefix:
        problem = prefix_problem(opts.prefix)
        if problem:
            raise ConfigurationError(
                f"prefix={opts.prefix!r} {problem}; use letters, digits and separators such as "
                "':' '.' '-' '_' '@' (e.g. prefix='sess:')"
            )
    if not opts.path or not opts.path.startswith("/"):
        raise ConfigurationError(f"path must start with '/'; got {opts.path!r}")
    _check_path(opts.path)
    if opts.domain is not None:
        _check_domain(opts.domain)
    if opts.same_site is not None:
        opts.same_site = cast("SameSite", opts.same_site.lower())
        if opts.same_site not in _SAME_SITE:
            raise ConfigurationError(
                f"same_site must be 'lax', 'strict', 'none' or None; got {opts.same_site!r}"
            )
    if opts.priority is not None:
        opts.priority = cast("Priority", opts.priority.lower())
        if opts.priority not in _PRIORITY:
            raise ConfigurationError(
                f"priority must be 'low', 'medium', 'high' or None; got {opts.priority!r}"
            )
    if opts.secure is not None and type(opts.secure) is not bool:
        raise ConfigurationError(f"secure must be True, False or None; got {opts.secure!r}")
    for name in _FLAGS:
        check_flag(name, getattr(opts, name))


def _validate_secure(opts: SessionOptions) -> None:
    """``secure`` and the settings that need it (browsers reject them otherwise)."""
    needs_secure = []
    if opts.same_site == "none":
        needs_secure.append("same_site='none'")
    if opts.partitioned:
        needs_secure.append("partitioned=True")
    # RFC 6265bis matches the prefixes case-insensitively, and current browsers follow it:
    # "__host-sess" without Secure, or with a Path, is refused as "__Host-sess" is.
    name = opts.key.lower()
    if name.startswith("__secure-"):
        needs_secure.append("a __Secure- cookie name")
    if name.startswith("__host-"):
        needs_secure.append("a __Host- cookie name")
        if opts.domain is not None or opts.path != "/":
            raise ConfigurationError("a __Host- cookie name requires domain=None and path='/'")
    if needs_secure and opts.secure is not True:
        raise ConfigurationError(
            f"{' and '.join(needs_secure)} requires secure=True (browsers reject it otherwise)"
        )


def _validate_plugins(opts: SessionOptions) -> None:
    """Algorithms, callables, stores and the policy switches."""
    # A list or tuple, in order (the first signs): a set has no order, None is no algorithm.
    ordered = isinstance(opts.algorithm, (list, tuple))
    algorithms = opts.algorithms if ordered or isinstance(opts.algorithm, str) else ()
    if not algorithms or any(a not in ALGORITHMS for a in algorithms):
        raise ConfigurationError(
            f"algorithm must be one of {', '.join(ALGORITHMS)} or a list of them; "
            f"got {opts.algorithm!r}"
        )

    for name, params in _HOOK_CALLS.items():
        hook = getattr(opts, name)
        _check_callable(name, hook)
        if hook is not None:
            _check_arity(name, hook, params)
    for name in ("encode", "decode"):
        hook = getattr(opts, name)
        if is_async_callable(hook):
            raise ConfigurationError(
                f"{name} must be a plain function: it runs while the cookie is read or written, "
                f"where nothing is awaited; {hook!r} is async"
            )
    if opts.store is not None:
        _check_store(opts.store)
    if opts.context_store is not None:
        if not inspect.isclass(opts.context_store):
            raise ConfigurationError("context_store must be a class, built per request as cls(ctx)")
        _check_methods(
            "context_store", opts.context_store, ("get", "set", "destroy"), instance=False
        )
    if opts.external_key is not None:
        _check_methods("external_key", opts.external_key, ("get", "set"))
        _check_arity("external_key.get", opts.external_key.get, ("ctx",))
        _check_arity("external_key.set", opts.external_key.set, ("ctx", "key"))

    if opts.on_oversize not in ("raise", "warn"):
        raise ConfigurationError(f"on_oversize must be 'raise' or 'warn'; got {opts.on_oversize!r}")
    if opts.on_store_error not in ("raise", "new_session"):
        raise ConfigurationError(
            f"on_store_error must be 'raise' or 'new_session'; got {opts.on_store_error!r}"
        )
    if not isinstance(opts.scope_key, str) or not opts.scope_key:
        raise ConfigurationError(f"scope_key must be a non-empty string; got {opts.scope_key!r}")
    _check_formats(opts)


def _check_formats(opts: SessionOptions) -> None:
    """Encryption, cookie size relief, the serializer and the migration readers."""
    if opts.encrypt:
        if opts.encode is not None or opts.decode is not None:
            raise ConfigurationError("encrypt=True cannot be combined with custom encode/decode")
        if opts.store is not None and getattr(opts.store, "owner", None) is not None:
            raise ConfigurationError(
                "encrypt=True in store mode seals the stored data, so the store's owner "
                "function cannot read it: drop owner= from the store, or encrypt=True"
            )
    _check_size_relief(opts)
    if opts.serializer is not None:
        _check_methods("serializer", opts.serializer, ("to_json_safe", "from_json_safe"))
    fallback = opts.fallback
    if fallback is None or isinstance(fallback, (str, bytes)) or callable(fallback):
        raise ConfigurationError(
            f"fallback must be a list of readers, e.g. fallback=[StarletteReader(...)]; "
            f"got {fallback!r}"
        )
    opts.fallback = tuple(fallback)
    for index, reader in enumerate(opts.fallback):
        if inspect.isclass(reader):
            raise ConfigurationError(
                f"fallback[{index}] must be a reader, not the class {reader.__name__}: "
                f"fallback=[{reader.__name__}(...)]"
            )
        if not callable(reader):
            raise ConfigurationError(
                f"fallback[{index}] must be a reader called with the cookies; got {reader!r}"
            )


def _check_size_relief(opts: SessionOptions) -> None:
    for name in ("compress", "chunk"):
        if not getattr(opts, name):
            continue
        if opts.uses_store:
            raise ConfigurationError(
                f"{name}=True is for cookie mode; in store mode the cookie holds only an id"
            )
        if opts.encode is not None or opts.decode is not None:
            raise ConfigurationError(f"{name}=True cannot be combined with custom encode/decode")
    check_compression(compress=opts.compress, encrypt=opts.encrypt)
    if opts.chunk and (opts.encrypt or not opts.signed):
        raise ConfigurationError(
            "chunk=True needs signed cookies (one signature covers every chunk): "
            "it cannot be combined with encrypt=True or signed=False"
        )


def validate_keys(keys: object, *, required: bool, allow_weak: bool) -> list[str | bytes]:
    """Check the app keys; return them as a list."""
    if keys is None:
        keys = []
    key_list = keystrength.check_keys(keys, required=False)
    if required and not key_list:
        raise ConfigurationError(
            "keys are required for signed cookies (koa: '.keys required for signed cookies'); "
            "pass keys=[...] with a random secret of 32 bytes or more, made with "
            f"{_KEYGEN_HINT} (keys_from_env() gives none when KOASESSION_KEY is not set)"
        )
    for index, key in enumerate(key_list):
        raw = key.encode() if isinstance(key, str) else key
        if allow_weak:
            continue
        text = key if isinstance(key, str) else key.decode("latin-1")
        if text.strip().lower() in _PLACEHOLDER_KEYS or keystrength.is_published(text):
            raise ConfigurationError(
                f"keys[{index}] is a well-known placeholder or a key printed in documentation, "
                f"so anyone can forge sessions with it; generate a random key with {_KEYGEN_HINT}"
            )
        if len(raw) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"keys[{index}] is {len(raw)} bytes; use at least {MIN_KEY_BYTES} random bytes "
                f"from {_KEYGEN_HINT}{_WEAK_HINT}"
            )
        bits, why = keystrength.estimate_bits(text)
        if bits < keystrength.MIN_KEY_BITS:
            raise ConfigurationError(
                f"keys[{index}] looks guessable ({why or 'little variety'}: about {bits:.0f} bits "
                f"estimated, {keystrength.MIN_KEY_BITS} needed); use a random key from "
                f"{_KEYGEN_HINT}{_WEAK_HINT}"
            )
    return key_list
