"""Take a koa-session options object as it is: camelCase keys, ``maxAge`` in milliseconds.

::

    from koasession.koa import koa_middleware

    # the object passed to koa-session's session(CONFIG, app), unchanged
    CONFIG = {"key": "koa.sess", "maxAge": 86400000, "httpOnly": True, "sameSite": "strict"}
    app = koa_middleware(asgi_app, keys=[...], koa_options=CONFIG)

:func:`from_koa_options` does the conversion alone and returns keyword options for
:class:`~koasession.SessionMiddleware`. Conversions:

- ``maxAge`` (and koa's deprecated ``maxage``) milliseconds become seconds; ``"session"`` stays.
- ``sameSite``: a string (any case); ``True`` is ``"strict"`` and ``False`` no attribute, as in
  Node's ``cookies``.
- ``None`` (JavaScript's ``undefined``) leaves an option at koasession's default, except
  ``sameSite``, where it means no attribute.
- Hooks (``genid``, ``valid``, ``beforeSave``), ``encode`` / ``decode``, ``store``,
  ``ContextStore`` and ``externalKey`` are passed through; they are Python objects, so they follow
  koasession's conventions: store ``max_age`` / TTL arguments are in seconds.

koasession's defaults differ from koa's where the README's deviations say so (SHA-256
signatures, ``same_site="lax"``): pass ``algorithm="sha1"`` to keep koa-identical cookies and
spell out ``sameSite`` to keep koa's absence of the attribute (``"sameSite": None``).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .asgi import ASGIApp, SessionMiddleware
from .errors import ConfigurationError
from .options import MAX_AGE_CAP, SessionOptions, SessionOptionsDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["KOA_OPTION_NAMES", "from_koa_options", "koa_middleware"]

#: koa-session option name -> koasession keyword.
KOA_OPTION_NAMES: Mapping[str, str] = {
    "key": "key",
    "maxAge": "max_age",
    "maxage": "max_age",
    "autoCommit": "auto_commit",
    "overwrite": "overwrite",
    "httpOnly": "http_only",
    "signed": "signed",
    "rolling": "rolling",
    "renew": "renew",
    "secure": "secure",
    "sameSite": "same_site",
    "partitioned": "partitioned",
    "priority": "priority",
    "domain": "domain",
    "path": "path",
    "encode": "encode",
    "decode": "decode",
    "store": "store",
    "ContextStore": "context_store",
    "externalKey": "external_key",
    "genid": "genid",
    "prefix": "prefix",
    "valid": "valid",
    "beforeSave": "before_save",
}

_OUR_NAMES = frozenset(f.name for f in dataclasses.fields(SessionOptions)) | {"keys"}
_BOOLEANS = frozenset(
    {"autoCommit", "overwrite", "httpOnly", "signed", "rolling", "renew", "partitioned"}
)


def _max_age(value: object) -> float | str:
    if value == "session":
        return "session"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"koa maxAge must be a number of milliseconds or 'session'; got {value!r}"
        )
    if not value > 0:
        raise ConfigurationError(f"koa maxAge must be positive milliseconds; got {value!r}")
    seconds = value / 1000
    if seconds < 1:
        raise ConfigurationError(
            f"koa maxAge {value!r} ms is under 1 second, which a Max-Age in whole seconds "
            "writes as 0 (the cookie expires at once); koa's maxAge is in milliseconds: "
            "maxAge=86400000 is one day"
        )
    if seconds > MAX_AGE_CAP:
        raise ConfigurationError(
            f"koa maxAge {value!r} ms is {seconds / 86400:g} days, over the 400-day cap browsers "
            f"apply (at most {MAX_AGE_CAP * 1000} ms)"
        )
    return float(seconds)


def _same_site(value: object) -> str | None:
    if value is True:
        return "strict"
    if value is False or value is None:
        return None
    if isinstance(value, str):
        return value.lower()
    raise ConfigurationError(
        f"koa sameSite must be 'strict', 'lax', 'none', true or false; got {value!r}"
    )


def _unknown(name: object) -> ConfigurationError:
    if isinstance(name, str) and name in _OUR_NAMES:
        return ConfigurationError(
            f"{name!r} is a koasession keyword, not a koa-session option; pass it to "
            f"koa_middleware(..., {name}=...) (or SessionMiddleware) next to the koa options"
        )
    close = difflib.get_close_matches(str(name), list(KOA_OPTION_NAMES), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigurationError(f"unknown koa-session option {name!r}{hint}")


def from_koa_options(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a koa-session options object into :class:`~koasession.SessionMiddleware` keywords.

    Raises :class:`~koasession.ConfigurationError` for an unknown key (with the nearest koa
    name, or a pointer when it is one of koasession's own keywords), for ``maxAge`` and
    ``maxage`` given together, and for values of the wrong kind. The result is validated again
    when the middleware is built.
    """
    if not isinstance(opts, Mapping):
        raise ConfigurationError(
            f"koa options must be a mapping (koa's options object); got {type(opts).__name__}"
        )
    if "maxAge" in opts and "maxage" in opts:
        raise ConfigurationError("give maxAge or koa's deprecated maxage, not both")
    out: dict[str, Any] = {}
    for name, value in opts.items():
        target = KOA_OPTION_NAMES.get(name) if isinstance(name, str) else None
        if target is None:
            raise _unknown(name)
        if name == "sameSite":
            out[target] = _same_site(value)
            continue
        if value is None:
            continue  # JavaScript's undefined: keep the default
        if name in ("maxAge", "maxage"):
            out[target] = _max_age(value)
        elif name in _BOOLEANS:
            if not isinstance(value, bool):
                raise ConfigurationError(f"koa {name} must be true or false; got {value!r}")
            out[target] = value
        elif name == "secure":
            if not isinstance(value, bool):
                raise ConfigurationError(f"koa secure must be true, false or unset; got {value!r}")
            out[target] = value
        else:
            out[target] = value
    return out


def koa_middleware(
    app: ASGIApp,
    keys: Sequence[str | bytes] | None,
    koa_options: Mapping[str, Any] | None = None,
    **options: Unpack[SessionOptionsDict],
) -> SessionMiddleware:
    """:class:`~koasession.SessionMiddleware` configured from a koa-session options object.

    ``keys`` are koa's ``app.keys``. ``options`` are koasession keywords for what koa has no
    option for (``algorithm="sha1"``, ``encrypt``, ``on_event``...); a keyword that a koa
    option also sets is a :class:`~koasession.ConfigurationError`. ``record_created`` defaults
    to False here, so the cookies and store entries are koa-session's, byte for byte.
    """
    options.setdefault("record_created", False)
    converted = from_koa_options(koa_options or {})
    clash = sorted(set(converted) & set(options))
    if clash:
        raise ConfigurationError(
            f"{', '.join(clash)} set both by the koa options and as keywords; keep one"
        )
    return SessionMiddleware(app, keys, **converted, **options)
