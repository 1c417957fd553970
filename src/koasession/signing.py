"""Cookie signatures compatible with keygrip: HMAC of ``name=value``, base64url, no padding.

The first key (and the first algorithm) signs; every key verifies. A match found with any other
key or algorithm is reported so the middleware can re-issue the signature under the first one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from . import keystrength
from .b64 import b64url_encode as _b64url
from .errors import ConfigurationError

#: Digest algorithms a cookie may be signed with.
ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")


class Signer:
    """Signs and verifies strings with a list of keys, keygrip-style.

    ``keys`` are tried in order; the first one signs. ``algorithms`` likewise: the first one
    signs, every one listed verifies (use a list only while migrating, e.g. sha1 to sha256).
    """

    __slots__ = ("_macs", "_sign_mac")

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
        # Pre-keyed HMAC objects: copying one is cheaper than re-keying on every request.
        self._macs = [
            hmac.new(key, digestmod=getattr(hashlib, alg))
            for key in key_bytes
            for alg in algorithms
        ]
        self._sign_mac = self._macs[0]

    def sign(self, data: str) -> str:
        """Signature of ``data`` with the first key and algorithm."""
        mac = self._sign_mac.copy()
        mac.update(data.encode())
        return _b64url(mac.digest())

    def verify(self, data: str, signature: str) -> int:
        """Index of the key/algorithm pair that produced ``signature``, or -1.

        0 means the first key and algorithm (no re-issue needed). The comparison is constant
        time, on ASCII bytes only: a signature with any other character is rejected outright.
        """
        if not signature.isascii():
            return -1
        expected = signature.encode("ascii")
        message = data.encode()
        for index, base in enumerate(self._macs):
            mac = base.copy()
            mac.update(message)
            if hmac.compare_digest(_b64url(mac.digest()).encode("ascii"), expected):
                return index
        return -1
