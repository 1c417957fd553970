"""Encrypted session cookies (``encrypt=True``): format version 1.

In encrypted mode the whole session travels in **one** cookie (no ``<key>.sig``). The cookie value
is confidential and tamper-proof; the session data the application sees is exactly the JSON
object that signed mode carries, metadata included (``_expire``, ``_maxAge``, ``_session``). The
expiry therefore sits *inside* the authenticated ciphertext, and the middleware enforces it after
:meth:`CookieCipher.open` just as it does for a signed cookie.

This module needs the optional ``cryptography`` package (``pip install 'koasession[crypto]'``).
It is imported lazily, when the first :class:`CookieCipher` is built, so plain signed-cookie
users never import it.

Format, version 1
=================

::

    token  = base64url_nopad( version || kid || nonce || ciphertext || tag )

    version     1 byte    0x01
    kid         4 bytes   key id: HKDF-SHA256(app_key, salt=SALT, info=b"koasession/v1/key-id")
    nonce      12 bytes   random (os.urandom), fresh for every seal
    ciphertext  n bytes   AES-256-GCM(enc_key, nonce, plaintext, aad)
    tag        16 bytes   the GCM authentication tag

    enc_key = HKDF-SHA256(app_key, length=32, salt=SALT, info=b"koasession/v1/cookie-encryption")
    SALT    = b"koasession HKDF salt"        (fixed, public: domain separation only)
    aad     = version || kid || cookie_name (UTF-8)
    plaintext = compact UTF-8 JSON of the session dict, byte for byte what signed mode
                base64-encodes (``codec.to_bytes``), e.g.
                {"views":1,"_expire":1795796819269,"_maxAge":86400000}

- **Encoding.** The token is base64url (``A-Z a-z 0-9 - _``) without ``=`` padding, so it is a
  valid RFC 6265 cookie value with no quoting or escaping. Only the canonical encoding is
  accepted: a token whose unused trailing bits are not zero is rejected, so each token has exactly
  one spelling.
- **Keys.** Each app key (``str`` keys are UTF-8 encoded) yields, through HKDF-SHA256 with a
  purpose- and version-specific ``info`` string, an independent 256-bit AES key and a 4-byte key
  id. The key id is public; it is an HKDF output, so it reveals nothing about the key or the
  encryption key. The same app key list can therefore be shared with signed mode without reusing
  key material across purposes. App keys must be high-entropy secrets (at least 32 random bytes):
  HKDF does not stretch a guessable password.
- **Key selection.** :meth:`CookieCipher.seal` always uses ``keys[0]``. :meth:`CookieCipher.open`
  looks the key id up and tries only the keys carrying it (normally exactly one; more only on a
  4-byte id collision or a duplicated key), so decryption cost does not grow with the number of
  old keys. :meth:`~CookieCipher.open` reports the index of the key that opened the token; a
  non-zero index tells the middleware to re-issue the cookie under ``keys[0]`` (rotation).
- **Binding.** The version byte, the key id and the cookie name are authenticated as associated
  data: a token copied under another cookie name, or with its version byte or key id altered,
  fails authentication.
- **Versions.** Only version 1 is understood. A token of any other version (older or newer) is
  rejected outright; it is never retried under another parser. A future format gets a new
  version byte *and* new HKDF ``info`` strings, so its keys are independent of these.
- **Payload checks.** After authentication the plaintext must be UTF-8 JSON whose top level is an
  object, nested at most :data:`MAX_DEPTH` levels, with no ``NaN``/``Infinity`` (refused as in
  JavaScript) and no float that overflows to infinity. Tokens longer than the cipher's
  ``max_token_length`` (:data:`MAX_TOKEN_LENGTH` characters for cookies) are rejected before any
  decoding work.
- **No compression.** The plaintext is not compressed: compressing secret data next to
  attacker-influenced data before encryption leaks it through the ciphertext length.
- **Nonce budget.** Random 96-bit nonces are safe for about 2**32 seals per key (NIST SP 800-38D);
  rotate the first key well before a single key has sealed four billion cookies.

What this format does not do: it does not hide the approximate size of the session, it does not
stop a stolen cookie from being replayed until its ``_expire`` (see SECURITY.md for the
revocation pattern), and it does not make a weak app key strong.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import codec, keystrength
from .b64 import b64url_decode, b64url_encode
from .errors import ConfigurationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "FORMAT_VERSION",
    "KID_LENGTH",
    "MAX_DEPTH",
    "MAX_TOKEN_LENGTH",
    "NONCE_LENGTH",
    "CookieCipher",
]

#: The only format version this module writes and reads.
FORMAT_VERSION = 1
#: Bytes of the public key id in every token.
KID_LENGTH = 4
#: Bytes of the random AES-GCM nonce (96 bits).
NONCE_LENGTH = 12
#: Bytes of the AES-GCM authentication tag.
TAG_LENGTH = 16
#: Cookie tokens longer than this many characters are rejected without decoding (4x the browser
#: limit): the default ``max_token_length`` of :class:`CookieCipher`.
MAX_TOKEN_LENGTH = 16384
#: Deepest nesting of objects/arrays accepted in a payload (the top-level object is depth 1).
#: The one depth limit of the package (see :mod:`koasession.codec`).
MAX_DEPTH = codec.MAX_DEPTH

_VERSION_BYTE = bytes([FORMAT_VERSION])
_HEADER_LENGTH = 1 + KID_LENGTH
_MIN_RAW_LENGTH = _HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH
_HKDF_SALT = b"koasession HKDF salt"
_INFO_ENC = b"koasession/v1/cookie-encryption"
_INFO_KID = b"koasession/v1/key-id"

_INSTALL_HINT = (
    "encrypt=True needs the 'cryptography' package, an optional dependency of koasession: "
    "pip install 'koasession[crypto]'"
)


def _load_backend() -> tuple[Any, Any, Any, Any]:
    """Import the ``cryptography`` pieces lazily, with a clear error when it is missing."""
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in tests
        raise ImportError(_INSTALL_HINT) from exc
    return AESGCM, HKDF, hashes, InvalidTag


class CookieCipher:
    """Seal session dicts into encrypted cookie values and open them again (format version 1).

    ``keys`` are the app keys, newest first: the first one seals, every one opens.
    ``cookie_name`` is bound into every token, so a token only opens under the same name.
    ``max_token_length`` bounds the tokens :meth:`open` decodes (``None``: no bound); the
    default suits cookies, which browsers cap at about 4 KB anyway.
    """

    __slots__ = (
        "_aad_suffix",
        "_by_kid",
        "_ciphers",
        "_invalid_tag",
        "_kids",
        "_max_length",
        "cookie_name",
    )

    def __init__(
        self,
        keys: Sequence[str | bytes],
        *,
        cookie_name: str,
        max_token_length: int | None = MAX_TOKEN_LENGTH,
    ) -> None:
        # The same key check, errors and wording as Signer and the middleware options.
        key_list = keystrength.check_keys(keys)
        if not isinstance(cookie_name, str) or not cookie_name:
            raise ConfigurationError("cookie_name must be a non-empty str")
        if max_token_length is not None and (
            type(max_token_length) is not int or max_token_length <= 0
        ):
            raise ConfigurationError(
                f"max_token_length must be a positive int or None, not {max_token_length!r}"
            )
        try:
            name_bytes = cookie_name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigurationError("cookie_name is not encodable as UTF-8") from exc

        aesgcm_cls, hkdf_cls, hashes, invalid_tag = _load_backend()
        self.cookie_name = cookie_name
        # No bound is sys.maxsize, which no str length exceeds: open() keeps one comparison.
        self._max_length = sys.maxsize if max_token_length is None else max_token_length
        self._aad_suffix = name_bytes
        self._invalid_tag: type[Exception] = invalid_tag
        self._ciphers: list[AESGCM] = []
        self._kids: list[bytes] = []
        self._by_kid: dict[bytes, list[int]] = {}
        for index, key in enumerate(key_list):
            ikm = key.encode() if isinstance(key, str) else key
            enc_key = hkdf_cls(
                algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_INFO_ENC
            ).derive(ikm)
            kid = hkdf_cls(
                algorithm=hashes.SHA256(), length=KID_LENGTH, salt=_HKDF_SALT, info=_INFO_KID
            ).derive(ikm)
            self._ciphers.append(aesgcm_cls(enc_key))
            self._kids.append(kid)
            self._by_kid.setdefault(kid, []).append(index)

    def seal(self, data: dict[str, Any], *, context: bytes = b"") -> str:
        """Encrypt ``data`` under ``keys[0]`` and return the cookie value.

        A non-empty ``context`` is bound as extra associated data (after a NUL byte): the token
        then opens only with the same ``context`` (the store uses the session id).

        Raises :class:`ValueError` (or :class:`TypeError`) for data that :meth:`open` would not
        accept back: not a dict, not JSON-serialisable, NaN/Infinity, nested deeper than
        :data:`MAX_DEPTH`.
        """
        if not isinstance(data, dict):
            raise TypeError(f"session data must be a dict, not {type(data).__name__}")
        if codec.exceeds_depth(data):
            raise ValueError(f"session data is nested deeper than {MAX_DEPTH} levels")
        return self.seal_bytes(codec.to_bytes(data), context=context)  # signed mode's JSON

    def seal_bytes(self, plaintext: bytes, *, context: bytes = b"") -> str:
        """:meth:`seal` of a payload already serialised (UTF-8 JSON of an object, not nested
        deeper than :data:`MAX_DEPTH`: the engine's commit has checked its text)."""
        header = _VERSION_BYTE + self._kids[0]
        nonce = os.urandom(NONCE_LENGTH)
        aad = header + self._aad_suffix + (b"\x00" + context if context else b"")
        sealed = self._ciphers[0].encrypt(nonce, plaintext, aad)
        return b64url_encode(header + nonce + sealed)

    def open(self, token: str, *, context: bytes = b"") -> tuple[dict[str, Any], int] | None:
        """Decrypt a cookie value; return ``(data, key_index)`` or ``None``.

        ``None`` on any failure whatsoever (bad base64, unknown version, unknown key id,
        authentication failure, non-UTF-8, non-JSON, not an object, NaN/Infinity, too deep,
        longer than ``max_token_length``); this method never raises for any ``str``.
        ``key_index`` is the position in ``keys`` of the key that opened the token (non-zero:
        re-issue under the first key).
        Expiry (``_expire``) is not checked here; the middleware checks it on the result.
        """
        if not isinstance(token, str) or len(token) > self._max_length:
            return None
        raw = b64url_decode(token)
        if raw is None or len(raw) < _MIN_RAW_LENGTH or raw[0] != FORMAT_VERSION:
            return None
        header = raw[:_HEADER_LENGTH]
        candidates = self._by_kid.get(header[1:])
        if not candidates:
            return None
        nonce = raw[_HEADER_LENGTH : _HEADER_LENGTH + NONCE_LENGTH]
        sealed = raw[_HEADER_LENGTH + NONCE_LENGTH :]
        aad = header + self._aad_suffix + (b"\x00" + context if context else b"")
        for index in candidates:  # more than one only on a key-id collision or duplicate key
            try:
                plaintext = self._ciphers[index].decrypt(nonce, sealed, aad)
            except self._invalid_tag:
                continue
            data = _parse_payload(plaintext)
            return None if data is None else (data, index)
        return None


def _parse_payload(plaintext: bytes) -> dict[str, Any] | None:
    # Signed mode's parser: UTF-8, an object only, finite numbers, and no deeper than MAX_DEPTH
    # (its text is measured before it is parsed).
    return codec.loads_object_utf8(plaintext)
