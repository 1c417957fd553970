"""The configured cookie format: read a signed value, open or seal a payload, write cookie lines.

Pure functions of their inputs (the request's cookies, the signer or cipher, the options in
force, ``now``); the engine (:mod:`koasession.lifecycle`) turns the problems they report into
events. ``diagnose`` and ``testing`` use the same functions, so there is one definition of a
valid cookie.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import codec, cookies, events
from .decisions import js_falsy
from .errors import CookieTooLargeError, InsecureConnectionError
from .ids import is_valid_id
from .signing import Signer

if TYPE_CHECKING:
    from .crypto import CookieCipher
    from .options import SessionOptions

#: Browsers drop Set-Cookie lines longer than this (RFC 6265bis, name + value + attributes).
COOKIE_LINE_LIMIT = 4096

# Problems reading a cookie, as the engine reports them (the ``reason`` of the event).
MISSING_SIGNATURE = "missing signature"
BAD_SIGNATURE = "bad signature"
CANNOT_DECRYPT = "cannot decrypt"
MALFORMED = "malformed payload"
EMPTY = "empty payload"
TOO_DEEP = f"nested deeper than {codec.MAX_DEPTH} levels"

#: The characters of base64url, the alphabet of encrypted cookie values.
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

#: A named Set-Cookie line: ``(cookie name, header value)``.
CookieLine = tuple[str, str]


#: A cookie read under its signature: ``(value, rotated, problem)``. ``value`` is the verified
#: value; with a ``problem`` it is the unverified value, for the report only. ``rotated`` says
#: an older key signed it. (A plain tuple: this is on every request's path.)
SignedValue = tuple[str | None, bool, str | None]

#: A cookie value turned into a payload: ``(data, rotated, problem)``. ``data`` is the payload
#: object when ``problem`` is ``None``; with :data:`EMPTY` it is the falsy JSON value the cookie
#: held. ``rotated`` says an older key encrypted it.
Opened = tuple[Any, bool, str | None]


def read_signed(jar: Mapping[str, str], name: str, signer: Signer | None) -> SignedValue:
    """Cookie ``name`` from ``jar`` if its ``.sig`` verifies (any value when unsigned)."""
    value = jar.get(name)
    if value is None or signer is None:
        return value, False, None
    signature = jar.get(name + ".sig")
    if signature is None:
        return value, False, MISSING_SIGNATURE
    index = signer.verify(f"{name}={value}", signature)
    if index < 0:
        return value, False, BAD_SIGNATURE
    return value, index > 0, None


_UNDECODABLE = object()


def open_payload(
    value: str, *, cipher: CookieCipher | None, decode: Callable[[str], Any] | None
) -> Opened:
    """Decrypt or decode a cookie value into a payload object.

    A custom ``decode`` that raises anything but ``ValueError`` propagates: koa then clears the
    cookie, which is the engine's business.
    """
    if cipher is not None:
        opened = cipher.open(value)
        if opened is None:
            return None, False, CANNOT_DECRYPT
        return opened[0], opened[1] > 0, None
    data: Any
    if decode is None:
        data = codec.decode(value)
        if data is None:
            try:
                data = codec.decode_value(value)
            except ValueError:
                data = _UNDECODABLE
    else:
        try:
            data = decode(value)
        except ValueError:
            data = _UNDECODABLE  # koa: a SyntaxError from decode means "start a new session"
    if isinstance(data, dict):
        if decode is not None and codec.exceeds_depth(data):
            return None, False, TOO_DEEP
        return data, False, None
    if data is not _UNDECODABLE and js_falsy(data):
        return data, False, EMPTY
    return None, False, MALFORMED


def seal_payload(
    payload: dict[str, Any],
    *,
    cipher: CookieCipher | None,
    encode: Callable[[dict[str, Any]], str] | None,
) -> str:
    """Serialise a payload (data plus metadata) into a cookie value."""
    if cipher is not None:
        return cipher.seal(payload)
    if encode is None:
        return codec.encode(payload)
    try:
        value = encode(payload)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the encode option could not serialise the session: {exc}") from exc
    # Ours is base64; a custom encode's result goes into the Set-Cookie line as is.
    if not (isinstance(value, str) and cookies.is_safe_value(value)):
        shown = value[:60] if isinstance(value, str) else value
        raise ValueError(
            f"encode() returned {shown!r}, which would inject into the Set-Cookie line: "
            "return text without ';' or control characters (base64 is safe)"
        )
    return value


def is_cookie_payload(value: str) -> bool:
    """Whether a session id from a cookie is in fact a cookie-mode payload (base64 JSON).

    Such payloads start with ``eyJ`` (``{"``); a random id can too, so it must also decode to a
    JSON object, which 256 random bits practically never do.
    """
    return value.startswith("eyJ") and codec.decode(value) is not None


def looks_encrypted(value: str) -> bool:
    """Whether ``value`` has the shape of an encrypted cookie (see crypto.py, format 1).

    Its first byte is the version 0x01, so base64url starts with ``A`` then one of ``Q``-``f``,
    and it holds at least a key id, a nonce and a tag (33 bytes, 44 characters).
    """
    return (
        len(value) >= 44
        and value[0] == "A"
        and value[1] in "QRSTUVWXYZabcdef"
        and _B64URL.issuperset(value)
    )


def is_store_id_cookie(
    value: str,
    *,
    jar: Mapping[str, str],
    name: str,
    signed: bool,
    encrypted: bool,
    keys: Sequence[str | bytes],
    algorithms: Sequence[str],
) -> bool:
    """Whether ``value``, which did not decode, is a session id signed by a store-mode app.

    Only a verified signature tells an id from garbage: signed mode (``signed``) has verified
    it already; encrypted mode, which has no ``.sig``, checks the one sent along.
    """
    if not is_valid_id(value) or value.startswith("eyJ"):
        return False
    raw = codec.lenient_b64decode(value)
    if raw is not None:
        try:
            json.loads(raw)
        except (ValueError, RecursionError):
            pass  # random bytes, as an id decodes to
        else:
            return False  # JSON, just not an object: a malformed payload
    if signed:
        return True
    if not encrypted or not keys:
        return False
    signature = jar.get(name + ".sig")
    if signature is None:
        return False
    return signature_index(value, signature, name=name, keys=keys, algorithms=algorithms) >= 0


def signature_index(
    value: str, signature: str, *, name: str, keys: Sequence[str | bytes], algorithms: Sequence[str]
) -> int:
    """Which key/algorithm pair signed cookie ``name``'s ``value``, or -1 for none.

    Counted as :meth:`Signer.verify` counts: ``key_index * len(algorithms) + algorithm_index``.
    For tools and rare paths; a request reads its cookie with :func:`read_signed`.
    """
    return Signer(keys, algorithms).verify(f"{name}={value}", signature)


# -- writing ---------------------------------------------------------------------------------


def resolve_secure(configured: bool | None, is_secure: bool) -> bool:
    """The ``Secure`` attribute: as configured, else whether the request came over TLS.

    Raises :class:`InsecureConnectionError` for ``secure=True`` over plain HTTP, as koa does.
    """
    if configured is None:
        return is_secure
    if configured and not is_secure:
        raise InsecureConnectionError()
    return configured


def lifetime(max_age: float | str, lifetime_ms: float | None, now_ms: int) -> tuple[Any, Any]:
    """``(expires, max-age)`` attribute values for a cookie living ``max_age`` seconds.

    ``lifetime_ms`` is koa's ``maxAge`` in whole ms: koa adds it to ``Date.now()``, and a float
    sum of seconds can land just below a second boundary and name the wrong second.
    """
    if isinstance(max_age, str) or lifetime_ms is None:
        return None, None
    return (now_ms + lifetime_ms) / 1000, int(max_age)


def attributes(
    opts: SessionOptions, *, secure: bool, expires: float | str | None, max_age: int | None
) -> str:
    """The attribute part of the session's Set-Cookie lines under the options in force."""
    global _last_attributes
    # Consecutive responses mostly share every attribute (the expiry date changes once a
    # second): the last text is reused when all inputs are equal, as http_date does for dates.
    key = (
        opts.path,
        int(expires) if isinstance(expires, float) else expires,  # the date has whole seconds
        max_age,
        opts.domain,
        opts.priority,
        opts.same_site,
        secure,
        opts.http_only,
        opts.partitioned,
    )
    cached_key, text = _last_attributes
    if key == cached_key:
        return text
    text = cookies.attributes(
        path=opts.path,
        expires=expires,
        max_age=max_age,
        domain=opts.domain,
        priority=opts.priority,
        same_site=opts.same_site,
        secure=secure,
        http_only=opts.http_only,
        partitioned=opts.partitioned,
    )
    _last_attributes = (key, text)
    return text


_last_attributes: tuple[tuple[Any, ...] | None, str] = (None, "")


def lines(
    name: str, value: str, attrs: str, signer: Signer | None, *, with_value: bool = True
) -> list[CookieLine]:
    """The Set-Cookie lines for ``name``: the value (unless not ``with_value``) and its ``.sig``."""
    out: list[CookieLine] = []
    if with_value:
        out.append((name, f"{name}={value}; {attrs}"))
    if signer is not None:
        out.append((name + ".sig", f"{name}.sig={signer.sign(f'{name}={value}')}; {attrs}"))
    return out


def fits(new: Sequence[CookieLine], on_oversize: str) -> bool:
    """Whether every line is within :data:`COOKIE_LINE_LIMIT`; apply ``on_oversize`` if not.

    ``"raise"`` raises :class:`CookieTooLargeError`; otherwise the problem is logged and the
    cookie must be dropped (False).
    """
    for name, line in new:
        if len(line) > COOKIE_LINE_LIMIT:
            message = (
                f"the Set-Cookie line for {name!r} is {len(line)} bytes, over the "
                f"{COOKIE_LINE_LIMIT}-byte browser limit; keep less in the session or use a "
                "server-side store (store=RedisStore(...), PostgresStore(...), SQLiteStore(...))"
            )
            if on_oversize == "raise":
                raise CookieTooLargeError(message)
            events.logger.warning("%s; cookie not sent", message)
            return False
    return True


def merge(
    queued: Sequence[CookieLine], new: Sequence[CookieLine], *, overwrite: bool
) -> list[CookieLine]:
    """A new list: ``queued`` plus ``new``; with ``overwrite``, a later line replaces one of the
    same name."""
    if overwrite and queued:
        names = {name for name, _ in new}
        return [item for item in queued if item[0] not in names] + list(new)
    return [*queued, *new]


def values(queued: Sequence[CookieLine]) -> dict[str, str]:
    """``{name: value}`` of queued lines (what a browser would store)."""
    return {name: line.split(";", 1)[0].partition("=")[2] for name, line in queued}
