"""Migration readers: read the session cookies of the middleware an app used before.

When an app switches to koasession (or from cookie mode to store mode), its users still hold
cookies in the old format. A *reader* is tried when the current format finds no session; if it
recognises a valid old cookie it returns the session data and the names of the old cookies, so
the middleware can re-issue the session in the current format on that response (the
``migrated`` event) and remove the old cookies: nobody is logged out.

A reader is any callable ``(cookies: Mapping[str, str]) -> FallbackResult | None`` taking the
request's cookie jar (name to value). The bundled ones:

- :class:`StarletteReader`: Starlette's ``SessionMiddleware``;
- :class:`StarsessionsReader`: starsessions' ``CookieStore``;
- :class:`FlaskReader`: Flask's default (``SecureCookieSessionInterface``) session;
- :class:`KoaCookieReader`: this package's own cookie-mode cookies, for a switch to store mode.

Every reader verifies the old cookie's signature and expiry with the standard library only
(``hmac``, ``hashlib``), and returns ``None``, never raises, for anything missing, forged,
expired or malformed. :func:`read_fallback` tries a list of readers in order.

The itsdangerous format
=======================

Starlette, starsessions and Flask sign with itsdangerous's ``TimestampSigner``::

    cookie    = payload "." timestamp "." signature
    timestamp = base64url_nopad(big-endian unsigned bytes of the Unix time in seconds)
    signature = base64url_nopad(HMAC(derived_key, payload "." timestamp))

The HMAC digest is SHA-1 for all three. The derived key depends on the *key derivation* and a
*salt*: ``django-concat`` is ``SHA1(salt + b"signer" + secret)`` (itsdangerous's default, used by
Starlette and starsessions with salt ``b"itsdangerous.Signer"``); ``hmac`` is
``HMAC-SHA1(secret, salt)`` (Flask's choice, salt ``b"cookie-session"``). A signature older
than the reader's ``max_age`` seconds, or dated in the future, is expired.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import email.utils
import hashlib
import hmac
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from . import codec, cookiesize
from .b64 import b64url_decode
from .serializers import TaggedSerializer
from .signing import Signer

__all__ = [
    "FallbackReader",
    "FallbackResult",
    "FlaskReader",
    "KoaCookieReader",
    "StarletteReader",
    "StarsessionsReader",
    "read_fallback",
]

#: Longest old cookie value considered (a request header rarely exceeds 8 KiB in all).
_MAX_COOKIE = 16 * 1024

#: Cap on a decompressed Flask payload (its cookie is itself under 4 KiB).
_MAX_INFLATED = 1 << 20


@dataclass(frozen=True)
class FallbackResult:
    """A session recovered from an old cookie.

    ``data`` is the session data, a dict of JSON-safe values (no metadata of the old format);
    ``remove`` names the cookies the response should expire; ``source`` names the format, for
    the ``migrated`` event.
    """

    data: dict[str, Any]
    remove: tuple[str, ...]
    source: str


#: The type of a migration reader.
FallbackReader = Callable[[Mapping[str, str]], FallbackResult | None]


def read_fallback(
    readers: Iterable[FallbackReader], cookies: Mapping[str, str]
) -> FallbackResult | None:
    """The first result any of ``readers`` gives for ``cookies``, or ``None``.

    A reader that raises (a custom one with a bug) counts as no result: a bad old cookie must
    not fail the request.
    """
    for reader in readers:
        try:
            result = reader(cookies)
        except Exception:
            continue
        if result is not None:
            return result
    return None


# -- itsdangerous-format verification ----------------------------------------------------------


def _to_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _secrets(secret_key: str | bytes | Sequence[str | bytes]) -> list[bytes]:
    keys = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
    if not keys or any(not key for key in keys):
        raise ValueError("a migration reader needs the old app's non-empty secret key(s)")
    return [_to_bytes(key) for key in keys]


def _derive(secret: bytes, salt: bytes, derivation: str) -> bytes:
    if derivation == "django-concat":
        return hashlib.sha1(salt + b"signer" + secret).digest()
    if derivation == "hmac":
        return hmac.new(secret, salt, hashlib.sha1).digest()
    if derivation == "concat":
        return hashlib.sha1(salt + secret).digest()
    if derivation == "none":
        return secret
    raise ValueError(f"unknown key derivation {derivation!r}")


class _TimestampVerifier:
    """Checks itsdangerous ``TimestampSigner`` values with precomputed derived keys."""

    __slots__ = ("_keys", "max_age")

    def __init__(
        self, secrets: list[bytes], *, salt: bytes, derivation: str, max_age: float
    ) -> None:
        self._keys = [_derive(secret, salt, derivation) for secret in secrets]
        self.max_age = max_age

    def unsign(self, value: str, now: float | None = None) -> str | None:
        """The payload of a valid, unexpired ``value``; ``None`` otherwise."""
        signed, dot, signature = value.rpartition(".")
        if not dot or not value.isascii() or len(value) > _MAX_COOKIE:
            return None
        expected = b64url_decode(signature)
        if expected is None:
            return None
        message = signed.encode("ascii")
        if not any(
            hmac.compare_digest(hmac.new(key, message, hashlib.sha1).digest(), expected)
            for key in self._keys
        ):
            return None
        payload, dot, stamp = signed.rpartition(".")
        raw_stamp = b64url_decode(stamp) if dot else None
        if not raw_stamp or len(raw_stamp) > 8:
            return None
        age = (time.time() if now is None else now) - int.from_bytes(raw_stamp, "big")
        if age < 0 or age > self.max_age:
            return None
        return payload


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return codec.loads_object(text)


def _std_b64_json(payload: str) -> dict[str, Any] | None:
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _json_object(raw)


# -- Starlette and starsessions ----------------------------------------------------------------


class StarletteReader:
    """Reads cookies of Starlette's ``SessionMiddleware`` (``request.session``).

    ``secret_key`` is that app's ``secret_key`` (a list for several, any of which verifies);
    ``cookie_name`` and ``max_age`` (seconds) are its ``session_cookie`` and ``max_age``
    settings, defaults included. A cookie older than ``max_age`` is expired, as Starlette
    would find it. Its format: ``TimestampSigner(secret_key)`` over standard base64 of JSON.
    """

    __slots__ = ("_verifier", "cookie_name")

    source = "starlette"

    def __init__(
        self,
        secret_key: str | bytes | Sequence[str | bytes],
        *,
        cookie_name: str = "session",
        max_age: float = 14 * 24 * 60 * 60,
    ) -> None:
        self.cookie_name = cookie_name
        self._verifier = _TimestampVerifier(
            _secrets(secret_key),
            salt=b"itsdangerous.Signer",
            derivation="django-concat",
            max_age=max_age,
        )

    def __call__(self, cookies: Mapping[str, str]) -> FallbackResult | None:
        """The session in ``cookies``, or ``None``."""
        value = cookies.get(self.cookie_name)
        if value is None:
            return None
        payload = self._verifier.unsign(value)
        data = None if payload is None else _std_b64_json(payload)
        if data is None:
            return None
        return FallbackResult(data, (self.cookie_name,), self.source)


class StarsessionsReader:
    """Reads cookies of starsessions' ``SessionMiddleware`` with its ``CookieStore``.

    ``secret_key`` is the ``CookieStore``'s; ``cookie_name`` and ``lifetime`` (seconds) are the
    middleware's settings. ``lifetime=0`` (starsessions' default, a browser-session cookie)
    accepts signatures up to a year old, as starsessions does. The session's own
    ``__metadata__`` (``created`` + ``lifetime``) is honoured too, then dropped from the data.
    """

    __slots__ = ("_verifier", "cookie_name")

    source = "starsessions"

    def __init__(
        self,
        secret_key: str | bytes | Sequence[str | bytes],
        *,
        cookie_name: str = "session",
        lifetime: float = 0,
    ) -> None:
        self.cookie_name = cookie_name
        self._verifier = _TimestampVerifier(
            _secrets(secret_key),
            salt=b"itsdangerous.Signer",
            derivation="django-concat",
            max_age=lifetime or 3600 * 24 * 30 * 12,
        )

    def __call__(self, cookies: Mapping[str, str]) -> FallbackResult | None:
        """The session in ``cookies``, or ``None``."""
        value = cookies.get(self.cookie_name)
        if value is None:
            return None
        payload = self._verifier.unsign(value)
        data = None if payload is None else _std_b64_json(payload)
        if data is None:
            return None
        metadata = data.pop("__metadata__", None)
        if isinstance(metadata, dict):
            created, lifetime = metadata.get("created"), metadata.get("lifetime")
            if (
                _is_number(created)
                and _is_number(lifetime)
                and lifetime > 0
                and created + lifetime < time.time()
            ):
                return None
        return FallbackResult(data, (self.cookie_name,), self.source)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- Flask -------------------------------------------------------------------------------------

_REFUSED = object()


class FlaskReader:
    """Reads Flask's default session cookies (``SecureCookieSessionInterface``).

    ``secret_key`` is the app's ``SECRET_KEY``, or a list with its ``SECRET_KEY_FALLBACKS``;
    ``max_age`` is ``PERMANENT_SESSION_LIFETIME`` in seconds (Flask checks it on every cookie).
    ``salt`` and ``key_derivation`` are the interface's; Flask uses ``"cookie-session"`` and
    ``"hmac"`` (pass ``"django-concat"`` for an interface that kept itsdangerous's default).

    Format: ``URLSafeTimedSerializer``, i.e. ``TimestampSigner`` over base64url (no padding) of
    compact JSON, compressed with zlib and marked by a leading ``.`` when that was shorter.

    Flask tags non-JSON values as single-key objects. Tuples (``" t"``), Markup (``" m"``) and
    escaped dicts (``" di"``) always decode, to lists, strings and dicts. ``rich_values`` says
    what to do with bytes (``" b"``), UUIDs (``" u"``) and datetimes (``" d"``):

    - ``"refuse"`` (default): the cookie is not migrated (``None``), so no value changes type
      behind the application's back;
    - ``"text"``: bytes become standard base64 text, a UUID its hyphenated text, a datetime
      its ISO 8601 text (UTC, with offset);
    - ``"tagged"``: :class:`koasession.serializers.TaggedSerializer`'s JSON-safe form, for an app
      that runs the middleware with that serializer.

    An unknown tag is always refused. Flask's ``_permanent`` flag is dropped from the data.
    """

    __slots__ = ("_verifier", "cookie_name", "rich_values")

    source = "flask"

    def __init__(
        self,
        secret_key: str | bytes | Sequence[str | bytes],
        *,
        cookie_name: str = "session",
        max_age: float = 31 * 24 * 60 * 60,
        salt: str | bytes = "cookie-session",
        key_derivation: Literal["hmac", "django-concat", "concat", "none"] = "hmac",
        rich_values: Literal["refuse", "text", "tagged"] = "refuse",
    ) -> None:
        if rich_values not in ("refuse", "text", "tagged"):
            raise ValueError(
                f"rich_values must be 'refuse', 'text' or 'tagged'; got {rich_values!r}"
            )
        self.cookie_name = cookie_name
        self.rich_values = rich_values
        self._verifier = _TimestampVerifier(
            _secrets(secret_key), salt=_to_bytes(salt), derivation=key_derivation, max_age=max_age
        )

    def __call__(self, cookies: Mapping[str, str]) -> FallbackResult | None:
        """The session in ``cookies``, or ``None``."""
        value = cookies.get(self.cookie_name)
        if value is None:
            return None
        payload = self._verifier.unsign(value)
        if payload is None:
            return None
        compressed = payload.startswith(".")
        raw = b64url_decode(payload[1:] if compressed else payload)
        if raw is None:
            return None
        if compressed:
            inflater = zlib.decompressobj()
            try:
                raw = inflater.decompress(raw, _MAX_INFLATED)
            except zlib.error:
                return None
            if inflater.unconsumed_tail or not inflater.eof:
                return None
        data = _json_object(raw)
        if data is None:
            return None
        try:
            untagged = self._untag(data)
        except (ValueError, TypeError):
            return None
        if untagged is _REFUSED or not isinstance(untagged, dict):
            return None
        untagged.pop("_permanent", None)  # Flask's own flag for session.permanent, not app data
        if self.rich_values == "tagged":
            try:
                untagged = TaggedSerializer().to_json_safe(untagged)
            except (ValueError, TypeError):
                return None
        return FallbackResult(untagged, (self.cookie_name,), self.source)

    def _untag(self, value: Any) -> Any:
        # Bottom-up, as Flask decodes: children first, then the object itself.
        if isinstance(value, list):
            items = [self._untag(item) for item in value]
            return _REFUSED if any(item is _REFUSED for item in items) else items
        if not isinstance(value, dict):
            return value
        if len(value) == 1 and isinstance(value.get(" di"), dict) and len(value[" di"]) == 1:
            # An escaped dict: its one key looks like a tag but is the app's own key, which
            # Flask suffixed with "__"; only its value is decoded.
            ((escaped, item),) = value[" di"].items()
            return {escaped[:-2]: self._untag(item)}
        scanned = {key: self._untag(item) for key, item in value.items()}
        if any(item is _REFUSED for item in scanned.values()):
            return _REFUSED
        if len(scanned) != 1:
            return scanned
        ((key, inner),) = scanned.items()
        if not key.startswith(" "):
            return scanned
        return self._from_tag(key, inner)

    def _from_tag(self, key: str, inner: Any) -> Any:
        if key == " t" and isinstance(inner, list):
            return inner  # a tuple; JSON has only lists
        if key == " m" and isinstance(inner, str):
            return inner  # Markup is a str subclass; its text is what the app stored
        if key not in (" b", " u", " d") or not isinstance(inner, str):
            raise ValueError(f"unknown Flask session tag {key!r}")
        if self.rich_values == "refuse":
            return _REFUSED
        rich: Any
        if key == " b":
            rich = base64.b64decode(inner, validate=True)
        elif key == " u":
            rich = uuid.UUID(inner)
        else:
            rich = email.utils.parsedate_to_datetime(inner)
            if rich.tzinfo is None:
                rich = rich.replace(tzinfo=_dt.timezone.utc)
        if self.rich_values == "tagged":
            return rich  # tagged as a whole afterwards
        if isinstance(rich, bytes):
            return inner
        return str(rich) if isinstance(rich, uuid.UUID) else rich.isoformat()


# -- this package's own cookie mode ------------------------------------------------------------


class KoaCookieReader:
    """Reads this package's (and koa-session's) cookie-mode cookies, for a switch to store mode.

    Give the options the app used in cookie mode: ``keys`` and ``algorithms`` for signed
    cookies, or ``encrypt=True`` (``keys`` then seal, and ``cryptography`` is needed). ``key``
    is the cookie name. Compressed payloads (:mod:`koasession.cookiesize`) and chunked ones are
    read too. An expired payload (``_expire`` in the past) is refused; the metadata keys
    (``_expire``, ``_maxAge``, ``_session``...) are dropped from the data.
    """

    __slots__ = ("_cipher", "_signer", "key")

    source = "koasession-cookie"

    def __init__(
        self,
        keys: Sequence[str | bytes],
        *,
        key: str = "koa.sess",
        algorithms: Sequence[str] = ("sha256",),
        encrypt: bool = False,
    ) -> None:
        self.key = key
        self._signer = Signer(keys, algorithms)
        self._cipher: Any = None
        if encrypt:
            from .crypto import CookieCipher

            self._cipher = CookieCipher(keys, cookie_name=key)

    def __call__(self, cookies: Mapping[str, str]) -> FallbackResult | None:
        """The session in ``cookies``, or ``None``."""
        name = self.key
        value = cookies.get(name)
        remove: tuple[str, ...]
        data: dict[str, Any] | None
        if self._cipher is not None:
            if value is None:
                return None
            opened = self._cipher.open(value)
            data, remove = (None if opened is None else opened[0]), (name,)
        else:
            signature = cookies.get(name + ".sig")
            if value is not None and (
                signature is None or self._signer.verify(f"{name}={value}", signature) < 0
            ):
                # Chunks may verify under that .sig: a stray whole cookie next to them must not
                # hide the session (see cookiesize, Chunking).
                value = None
            if value is not None:
                remove = (name, name + ".sig")
            else:
                joined = cookiesize.join_chunks(name, cookies, self._signer)
                if joined is None:
                    return None
                value = joined[0]
                remove = (*cookiesize.stale_chunk_names(name, cookies, 0), name + ".sig")
            expanded = cookiesize.expand_value(value)
            data = None if expanded is None else codec.decode(expanded)
        if data is None:
            return None
        expire = data.get("_expire")
        if _is_number(expire) and expire < time.time() * 1000:
            return None
        session = {k: v for k, v in data.items() if k not in codec.META_KEYS}
        return FallbackResult(session, remove, self.source)
