"""The cookie payload codec: compact JSON in standard base64, as koa-session writes it.

Encoding matches ``Buffer.from(JSON.stringify(data)).toString('base64')`` byte for byte, and
:func:`dumps` is the package's one JSON policy, for cookies and stores alike, always (not only
with koa's algorithm): see its docstring for the rules and the one deliberate difference
(integers beyond 2**53 keep their exact digits). Decoding is as
lenient as Node's base64 reader (url-safe alphabet, missing padding, stray characters) so cookies
minted by koa-session are read, but it is strict about what comes out: only a JSON object of
finite numbers is a session, and every failure is reported as ``None``, never an exception.

orjson, when installed (``pip install 'koasession[orjson]'``), does the work wherever it gives
the same result as the standard library: the same bytes written, the same values read, the same
data refused. Its output is only taken after a check that it could not differ (see
:class:`_Orjson`); everything else takes the standard path.
``KOASESSION_JSON=std`` in the environment (read at import) forces the standard path;
:func:`set_json_backend` switches at run time, for tests.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import marshal
import math
import os
import re
import sys
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring
from typing import Any

#: Names the middleware writes into the payload; application data may use any other key.
META_KEYS = frozenset({"_expire", "_maxAge", "_session", "_created", "_accessed", "_device"})

_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_URLSAFE = str.maketrans("-_", "+/")


def _refuse_constant(name: str) -> Any:
    # JavaScript's JSON has no NaN or Infinity; a payload that carries them was not made by us.
    raise ValueError(f"non-standard JSON constant {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


# The C string quoter of the json module (ensure_ascii=False): escapes exactly as JSON.stringify.
_encode_string: Callable[[str], str] = encode_basestring
_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _build_c_encoder() -> Callable[[Any], str]:
    """``_encoder.encode`` without its per-call cost of building the C encoder again.

    ``JSONEncoder.encode`` makes a new C encoder object on every call (about a microsecond);
    this one is made once with the same settings, so its output is identical. No circular
    reference check (``markers=None``), because an exception could leave the markers dict
    stale for the next call: circular data ends in ``RecursionError`` instead, handled by the
    callers like every other refusal. Falls back to ``_encoder.encode`` where the json module
    has no C accelerator.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _encoder.encode
    c_encode = make(None, _encoder.default, encode_basestring, None, ":", ",", False, False, False)

    def encode(data: Any) -> str:
        return "".join(c_encode(data, 0))

    return encode


_encode = _build_c_encoder()

# A key ending in a digit is the only way ``<digit>":`` can occur in the C encoder's output (a
# quote inside a string is always escaped), so this finds every key that may be an array index.
# It runs on the reversed text, where the pattern starts with a literal that re finds quickly.
_DIGIT_KEY_REVERSED = re.compile(r':"[0-9]')
_SURROGATE = re.compile(r"([\ud800-\udbff][\udc00-\udfff])|[\ud800-\udfff]")
_ARRAY_INDEX_LIMIT = 2**32 - 1  # ECMAScript: an array index is below 2**32 - 1
_DIGITS = frozenset("0123456789")


def _fix_surrogate(match: re.Match[str]) -> str:
    pair = match.group(1)
    if pair is not None:
        # Two halves that JavaScript would read as one character: write that character.
        return chr(0x10000 + ((ord(pair[0]) - 0xD800) << 10) + ord(pair[1]) - 0xDC00)
    return f"\\u{ord(match.group()):04x}"


def js_number(value: float) -> str:
    """Format a finite float as JavaScript's ``Number.prototype.toString`` does.

    Both languages print the shortest digits that read back as the same double; only the layout
    differs (``1`` for ``1.0``, ``1e-7`` for ``1e-07``, ``100000000000000000000`` for ``1e+20``,
    ``0`` for ``-0.0``). One deliberate exception: an integral value from 2**53 up to 1e21 is
    written with its exact digits, as Python ints are (JavaScript parses both to the same double).
    """
    if value.is_integer():
        if -1e21 < value < 1e21:
            # Exact digits: the same text as JavaScript below 2**53; above, JavaScript pads the
            # shortest digits with zeros, which Python would read back as a different int.
            return int.__repr__(int(value))
    elif abs(value) >= 1e-4:
        # A non-integral double is below 2**53, so repr has no exponent from here up: the same
        # text as JavaScript's.
        return float.__repr__(value)
    text = float.__repr__(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    # value = 0.<digits> * 10**point, JavaScript's (s, k, n) notation
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    power = point - 1
    head = digits if count == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{head}e{'+' if power >= 0 else '-'}{abs(power)}"


def _is_array_index(key: str) -> bool:
    return (
        key.isascii()
        and key.isdigit()
        and (key == "0" or key[0] != "0")
        and int(key) < _ARRAY_INDEX_LIMIT
    )


def _key_text(key: object) -> str:
    # The same key coercions as the json module (which already accepted the data).
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return js_number(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _js_parts(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"out of range float values are not JSON compliant: {value!r}")
        out.append(js_number(value))
    elif isinstance(value, dict):
        items = [(k if type(k) is str else _key_text(k), v) for k, v in value.items()]
        indices = [item for item in items if item[0][:1] in _DIGITS and _is_array_index(item[0])]
        if indices:
            indices.sort(key=lambda item: int(item[0]))
            index_keys = {key for key, _ in indices}
            items = indices + [item for item in items if item[0] not in index_keys]
        out.append("{")
        for position, (key, item) in enumerate(items):
            if position:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _js_parts(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _js_parts(item, out)
        out.append("]")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _offending_path(value: Any, path: str, seen: tuple[int, ...] = ()) -> str:
    """Where in ``value`` the first value the json module refuses is, for error messages."""
    children: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        children = ((f"{path}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    seen = (*seen, id(value))
    if len(seen) > 64:
        return path
    for child_path, child in children:
        if id(child) in seen:
            return child_path  # the reference that closes a cycle
        try:
            _encoder.encode(child)
        except (TypeError, ValueError, RecursionError):
            return _offending_path(child, child_path, seen)
    return path


def _named_error(data: Any, exc: Exception) -> Exception:
    """The json module's error, saying where in the session the offending value is."""
    if isinstance(exc, RecursionError):
        # The prebuilt encoder does not look for cycles; the checking one tells a cycle apart.
        try:
            _encoder.encode(data)
        except ValueError as checked:
            if "Circular" in str(checked):
                exc = checked
        except (TypeError, RecursionError):
            pass
    if isinstance(exc, RecursionError):
        # Far past MAX_DEPTH: name the limit, as check_save_depth does for shallower excess.
        return ValueError(
            f"session data is nested too deeply to serialise; the limit is {MAX_DEPTH} levels"
        )
    path = _offending_path(data, "session")
    where = "session data" if path == "session" else path
    error = TypeError if isinstance(exc, TypeError) else ValueError
    return error(f"{where} cannot be stored as JSON: {exc}")


def _needs_js_pass(text: str, flat_keys: Iterable[str] | None = None) -> bool:
    """Whether the C encoder's ``text`` may differ from ``JSON.stringify``'s (a superset test).

    Only two things differ: a float whose repr is not JavaScript's (integral ones end in ``.0``,
    followed by ``,``, ``}``, ``]`` or nothing when the float is the whole text; others with an
    exponent contain ``e+`` or ``e-``), and a key that is an array index. Plain substring tests
    come first because they cost a fraction of a regular-expression scan. orjson's text differs
    from JavaScript's in the same ways only (checked when it is chosen,
    :func:`_orjson_writes_as_expected`).

    ``flat_keys``: the text is a flat object's (:func:`is_flat`) and these are all its keys,
    each a ``str`` (as :func:`~koasession.session.check_key` makes sure of session keys).
    An array index is then a key of digits only, which ``str.isdigit`` finds (a superset:
    ``"007"``, ``"²"``) for less than reversing the text for the regular expression, the
    costliest test of a small session's write.
    """
    if "." in text and (".0," in text or ".0}" in text or ".0]" in text or text[-2:] == ".0"):
        return True
    if "e+" in text or "e-" in text:
        return True
    if flat_keys is not None:
        return any(map(str.isdigit, flat_keys))
    return _DIGIT_KEY_REVERSED.search(text[::-1]) is not None


# -- The optional orjson backend -------------------------------------------------------------
#
# orjson is several times faster than the json module both ways, but it is not the same policy:
# it refuses lone surrogates, dict keys that are not str and integers beyond 64 bits (the
# standard path then does the work), it writes NaN and infinities as null, enum members as their
# values and UUIDs as strings (the json module refuses all three), and it lays out some floats
# differently (``1e+16``, ``1e-6``; JavaScript writes ``10000000000000000``, ``0.000001``).
# Reading, it takes integers beyond 64 bits as floats. Its strings are escaped exactly as
# JSON.stringify and the C encoder escape them (only ``"``, ``\\`` and controls below U+0020;
# ``/``, DEL and U+2028 are raw), and it keeps insertion order. Each difference is handled by
# a check below, and tests/core/test_codec*.py run every codec test with both backends.


class _Orjson:
    """orjson's ``dumps`` and ``loads``, used only where they agree with the standard path."""

    def __init__(
        self, dumps: Callable[..., bytes], option: int, loads: Callable[[str | bytes], Any]
    ) -> None:
        # orjson.dumps and its option flags, called directly: a functools.partial with a
        # keyword argument would cost more than the call itself on a small session.
        self.dumps = dumps
        self.option = option
        self.loads = loads

    def write(self, data: Any) -> str | None:
        """orjson's JSON of ``data`` when it is what the json module writes but for float layout.

        ``None`` (the standard path then decides) when orjson refuses ``data``, or may have
        written something the json module refuses. orjson writes enum members, UUIDs and
        ``orjson.Fragment`` objects; ``marshal`` refuses every object whose type is not exactly
        a built-in one (those, subclasses, ``IntEnum`` members), in C, for less than reading the
        bytes back and comparing would cost (about half, on a 400-byte session). What both
        accept is made of dicts, lists, tuples, str, int, float, bool and None only, which
        orjson writes as the json module does but for the layout of floats and for NaN and
        infinities, written as ``null``: when ``null`` occurs, the text read back must equal
        ``data`` (``None != nan``). Flat data needs no marshal check: :func:`snapshot_flat`.

        Text, since the snapshots want text (:func:`to_bytes` encodes it again), and a substring
        test on ``str`` costs a third of one on ``bytes``, which first tries the operand as an
        integer.
        """
        try:
            text: str = self.dumps(data, option=self.option).decode()
            marshal.dumps(data)
        except (TypeError, ValueError):  # orjson.JSONEncodeError; marshal: unmarshallable
            return None
        if "null" in text and self.loads(text) != data:
            return None
        return text

    def read(self, text: str | bytes, depth_unchecked: bool = False) -> Any:
        """The JSON value of ``text``, or ``_UNREAD`` for the standard path to read it.

        ``depth_unchecked``: the caller did not test ``text`` (bytes) against :data:`MAX_DEPTH`; a
        value that is not flat is then taken only when ``text`` has too few brackets to nest
        that deep (the first test of :func:`too_deep`, which the standard path makes in full).
        orjson itself stops at 1,024 levels, so reading first is safe.

        A flat object of strings, integers, booleans and nulls is taken as read (see
        :data:`_READ_BACK_TYPES`). Any other value is taken only when orjson writes it back as
        exactly ``text``: then every number and string of ``text`` was in the one form that
        both parsers read alike (an integer beyond 64 bits, which orjson reads as a float, comes
        back with an exponent; duplicate keys, non-shortest floats and escapes JSON.stringify
        does not write come back otherwise). What koa-session or this package wrote passes;
        anything else, including all orjson refuses (lone surrogate escapes, NaN, 1e400), gets
        the standard path's verdict.
        """
        try:
            value = self.loads(text)
        except (TypeError, ValueError):  # orjson.JSONDecodeError is a ValueError
            return _UNREAD
        if type(value) is dict and _READ_BACK_TYPES.isdisjoint(map(type, value.values())):
            return value  # see _READ_BACK_TYPES: read alike, no need to write it back
        if depth_unchecked:
            assert isinstance(text, bytes)  # loads_object_utf8's payload
            if text.count(b"{") + text.count(b"[") > MAX_DEPTH:
                return _UNREAD
        try:
            again = self.dumps(value, option=self.option)
        except (TypeError, ValueError):
            return _UNREAD
        if again != (text if isinstance(text, bytes) else text.encode()):
            return _UNREAD
        return value


#: The value types that send an object orjson read to the read-back. An object whose values
#: have none of them (so only str, int, bool and None: the commonest session) is read by
#: orjson exactly as the standard path reads it, whatever the text's spelling. Both parsers
#: refuse the same malformed text, keep the last of duplicate keys and decode the same escapes;
#: orjson refuses lone surrogate escapes (the standard path then reads them). Their only silent
#: difference is numeric: orjson reads an integer beyond 64 bits as a float, so an object
#: holding a float (or a container, which may hold one) is written back to check. (A test of
#: what is absent: ``isdisjoint`` builds no set, where ``issuperset`` would build one from the
#: values' types.)
_READ_BACK_TYPES = frozenset({dict, list, float})


_UNREAD: Any = object()
#: The orjson backend when in use (see :func:`set_json_backend`).
_orjson: _Orjson | None = None


#: Floats at each of JavaScript's and Python's layout boundaries, for the check below.
_LAYOUT_PROBES = (1.0, -0.0, 0.5, -2.5, 123.456, 0.1 + 0.2, 1e-7, 1.5e-7, 1e-6, 1e-5, 1e-4)
_LAYOUT_PROBES_LARGE = (1e15, 1e16, 1.5e16, 2.0**53, 2.0**60, 1e20, 1e21, 1.5e21, 1e22)
_LAYOUT_PROBES_EXTREME = (5e-324, 2.2250738585072014e-308, 1.7976931348623157e308)
_TEXT_PROBE = "".join(map(chr, range(0x80))) + "\x7f\x80\x9f\u2028\u2029\ufeff\uffff\U0001f600/"


def _orjson_writes_as_expected(dumps: Callable[[Any], bytes]) -> bool:
    """Whether this orjson writes floats and strings as the fast paths assume.

    Every float must be written as JavaScript writes it or in a form :func:`_needs_js_pass`
    catches, and strings exactly as the C encoder writes them. True for the orjson versions
    tested; a future release that changed its layout would quietly fall back to the standard
    path rather than write different bytes.
    """
    for value in (*_LAYOUT_PROBES, *_LAYOUT_PROBES_LARGE, *_LAYOUT_PROBES_EXTREME):
        for number in (value, -value):
            text = dumps([number]).decode()
            if text != f"[{js_number(number)}]" and not _needs_js_pass(text):
                return False
    return dumps(_TEXT_PROBE).decode() == _encode(_TEXT_PROBE)


def json_backend() -> str:
    """The JSON backend in use: ``"orjson"`` or ``"std"`` (the json module)."""
    return "std" if _orjson is None else "orjson"


def set_json_backend(name: str) -> str:
    """Use ``name``'s JSON backend from now on and return the previous one's name.

    ``"std"``: the json module only. ``"orjson"``: orjson where it gives the same result
    (``ImportError`` when it is not installed or not usable). ``"auto"``: orjson when it can be
    used, else the json module. The environment variable ``KOASESSION_JSON`` (``std``,
    ``orjson`` or ``auto``, the default) is applied this way at import; this function is for
    tests and benchmarks, which run both ways.
    """
    global _orjson
    if name not in ("std", "orjson", "auto"):
        raise ValueError(f"unknown JSON backend {name!r}: use 'std', 'orjson' or 'auto'")
    previous = json_backend()
    _orjson = None
    if name == "std":
        return previous
    try:
        import orjson
    except ImportError:
        if name == "orjson":
            raise ImportError("the orjson JSON backend needs orjson installed") from None
        return previous
    # Subclasses of str, int, dict and list, dataclasses and datetimes go to the standard
    # path, which writes or refuses them as it always has (orjson has its own ways).
    option = (
        orjson.OPT_PASSTHROUGH_SUBCLASS
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
    )
    if not _orjson_writes_as_expected(functools.partial(orjson.dumps, option=option)):
        if name == "orjson":
            raise ImportError(f"orjson {orjson.__version__} writes floats or strings unexpectedly")
        return previous
    _orjson = _Orjson(orjson.dumps, option, orjson.loads)
    return previous


def snapshot(data: Any) -> str:
    """A cheap serialisation for change detection: equal data gives equal text.

    It is the C encoder's output, or orjson's when that is the same but for the layout of some
    floats; not the wire form (:func:`dumps`), but :func:`encode_payload` makes it that with the
    same test as :func:`dumps`. It raises the same errors as :func:`dumps`.
    """
    fast = _orjson
    if fast is not None:
        text = fast.write(data)
        if text is not None:
            return text
    try:
        return _encode(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _named_error(data, exc) from exc


def snapshot_flat(data: dict[str, Any]) -> str:
    """:func:`snapshot` of a dict with str keys that :func:`is_flat` accepts."""
    fast = _orjson
    if fast is not None:
        # _Orjson.write without its marshal check, moot here (the values are exactly str,
        # int, float, bool or None), and without its call: this runs on every saving request.
        try:
            text: str = fast.dumps(data, option=fast.option).decode()
        except (TypeError, ValueError):  # an integer beyond 64 bits, a str subclass key
            return snapshot(data)
        if "null" not in text or fast.loads(text) == data:  # NaN or infinity: see write()
            return text
    return snapshot(data)


def dumps(data: Any) -> str:
    """Serialise ``data`` as compact JSON, byte for byte what ``JSON.stringify`` writes.

    This is the one JSON policy of the package (cookies and every bundled store), whatever the
    signing algorithm, so a Koa app sharing cookies or a store reads exactly what it would have
    written itself:

    - keys that are array indices (``"0"``, ``"10"``; canonical integers below 2**32 - 1) come
      first in ascending numeric order, then the other keys in insertion order, at every depth;
    - floats are written as JavaScript writes numbers (``1`` not ``1.0``, ``1e-7``, ``1e+21``,
      ``0`` for ``-0.0``), so an integral float reads back as an ``int``;
    - text is UTF-8 (non-BMP characters raw), and only lone surrogates are escaped (``\\ud800``);
    - integers (ints, and integral floats below 1e21) are written with their exact digits, also
      beyond 2**53 where JavaScript would print the double's shortest digits padded with zeros
      (JavaScript parses both to the same double; Python reads back an equal number);
    - NaN and infinities are refused (``JSON.stringify`` would silently write ``null``).

    The common case (no floats, no keys ending in a digit, no surrogates) is the C encoder's
    (or orjson's) output after a few substring tests; only data that needs it takes the exact,
    slower pass.

    Raises ``TypeError`` or ``ValueError`` for data JSON cannot represent, naming where the
    offending value is (``session['cart'][2] cannot be stored as JSON: ...``).
    """
    fast = _orjson
    if fast is not None:
        text = fast.write(data)
        if text is not None:  # no lone surrogates: orjson refuses them
            return _js_pass(data) if _needs_js_pass(text) else text
    text = _js_text(data)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = _SURROGATE.sub(_fix_surrogate, text)
    return text


def _js_text(data: Any) -> str:
    try:
        text: str = _encode(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _named_error(data, exc) from exc
    if _needs_js_pass(text):
        text = _js_pass(data)
    return text


def _js_pass(data: Any) -> str:
    parts: list[str] = []
    _js_parts(data, parts)
    return "".join(parts)


#: Deepest nesting of objects/arrays a session may have, the top-level object counting as 1.
#: Sessions are shallow; deeper data is refused when saved and deeper input when loaded, before
#: anything recursive (the JSON decoder, change detection, re-encoding) can run out of stack.
MAX_DEPTH = 32

# The only characters that matter to nesting: brackets, and what opens, closes or escapes strings.
_STRUCTURE = re.compile(r'[\[\]{}"\\]')


def nesting_depth(text: str, stop: int | None = None) -> int:
    """The deepest bracket nesting of JSON ``text``, brackets inside strings not counted.

    One linear pass over the structural characters, no recursion, whatever the input (valid JSON
    or not). With ``stop``, returns as soon as the depth exceeds it.
    """
    depth = deepest = 0
    in_string = False
    skip = -1  # position of a character escaped by a backslash inside a string
    for match in _STRUCTURE.finditer(text):
        ch = match.group()
        if in_string:
            pos = match.start()
            if pos == skip:
                continue
            if ch == "\\":
                skip = pos + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{" or ch == "[":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop is not None and depth > stop:
                    return depth
        elif ch == "}" or ch == "]":
            depth -= 1
    return deepest


def too_deep(text: str) -> bool:
    """True when JSON ``text`` nests objects/arrays more than :data:`MAX_DEPTH` levels."""
    # Fewer brackets than the limit cannot nest past it: two C-speed counts for most sessions.
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    return nesting_depth(text, MAX_DEPTH) > MAX_DEPTH


#: The types of a JSON value that holds no other value.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def is_flat(data: dict[str, Any]) -> bool:
    """True when every value of ``data`` is a ``str``, ``int``, ``float``, ``bool`` or ``None``
    (exactly those types): nothing in it can change in place, and it is one level deep."""
    # A loop, not _SCALARS.issuperset(map(type, ...)), which builds a set of the types first:
    # faster up to about eight values, where most sessions are (and all() over a generator
    # is slower than either).
    for value in data.values():  # noqa: SIM110
        if type(value) not in _SCALARS:
            return False
    return True


def exceeds_depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` nests dicts/lists more than ``limit`` levels (iterative, no recursion).

    For data that did not come through :func:`loads_object`: a custom ``decode`` result or what
    a store returns. A self-referencing structure counts as too deep.
    """
    if type(value) is dict and is_flat(value):
        return limit < 1  # the common session, without the walk
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, (dict, list, tuple)):
                stack.append((child, depth + 1))
    return False


def check_save_depth(text: str) -> None:
    """Raise ``ValueError`` naming the limit when the JSON ``text`` of a session is too deep.

    Saving such data would write a cookie or store entry that the next request refuses.
    """
    if too_deep(text):
        raise ValueError(
            f"session data is nested {nesting_depth(text)} levels deep; the limit is {MAX_DEPTH} "
            "(deeper data would be refused when read back)"
        )


def loads(text: str) -> Any:
    """Parse JSON ``text`` of any type, with the payload rules (depth limit, no NaN).

    Raises ``ValueError`` for anything that is not such JSON.
    """
    if too_deep(text):
        raise ValueError(f"nested more than {MAX_DEPTH} levels")
    fast = _orjson
    if fast is not None:
        value = fast.read(text)
        if value is not _UNREAD:
            return value
    try:
        return _decoder.decode(text)
    except RecursionError as exc:
        raise ValueError(str(exc)) from exc


def loads_object(text: str) -> dict[str, Any] | None:
    """Parse ``text`` as a JSON object; ``None`` for anything else or any error."""
    if too_deep(text):
        return None  # before the decoder, which recurses once per level
    fast = _orjson
    if fast is not None:
        value = fast.read(text)
        if value is not _UNREAD:
            return value if isinstance(value, dict) else None
    try:
        # raw_decode skips decode()'s two whitespace scans; text it does not consume entirely
        # (surrounding whitespace, or garbage) goes through decode() for the usual verdict.
        value, end = _decoder.raw_decode(text)
        if end != len(text):
            value = _decoder.decode(text)
    except (ValueError, RecursionError):
        try:
            value = _decoder.decode(text)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


def to_bytes(data: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes (``Buffer.from(JSON.stringify(data))``)."""
    fast = _orjson
    if fast is not None:
        fast_text = fast.write(data)
        if fast_text is not None:
            return (_js_pass(data) if _needs_js_pass(fast_text) else fast_text).encode()
    try:
        text: str = _encode(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise _named_error(data, exc) from exc
    # _needs_js_pass, inlined on the hot path of every cookie write
    if (
        ("." in text and (".0," in text or ".0}" in text or ".0]" in text or text[-2:] == ".0"))
        or "e+" in text
        or "e-" in text
        or _DIGIT_KEY_REVERSED.search(text[::-1]) is not None
    ):
        text = _js_pass(data)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub(_fix_surrogate, text).encode()


def encode(data: dict[str, Any]) -> str:
    """Encode a session payload as koa-session does: base64 of compact JSON."""
    return binascii.b2a_base64(to_bytes(data), newline=False).decode("ascii")


def encode_payload(data: dict[str, Any], data_text: str, metadata: dict[str, Any]) -> str:
    """:func:`encode` of ``{**data, **metadata}``, given ``data_text == snapshot(data)``.

    A cookie write has just serialised the data to see whether it changed; appending the
    metadata to that text saves serialising everything a second time (the C encoder's fixed
    cost is about a microsecond). ``metadata`` holds the package's own names (never array
    indices, never keys of ``data``) with finite numbers or ``True`` as values.
    """
    raw = payload_bytes(data, data_text, metadata)
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def payload_bytes(data: dict[str, Any], data_text: str, metadata: dict[str, Any]) -> bytes:
    """:func:`to_bytes` of ``{**data, **metadata}``, given ``data_text == snapshot(data)``.

    See :func:`encode_payload`; an encrypted cookie seals these bytes.
    """
    joined = ",".join(
        [
            f'"{key}":{value}' if type(value) is int else f'"{key}":{_scalar(value)}'
            for key, value in metadata.items()
        ]
    )
    return join_payload(data, data_text, joined)


def join_payload(
    data: dict[str, Any], data_text: str, metadata_text: str, flat: bool = False
) -> bytes:
    """:func:`payload_bytes` with the metadata already written as JSON members
    (``'"_expire":1700000000000,"_maxAge":86400000'``; empty for none). ``flat``: ``data``
    passes :func:`is_flat` and its keys are ``str``, so its only keys are its own."""
    text = _js_pass(data) if _needs_js_pass(data_text, data if flat else None) else data_text
    if metadata_text:
        # '{"a":1}' becomes '{"a":1,<metadata>}', and '{}' becomes '{<metadata>}'
        text = f"{text[:-1]},{metadata_text}}}" if len(text) > 2 else f"{{{metadata_text}}}"
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub(_fix_surrogate, text).encode()


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if type(value) is float:
        return js_number(value)
    # ``_device`` (an object) and whatever a payload carried under a reserved name
    return dumps(value)


if sys.version_info >= (3, 11):

    def strict_b64decode(value: str) -> bytes:
        """Decode canonical standard base64; ``binascii.Error`` for anything else."""
        # binascii's strict mode is b64decode(validate=True) without its two Python-level
        # calls and regular expression: this runs for every cookie read.
        return binascii.a2b_base64(value, strict_mode=True)

else:  # pragma: no cover - Python 3.10 has no strict_mode

    def strict_b64decode(value: str) -> bytes:
        """Decode canonical standard base64; ``binascii.Error`` for anything else."""
        return base64.b64decode(value, validate=True)


def lenient_b64decode(value: str) -> bytes | None:
    """Decode base64 the way Node's ``Buffer.from(s, 'base64')`` does, or return ``None``.

    Node reads both alphabets, stops at the first ``=``, skips characters outside the alphabet
    and drops a trailing lone character.
    """
    if len(value) % 4 == 0:
        try:
            return strict_b64decode(value)  # the common, canonical case
        except (binascii.Error, ValueError):
            pass
    head = value.partition("=")[0].translate(_URLSAFE)
    if not _B64_ALPHABET.issuperset(head):
        head = "".join(ch for ch in head if ch in _B64_ALPHABET)
    extra = len(head) % 4
    if extra == 1:
        head = head[:-1]
    elif extra:
        head += "=" * (4 - extra)
    try:
        return base64.b64decode(head, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode(value: str) -> dict[str, Any] | None:
    """Decode a koa-session cookie value; ``None`` when it is not a session payload."""
    raw = lenient_b64decode(value)
    if raw is None:
        return None
    return loads_object_utf8(raw)


def loads_object_utf8(raw: bytes) -> dict[str, Any] | None:
    """:func:`loads_object` of the UTF-8 text ``raw``; ``None`` also when it is not UTF-8.

    A cookie payload arrives as bytes (base64-decoded or decrypted): orjson reads them as they
    are, which saves decoding them to text and encoding that again to compare.
    """
    fast = _orjson
    if fast is not None:
        # Straight from the bytes (orjson checks the UTF-8).
        data = fast.read(raw, True)  # depth_unchecked
        if data is not _UNREAD:
            return data if isinstance(data, dict) else None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return None
    return loads_object(text)


def decode_value(value: str) -> Any:
    """The JSON value inside a cookie value, whatever its type (``null``, ``0``, a list...).

    For telling a payload that decodes to a non-object (koa reports a falsy one as ``missed``)
    from one that does not decode at all: raises ``ValueError`` then.
    """
    raw = lenient_b64decode(value)
    if raw is None:
        raise ValueError("not base64")
    try:
        text = raw.decode()
        if too_deep(text):
            raise ValueError(f"nested more than {MAX_DEPTH} levels")
        return _decoder.decode(text)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from exc


set_json_backend(os.environ.get("KOASESSION_JSON", "auto").strip().lower() or "auto")
