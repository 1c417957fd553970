"""Optional rich values in sessions: a tagged-JSON serializer, in the manner of Flask's.

Session data travels as JSON (:mod:`koasession.codec`), which has no dates, UUIDs, decimals,
bytes, sets or tuples. :class:`TaggedSerializer` turns such values into **JSON-safe tagged
structures** and back, and stops there: the result is plain ``dict``/``list``/``str``/numbers
that the one JSON policy (:func:`koasession.codec.dumps`) then writes, so change detection,
cookies and every store see the same text and go through the same path.

It is **off by default** because koa-session (and any other reader of the raw JSON, such as a
Koa app sharing a Redis store) does not know the tags: it would see ``{" dt": "2024-..."}``
where the Python app sees a ``datetime``. Turn it on only when no Koa app reads the sessions.

Tagged form
===========

A tagged value is a JSON object with exactly one key, the tag, which starts with a space
(:data:`TAG_MARKER`); its value is the JSON form of the Python value:

============  ==========  ==========================================================
Python type   tag         JSON form
============  ==========  ==========================================================
datetime      ``" dt"``   ``datetime.isoformat()`` (naive stays naive, an offset is kept)
date          ``" da"``   ``date.isoformat()``
UUID          ``" u"``    the canonical hyphenated text
Decimal       ``" dec"``  ``str(decimal)``, exact
bytes         ``" b"``    standard base64
tuple         ``" t"``    a list of tagged items
set           ``" s"``    a list of tagged items, in a stable order
frozenset     ``" fs"``   a list of tagged items, in a stable order
============  ==========  ==========================================================

A user dict that itself has exactly one key starting with the marker would read back as a tag,
so it is escaped as ``{" di": {key: value}}``. The top-level session mapping is never tagged or
escaped (only its values are), so the middleware can merge its metadata keys into it freely.

Limits: a ``datetime`` with a named zone (``ZoneInfo``) reads back with a fixed UTC offset (the
same instant); ``bytearray`` and other types are refused with ``TypeError``; each tagged value
adds one level of nesting, which counts towards :data:`koasession.codec.MAX_DEPTH`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from . import codec

__all__ = ["TAG_MARKER", "Serializer", "TaggedSerializer"]

#: The first character of every tag key; user keys starting with it are escaped when ambiguous.
TAG_MARKER = " "

_ESCAPE = " di"
# Bounds recursion on user data (cycles included): twice the codec's limit, since tags nest.
_MAX_DEPTH = 2 * codec.MAX_DEPTH


class Serializer(Protocol):
    """What the middleware's ``serializer=`` option takes: a pair of pure mappings.

    ``to_json_safe`` turns the session mapping into one the codec can write; ``from_json_safe``
    undoes it on data the codec read. Both return new dicts and leave their argument untouched.
    """

    def to_json_safe(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-safe form of session ``data``."""
        ...

    def from_json_safe(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Session data back from its JSON-safe form."""
        ...


class TaggedSerializer:
    """Tagged JSON for ``datetime``, ``date``, ``UUID``, ``Decimal``, ``bytes``, sets and tuples.

    ``to_json_safe`` raises ``TypeError`` for values it cannot represent and ``ValueError`` for
    data nested too deeply (or cyclic). ``from_json_safe`` raises ``ValueError`` for a malformed
    or unknown tag: the data did not come from this serializer, so the caller should treat the
    session as invalid. See the module docstring for the format and why it is off by default.
    """

    __slots__ = ()

    def to_json_safe(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-safe, tagged form of session ``data`` (keys kept, values tagged)."""
        return {key: self._tag(value, 1) for key, value in data.items()}

    def from_json_safe(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Session data with every tagged value turned back into its Python type."""
        return {key: self._untag(value, 1) for key, value in data.items()}

    def _tag(self, value: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError(f"session data is nested more than {_MAX_DEPTH} levels (or cyclic)")
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        if isinstance(value, dict):
            items = {key: self._tag(item, depth + 1) for key, item in value.items()}
            if len(items) == 1:
                (only,) = items
                if isinstance(only, str) and only.startswith(TAG_MARKER):
                    return {_ESCAPE: items}
            return items
        if isinstance(value, list):
            return [self._tag(item, depth + 1) for item in value]
        if isinstance(value, tuple):
            return {" t": [self._tag(item, depth + 1) for item in value]}
        if isinstance(value, (set, frozenset)):
            tag = " fs" if isinstance(value, frozenset) else " s"
            tagged = [self._tag(item, depth + 1) for item in value]
            # Set order varies between processes (hash randomisation); a stable order keeps the
            # text, and so change detection, the same for equal sets.
            tagged.sort(key=codec.dumps)
            return {tag: tagged}
        if isinstance(value, _dt.datetime):  # before date: a datetime is a date
            return {" dt": value.isoformat()}
        if isinstance(value, _dt.date):
            return {" da": value.isoformat()}
        if isinstance(value, uuid.UUID):
            return {" u": str(value)}
        if isinstance(value, decimal.Decimal):
            return {" dec": str(value)}
        if isinstance(value, bytes):
            return {" b": base64.b64encode(value).decode("ascii")}
        raise TypeError(f"TaggedSerializer cannot store a value of type {type(value).__name__}")

    def _untag(self, value: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError(f"session data is nested more than {_MAX_DEPTH} levels")
        if isinstance(value, list):
            return [self._untag(item, depth + 1) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, inner),) = value.items()
            if isinstance(key, str) and key.startswith(TAG_MARKER):
                return self._from_tag(key, inner, depth)
        return {key: self._untag(item, depth + 1) for key, item in value.items()}

    def _from_tag(self, tag: str, inner: Any, depth: int) -> Any:
        try:
            if tag == _ESCAPE and isinstance(inner, dict):
                return {key: self._untag(item, depth + 1) for key, item in inner.items()}
            if tag in (" t", " s", " fs") and isinstance(inner, list):
                items = [self._untag(item, depth + 1) for item in inner]
                if tag == " t":
                    return tuple(items)
                return set(items) if tag == " s" else frozenset(items)
            if isinstance(inner, str):
                if tag == " dt":
                    return _dt.datetime.fromisoformat(inner)
                if tag == " da":
                    return _dt.date.fromisoformat(inner)
                if tag == " u":
                    return uuid.UUID(inner)
                if tag == " dec":
                    return decimal.Decimal(inner)
                if tag == " b":
                    return base64.b64decode(inner, validate=True)
        except (ValueError, TypeError, ArithmeticError, binascii.Error) as exc:
            # TypeError: an unhashable item in a set (only a forged payload has one).
            raise ValueError(f"malformed tagged value {tag!r}: {exc}") from exc
        raise ValueError(f"unknown or malformed tag {tag!r}")
