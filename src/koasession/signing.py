"""Cookie signatures compatible with keygrip: HMAC of ``name=value``, base64url, no padding.

The first key (and the first algorithm) signs; every key verifies. A match found with any other
key or algorithm is reported so the middleware can re-issue the signature under the first one.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from . import keystrength
from .b64 import DROPPED as _DROPPED
from .b64 import TO_URLSAFE as _TO_URLSAFE
from .b64 import b64url_encode_ascii
from .errors import ConfigurationError

#: Digest algorithms a cookie may be signed with.
ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")


def _hmac_states(key: bytes, algorithm: str) -> tuple[Any, Any]:
    """The inner and outer hash states of HMAC(key) before any message (RFC 2104).

    HMAC(K, m) = H((K' ^ opad) || H((K' ^ ipad) || m)), K' being the key hashed if longer than
    a block, then zero-padded to one. Copying these two keyed states per message gives the
    same digest as ``hmac`` at about half its cost (measured: 1.3 us against 2.2 us for
    ``hmac.new(key).copy()``), using only public hashlib API.
    """
    make = getattr(hashlib, algorithm)
    block = make().block_size
    if len(key) > block:
        key = make(key).digest()
    key = key.ljust(block, b"\0")
    inner = make(key.translate(bytes(x ^ 0x36 for x in range(256))))
    outer = make(key.translate(bytes(x ^ 0x5C for x in range(256))))
    return inner, outer


class Signer:
    """Signs and verifies strings with a list of keys, keygrip-style.

    ``keys`` are tried in order; the first one signs. ``algorithms`` likewise: the first one
    signs, every one listed verifies (use a list only while migrating, e.g. sha1 to sha256).
    """

    __slots__ = ("_macs", "_sign_mac")
    # Each MAC is the (inner, outer) hash states of _hmac_states, copied per message.

    def __init__(self, keys: Sequence[str | bytes], algorithms: Sequence[str] = ("sha256",)):
        # The same key check, errors and wording as CookieCipher and the middleware options.
        key_list = keystrength.check_keys(keys)
        unknown = [alg for alg in algorithms if alg not in ALGORITHMS]
        if isinstance(algorithms, str) or not algorithms or unknown:
            raise ConfigurationError(
                f"algorithms must be a non-empty list drawn from {list(ALGORITHMS)}; "
                f"got {algorithms!r}"
            )
        key_bytes = [k.encode() if isinstance(k, str) else k for k in key_list]
        self._macs = [_hmac_states(key, alg) for key in key_bytes for alg in algorithms]
        self._sign_mac = self._macs[0]

    def sign(self, data: str) -> str:
        """Signature of ``data`` with the first key and algorithm."""
        inner, outer = self._sign_mac
        inner = inner.copy()
        inner.update(data.encode())
        outer = outer.copy()
        outer.update(inner.digest())
        # b64url_encode in line: signing runs twice per counter request (verify, then sign).
        return binascii.b2a_base64(outer.digest()).translate(_TO_URLSAFE, _DROPPED).decode()

    def verify_first(self, data: str, signature: str) -> bool:
        """Whether the first key and algorithm produced ``signature`` (:meth:`verify` is 0)."""
        # compare_digest takes str only when ASCII: anything else is no signature of ours.
        return signature.isascii() and hmac.compare_digest(self.sign(data), signature)

    def verify(self, data: str, signature: str) -> int:
        """Index of the key/algorithm pair that produced ``signature``, or -1.

        0 means the first key and algorithm (no re-issue needed). The comparison is constant
        time, on ASCII bytes only: a signature with any other character is rejected outright.
        """
        if not signature.isascii():
            return -1
        expected = signature.encode("ascii")
        message = data.encode()
        for index, (inner, outer) in enumerate(self._macs):
            inner = inner.copy()
            inner.update(message)
            outer = outer.copy()
            outer.update(inner.digest())
            if hmac.compare_digest(b64url_encode_ascii(outer.digest()), expected):
                return index
        return -1
