"""The fast lane for the default cookie: signed base64 JSON (or encrypted), no hook in the way.

Most applications run the default configuration: cookie mode, signed (or encrypted with
``encrypt=True``), no custom ``encode`` or ``decode``, compression, chunking, serializer, ``valid``
hook or timeouts. For them, reading a good cookie and writing the next one are always the same
few steps, and this module takes each in one function instead of the general path's dozen
(:mod:`koasession.loading` and :mod:`koasession.responding` over :mod:`koasession.cookieformat`,
:mod:`koasession.codec` and :mod:`koasession.decisions`), which every request that reads or
saves its session pays for (issue 12).

Writing makes the same Set-Cookie lines :mod:`koasession.cookieformat` would (the value and its
``.sig``, or the sealed value alone), with the attribute text built once per second; a line that
may come near the browser limit is left to the general path and its ``on_oversize`` rule.

It only ever *accepts*: a cookie it does not find plainly valid (absent, unsigned, signed or
sealed by an older key, not canonical base64, not sealed by us, not a JSON object, expired, a
``_maxAge`` other than the configured lifetime or none, any metadata beyond ``_expire``,
``_maxAge`` and ``_created``, any number it would have to think about) gets ``None``, and
the general path reads it again and decides, with its events and reasons. So the verdicts
cannot drift apart: at worst a cookie takes the slow path. ``tests/core/test_plaincookie.py``
checks that both paths leave the same session for a corpus of good and hostile cookies, signed
and encrypted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import codec, cookieformat
from .decisions import MAX_TIME_MS

if TYPE_CHECKING:
    from .crypto import CookieCipher
    from .options import SessionOptions
    from .signing import Signer

#: ``_created`` absent from a payload (where a null one is refused).
_ABSENT: Any = object()
#: What :meth:`PlainCookie.read` finds in a plainly valid cookie: its data with the metadata
#: taken out, its ``_expire``, and its ``_created`` (``None`` when it has none).
Read = tuple[dict[str, Any], int, "int | None"]
#: The longest value plus attributes this path writes: the rest of a line (the names, ``=`` and
#: ``; ``) fits in 100 characters, so a line stays under the browser limit.
_LINE_ROOM = cookieformat.COOKIE_LINE_LIMIT - 100


class PlainCookie:
    """Reads and writes the session cookie of the default configuration (see the module doc)."""

    __slots__ = (
        "_attributes",
        "_cipher",
        "_max_age",
        "_name",
        "_options",
        "_read_max_age",
        "_secure",
        "_sig_name",
        "_signer",
        "max_age_member",
        "max_age_ms",
    )

    def __init__(
        self, options: SessionOptions, signer: Signer | None, cipher: CookieCipher | None = None
    ) -> None:
        self._options = options
        self._name = options.key
        self._sig_name = options.key + ".sig"
        #: Exactly one of the two: a signed cookie (and its .sig), or an encrypted one.
        self._signer = signer
        self._cipher = cipher
        assert not isinstance(options.max_age, str)  # see for_options
        self._max_age = int(options.max_age)
        #: The payload's ``_maxAge`` (ms, as the general engine's metadata rounds it) and its JSON
        #: member after ``_expire``, made once rather than per saved cookie.
        self.max_age_ms = round(options.max_age * 1000)
        self.max_age_member = f',"_maxAge":{self.max_age_ms}'
        #: The one ``_maxAge`` a cookie on this path may carry: the integer ``m`` with
        #: ``m / 1000 == options.max_age``, which the general engine reads as the configured
        #: lifetime (none when the lifetime has a fraction of a millisecond; at the 400-day cap
        #: the general engine also takes larger ones, which this path leaves to it). Compared as
        #: an integer, it needs no range test first (a hostile ``_maxAge`` of 10**400 cannot
        #: be divided into a float).
        self._read_max_age = self.max_age_ms if self.max_age_ms / 1000 == options.max_age else None
        self._secure = options.secure
        #: (expiry second, secure, the attribute text made for them), reused within a second.
        self._attributes: tuple[int, bool, str] = (-1, False, "")

    @classmethod
    def for_options(
        cls, options: SessionOptions, signer: Signer | None, cipher: CookieCipher | None = None
    ) -> PlainCookie | None:
        """The fast lane when ``options`` are plain enough for it, else ``None``.

        ``signer`` and ``cipher`` are the configuration's: a signed cookie needs the one, an
        encrypted cookie (``encrypt=True``) the other.
        """
        plain = (
            not options.uses_store
            and options.encode is None
            and options.decode is None
            and not options.compress
            and not options.chunk
            and options.serializer is None
            and options.valid is None
            and options.absolute_timeout is None
            and options.idle_timeout is None
            and options.device_policy is None
            and not isinstance(options.max_age, str)  # "session": no _expire to read or write
        )
        if not plain:
            return None
        if options.encrypt:
            return cls(options, None, cipher) if cipher is not None else None
        return cls(options, signer) if signer is not None else None

    def read(self, jar: dict[str, str], now_ms: float) -> Read | None:
        """A plainly valid session cookie in ``jar`` (see :data:`Read`), or ``None``.

        Plainly valid includes the configured lifetime: a ``_maxAge`` of the cookie's own
        makes the request's options differ, which is the general path's to handle.
        """
        value = jar.get(self._name)
        if not value:
            return None
        cipher = self._cipher
        if cipher is not None:
            opened = cipher.open(value)
            if opened is None or opened[1] != 0:
                return None  # not ours, or an older key's (re-sealed by the slow path)
            data: dict[str, Any] | None = opened[0]
        else:
            signature = jar.get(self._sig_name)
            if signature is None or len(value) % 4:
                return None
            assert self._signer is not None
            if not self._signer.verify_first(f"{self._name}={value}", signature):
                return None  # a bad signature, or an older key's (re-signed by the slow path)
            try:
                raw = codec.strict_b64decode(value)
            except ValueError:  # binascii.Error, or text that is not ASCII
                return None
            data = codec.loads_object_utf8(raw)
        if data is None:
            return None
        # Taken out as they are checked: the dict is this request's own, fresh from the decoder,
        # and the caller wants the data without them. On a refusal it is dropped (the general
        # path decodes the cookie again).
        try:
            expire = data.pop("_expire")
            max_age = data.pop("_maxAge")  # koa-session and this package write both
        except KeyError:
            return None
        created = data.pop("_created", _ABSENT)
        if (
            type(expire) is not int
            or type(max_age) is not int  # refuses bool and float too
            or not now_ms <= expire <= MAX_TIME_MS
            # The configured lifetime: in range, as options.normalize_max_age caps it.
            or max_age != self._read_max_age
            # The other reserved names, one `in` each: cheaper than a set operation.
            or "_session" in data
            or "_accessed" in data
            or "_device" in data
        ):
            return None
        if created is _ABSENT:
            return data, expire, None
        if type(created) is not int or not 0 <= created <= MAX_TIME_MS:
            return None  # a null _created included, which the general path weighs
        return data, expire, created

    def lines(self, value: str, expire_ms: int, is_secure: bool) -> list[tuple[str, str]] | None:
        """The two Set-Cookie lines for a session ``value`` expiring at ``expire_ms``.

        ``None`` when the general path must write them: ``secure=True`` over plain HTTP (it
        refuses, as koa does), or a line that may come near the size limit.
        """
        secure = self._secure
        if secure is None:
            secure = is_secure
        elif secure and not is_secure:
            return None
        second = expire_ms // 1000
        cached_second, cached_secure, attributes = self._attributes
        if second != cached_second or secure != cached_secure:
            attributes = cookieformat.attributes(
                self._options, secure=secure, expires=expire_ms / 1000, max_age=self._max_age
            )
            # One store of the three together: a thread (WSGI) reads a consistent triple.
            self._attributes = (second, secure, attributes)
        if len(value) + len(attributes) > _LINE_ROOM:
            return None
        name = self._name
        pair = f"{name}={value}"
        if self._signer is None:  # encrypted: the value authenticates itself
            return [(name, f"{pair}; {attributes}")]
        return [
            (name, f"{pair}; {attributes}"),
            (self._sig_name, f"{self._sig_name}={self._signer.sign(pair)}; {attributes}"),
        ]
