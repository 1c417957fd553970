"""Encryption at rest for store mode (``encrypt=True`` with a store).

The engine seals the whole stored value (data plus metadata) with the cookie format of
:mod:`koasession.crypto` (key ids, rotation) and hands the store ``{"_sealed": "<token>"}``, so
stores need no change and keep only an opaque string. The session id under which the store keeps
the value (its HMAC when the store has ``hash_ids``) is bound as associated data: a sealed value
copied to another id does not open. The cost: a Koa app sharing the store (koa-redis) cannot
read these values.

Sealed values have no size bound (:func:`make_cipher`): whatever the store accepted on save
opens on the next request, as it does without ``encrypt``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .crypto import CookieCipher

__all__ = [
    "CIPHER_NAME",
    "SEALED_KEY",
    "bound_id",
    "make_cipher",
    "open_value",
    "seal_value",
]

#: The name the store cipher binds in place of a cookie name; "/" cannot occur in a cookie
#: name, so a stored token never opens as a cookie and a cookie never opens as a stored value.
CIPHER_NAME = "koasession/at-rest"
#: The one key of a sealed stored value.
SEALED_KEY = "_sealed"
#: Why a stored value did not open (the ``reason`` of the ``invalid`` event).
NOT_SEALED = "stored value is not sealed"
CANNOT_OPEN = "stored value cannot be decrypted"


def bound_id(store: object, key: str) -> bytes:
    """The id bound into the sealed value: the store's own key for ``key`` (hashed or not)."""
    stored_key: Callable[[str], str] | None = getattr(store, "_stored_key", None)
    return (stored_key(key) if callable(stored_key) else key).encode()


def make_cipher(keys: Sequence[str | bytes]) -> CookieCipher:
    """The cipher that seals and opens stored values under ``keys`` (newest first).

    It opens tokens of any length. The cookie bound (``crypto.MAX_TOKEN_LENGTH``, 16,384
    characters) limits work on hostile cookies, but store mode is where sessions too large for
    a cookie go: under that bound a session of about 12 KB of JSON is saved without complaint
    and then refused on every read, a silent logout. A bound here would not protect against a
    compromised store either: its ``get`` has already fetched and parsed the whole value before
    the token reaches the cipher, and without the keys a forged token costs one base64 decode
    and one failed GCM pass, linear in what the store already holds. Unsealed store values have
    no bound; sealing them must not add one that only shows when reading.
    """
    from .crypto import CookieCipher  # lazily: ``cryptography`` is an optional dependency

    return CookieCipher(keys, cookie_name=CIPHER_NAME, max_token_length=None)


def seal_value(cipher: CookieCipher, payload: dict[str, Any], context: bytes) -> dict[str, str]:
    """The value to store for ``payload`` under the id ``context``."""
    return {SEALED_KEY: cipher.seal(payload, context=context)}


def open_value(
    cipher: CookieCipher, stored: dict[str, Any], context: bytes
) -> tuple[dict[str, Any] | None, bool, str | None]:
    """``(payload, rotated, problem)`` for a stored value; ``payload`` is ``None`` on a problem.

    ``rotated`` says an older key sealed it (re-seal it under the first key).
    """
    token = stored.get(SEALED_KEY)
    if len(stored) != 1 or not isinstance(token, str):
        return None, False, NOT_SEALED
    opened = cipher.open(token, context=context)
    if opened is None:
        return None, False, CANNOT_OPEN
    return opened[0], opened[1] > 0, None
