"""The one base64url codec: RFC 4648 section 5 alphabet, no ``=`` padding, canonical only.

Signatures, encrypted cookies, CSRF tokens, compressed cookie values and itsdangerous fallbacks
all use it. The lenient reader for koa-session's cookie payloads (both alphabets, Node's
``Buffer.from(s, 'base64')`` quirks) is a different contract and stays in
:func:`koasession.codec.lenient_b64decode`.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["b64url_decode", "b64url_encode", "b64url_encode_ascii"]

_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
# The last character of a canonical encoding has its unused low bits zero: 4 spare bits when
# the length is 2 mod 4, 2 spare bits when it is 3 mod 4.
_LAST_CHAR = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}


# Standard base64 to base64url, dropping the padding and binascii's newline, in one translate:
# binascii skips the base64 module's Python layers, which shows on the per-request signing
# path, and deleting the newline costs less than the ``newline=False`` keyword's parsing.
TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: What the translate deletes: the padding and the newline.
DROPPED = b"=\n"


def b64url_encode(raw: bytes) -> str:
    """``raw`` as base64url text without padding."""
    return binascii.b2a_base64(raw).translate(TO_URLSAFE, DROPPED).decode("ascii")


def b64url_encode_ascii(raw: bytes) -> bytes:
    """:func:`b64url_encode` as ASCII bytes, to compare with bytes received."""
    return binascii.b2a_base64(raw).translate(TO_URLSAFE, DROPPED)


def b64url_decode(text: str) -> bytes | None:
    """The bytes of canonical, unpadded base64url ``text``; ``None`` for anything else.

    Strict, so each value has exactly one spelling: refused are padding, characters outside the
    url-safe alphabet (the standard decoder would skip them), an impossible length and non-zero
    unused trailing bits.
    """
    if not isinstance(text, str) or not _ALPHABET.issuperset(text):
        return None
    extra = len(text) % 4
    if extra == 1 or (extra and text[-1] not in _LAST_CHAR[extra]):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the checks above already filter
        return None
