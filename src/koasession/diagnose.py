"""Verify and decode a session cookie offline, and say exactly why it is rejected.

This is the logic behind ``koasession inspect COOKIE --keys ...``. It follows the same steps as
the middleware (and reuses its modules: :mod:`~koasession.cookies` to parse the header,
:class:`~koasession.signing.Signer` to verify, :mod:`~koasession.codec` to decode,
:class:`~koasession.crypto.CookieCipher` to open encrypted cookies), but instead of quietly
starting a new session it stops at the first failure and explains it, with hints for the usual
mistakes (wrong algorithm, old cookie name, milliseconds, an encrypted or store-mode cookie
inspected as a signed one).

>>> d = diagnose("koa.sess=...; koa.sess.sig=...", keys=["..."])
>>> print(format_diagnosis(d))
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from . import codec, cookieformat, decisions
from .b64 import b64url_decode
from .cookies import parse_cookie_header
from .ids import ID_RULE, is_valid_id
from .options import MIN_KEY_BYTES
from .signing import ALGORITHMS

__all__ = ["Diagnosis", "diagnose", "format_diagnosis", "format_duration", "keygen", "look_up"]

Mode = Literal["signed", "unsigned", "encrypted", "store"]
#: How hints name the options: as keyword arguments (``encrypt=True``) or as the flags of
#: ``koasession inspect`` (``--encrypt``).
HintStyle = Literal["python", "cli"]
_CLI_FLAGS = {
    "key": "--key",
    "store": "--store-id",
    "encrypt": "--encrypt",
    "algorithm": "--algorithm",
    "signature": "--signature",
}

# Length of a keygrip signature (base64url, no padding) for each digest.
_SIG_LENGTHS = {27: "sha1", 43: "sha256", 64: "sha384", 86: "sha512"}
# A header (or a pasted Set-Cookie line) starts with a cookie name followed by "=" and a value;
# a bare base64 value can also contain "=", but only as trailing padding.
_HEADER_START = re.compile(r"\s*[^\s=;]+=(?!=*\s*$)")
_COOKIE_PREFIX = re.compile(r"^\s*(set-)?cookie\s*:\s*", re.IGNORECASE)
# Cookie names people run into when a cookie "disappears" after an upgrade.
_OTHER_KOA_NAMES = ("koa.sess", "koa:sess")


@dataclass
class Diagnosis:
    """The outcome of :func:`diagnose`.

    ``ok`` is True when the middleware, configured with the same options, would accept the
    cookie. ``reason`` says why in one sentence (the first failure when rejected). ``data`` is
    the decoded payload, metadata included, whenever it could be decoded, even when rejected
    (``verified`` says whether its signature or encryption was checked and held). ``key_index``
    and ``algorithm`` name the key (position in ``keys``) and digest that verified it.
    """

    ok: bool
    reason: str
    data: dict[str, Any] | None = None
    key_index: int | None = None
    algorithm: str | None = None
    expires_at: datetime | None = None
    cookie_name: str = "koa.sess"
    value: str | None = None
    mode: Mode = "signed"
    verified: bool = False
    #: ``_maxAge`` in seconds, ``"session"`` for a browser-session cookie, ``None`` if absent.
    lifetime: float | Literal["session"] | None = None
    #: Further observations (rotation, hints, lenient decoding) for humans.
    notes: list[str] = field(default_factory=list)
    #: Whether hints spell options as keyword arguments or as command-line flags.
    style: HintStyle = "python"


def keygen(nbytes: int = 32) -> str:
    """A new random app key: ``nbytes`` random bytes (at least 32), base64url-encoded."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < MIN_KEY_BYTES:
        raise ValueError(f"nbytes must be an integer of at least {MIN_KEY_BYTES}; got {nbytes!r}")
    while True:
        key = secrets.token_urlsafe(nbytes)
        # A leading "-" would make the key read as an option on a command line
        # (`koasession inspect --keys -x...`); redrawing costs 1/64 of one bit of entropy.
        if not key.startswith("-"):
            return key


def diagnose(
    cookie: str,
    keys: Sequence[str | bytes],
    *,
    key: str = "koa.sess",
    algorithm: str | Sequence[str] = "sha256",
    encrypt: bool = False,
    signature: str | None = None,
    signed: bool = True,
    store: bool = False,
    idle_timeout: float | None = None,
    absolute_timeout: float | None = None,
    now: float | None = None,
    style: HintStyle = "python",
) -> Diagnosis:
    """Check ``cookie`` as the middleware would and explain the verdict.

    ``cookie`` is a whole ``Cookie`` header (``"koa.sess=...; koa.sess.sig=..."``, an optional
    ``Cookie:`` prefix is ignored; several lines are read as several header fields) or the bare
    value of the session cookie, in which case ``signature`` gives the ``.sig`` value. ``key``,
    ``algorithm``, ``encrypt``, ``signed``, ``idle_timeout`` and ``absolute_timeout`` are the
    middleware options of the same names; ``store=True`` says the cookie holds a store id (store
    mode), which is checked but cannot be looked up here. ``now`` (POSIX seconds) is for tests.
    """
    algorithms = (algorithm,) if isinstance(algorithm, str) else tuple(algorithm)
    if not algorithms or any(a not in ALGORITHMS for a in algorithms):
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)} or a list of them")
    if encrypt and store:
        raise ValueError("encrypt=True is for cookie mode; a store-mode cookie is a signed id")
    key_list = list(keys)
    mode: Mode = (
        "encrypted" if encrypt else "store" if store else "signed" if signed else "unsigned"
    )
    when = time.time() if now is None else now
    d = Diagnosis(ok=False, reason="", cookie_name=key, mode=mode, style=style)

    value, found_sig = _extract(cookie, key, d)
    if value is None:
        return d
    d.value = value
    if signature is None:
        signature = found_sig
    if value == "":
        return _reject(
            d, f"the {key!r} cookie is empty: a removal cookie (the session was removed)"
        )

    if encrypt:
        if not _open_encrypted(value, key_list, d):
            return d
    else:
        if (signed or store) and not _verify_signature(value, signature, key_list, algorithms, d):
            # Decode anyway (unverified) so the user can see what the cookie carries.
            if not store:
                d.data = codec.decode(value)
            return d
        if store:
            return _check_store_id(value, d)
        data = _decode_payload(value, d, key_list)
        if data is None:
            return d
        d.data = data
        d.verified = signed

    assert d.data is not None
    if not _check_metadata(d.data, d, when, idle_timeout, absolute_timeout):
        return d
    d.ok = True
    d.reason = _accepted_reason(d, when)
    return d


async def look_up(
    d: Diagnosis,
    store: Any,
    *,
    where: str = "the store",
    idle_timeout: float | None = None,
    absolute_timeout: float | None = None,
    now: float | None = None,
) -> Diagnosis:
    """Complete a store-mode diagnosis with what ``store`` holds under its session id.

    ``d`` comes from :func:`diagnose` with ``store=True``. The entry is read with the store's
    ``get`` (nothing is written) and checked like a loaded session (``_expire``, timeouts). An
    id whose signature failed is still looked up, so the data can be seen, but ``d`` stays
    rejected and the data is marked unverified. ``where`` names the store in the messages.
    """
    if d.mode != "store" or d.value is None or not is_valid_id(d.value):
        return d
    data = await store.get(d.value, None, rolling=False, ctx=None)
    if data is None:
        if d.ok:
            _reject(
                d,
                f"valid store session id, {_signed_by(d)}, but {where} has no entry under it: "
                "expired, destroyed (logout), or kept under another key prefix or table",
            )
        else:
            d.notes.append(f"{where} has no entry under this id either")
        return d
    d.data = data
    if not d.ok:
        d.verified = False
        d.notes.append(f"{where} holds data under this id, but the cookie did not verify")
        return d
    d.verified = True
    when = time.time() if now is None else now
    if _check_metadata(data, d, when, idle_timeout, absolute_timeout):
        d.reason = f"valid store session, {_signed_by(d)}; found in {where}"
        if d.expires_at is not None:
            left = d.expires_at.timestamp() - when
            d.reason += f"; expires at {_fmt_time(d.expires_at)} (in {format_duration(left)})"
    return d


# -- steps ---------------------------------------------------------------------------------


def _reject(d: Diagnosis, reason: str) -> Diagnosis:
    d.ok = False
    d.reason = reason
    return d


def _extract(cookie: str, key: str, d: Diagnosis) -> tuple[str | None, str | None]:
    """The session value and its signature from a header or a bare value."""
    text = cookie.strip()
    lines = [_COOKIE_PREFIX.sub("", line) for line in text.splitlines() if line.strip()]
    if not lines:
        _reject(d, "no cookie given (empty input)")
        return None, None
    first = lines[0].strip()
    if (
        len(lines) == 1
        and ";" not in first
        and not first.startswith(key + "=")
        and not _HEADER_START.match(first)
    ):
        return first, None  # a bare value

    jar = parse_cookie_header(lines)
    sig_name = key + ".sig"
    if key not in jar:
        _reject(d, _no_such_cookie(key, jar, d))
        return None, None
    count = sum(
        1 for line in lines for pair in line.split(";") if pair.partition("=")[0].strip() == key
    )
    if count > 1:
        d.notes.append(
            f"the header carries {count} {key!r} cookies (same name, different path or domain); "
            "the first one is used, as the middleware does"
        )
    return jar[key], jar.get(sig_name)


def _no_such_cookie(key: str, jar: dict[str, str], d: Diagnosis) -> str:
    if not jar:
        return f"no such cookie {key!r}: the header holds no cookies"
    names = ", ".join(repr(n) for n in jar)
    reason = f"no such cookie {key!r}; the header has {names}"
    if key + ".sig" in jar:
        return reason + f" (only {key + '.sig'!r}: the value cookie is missing)"
    others = [n for n in _OTHER_KOA_NAMES if n != key and n in jar]
    if others:
        reason += (
            f". {others[0]!r} is koa-session's "
            + ("pre-6 default name" if others[0] == "koa:sess" else "default name")
            + f": pass {_opt(d, 'key', others[0])}"
        )
        if others[0] == "koa:sess":
            reason += (
                " to inspect it (the middleware itself refuses 'koa:sess': ':' is not allowed "
                "in an RFC 6265 cookie name; see docs/migrating-from-koa-session.md)"
            )
        return reason
    signed_names = [n for n in jar if n + ".sig" in jar]
    if signed_names:
        listed = ", ".join(repr(n) for n in signed_names)
        reason += f"; signed cookies: {listed} (wrong {_opt(d, 'key', None)}?)"
    return reason


def _verify_signature(
    value: str,
    signature: str | None,
    keys: list[str | bytes],
    algorithms: tuple[str, ...],
    d: Diagnosis,
) -> bool:
    name = d.cookie_name
    if signature is None:
        encrypted = _looks_encrypted(value, keys, d)
        if encrypted:
            _reject(d, encrypted)
            return False
        _reject(
            d,
            f"missing signature: no {name + '.sig'!r} cookie (the middleware treats an unsigned "
            "value as tampered); pass the whole Cookie header, or the signature with "
            + _opt(d, "signature", "SIG"),
        )
        return False
    if not keys:
        _reject(d, "no keys given: a signed cookie cannot be verified without the app keys")
        return False
    index = cookieformat.signature_index(
        value, signature, name=name, keys=keys, algorithms=algorithms
    )
    if index >= 0:
        _note_verified(d, index, algorithms)
        return True
    _reject(d, _why_unverified(value, signature, keys, algorithms, d))
    return False


def _note_verified(d: Diagnosis, index: int, algorithms: tuple[str, ...]) -> None:
    d.key_index, alg_index = divmod(index, len(algorithms))
    d.algorithm = algorithms[alg_index]
    d.verified = True
    if d.key_index > 0:
        d.notes.append(
            f"signed by keys[{d.key_index}], not keys[0]: rotated; the middleware accepts it "
            "and re-issues the signature under keys[0] (event 'rotated')"
        )
    if len(algorithms) > 1 and alg_index > 0:
        d.notes.append(
            f"signed with {d.algorithm}, the second-choice algorithm; the next save signs it "
            f"with {algorithms[0]}"
        )


def _why_unverified(
    value: str,
    signature: str,
    keys: list[str | bytes],
    algorithms: tuple[str, ...],
    d: Diagnosis,
) -> str:
    name = d.cookie_name
    accepted = " or ".join(algorithms)
    for other in ALGORITHMS:
        if other in algorithms:
            continue
        found = cookieformat.signature_index(
            value, signature, name=name, keys=keys, algorithms=(other,)
        )
        if found >= 0:
            return (
                f"signed with {other} (by keys[{found}]) but only {accepted} is accepted: "
                f"set {_opt(d, 'algorithm', other)}, or "
                f"{_opt(d, 'algorithm', [algorithms[0], other])} while migrating"
            )
    count = f"{len(keys)} key" + ("s" if len(keys) != 1 else "")
    reason = f"signature matches none of the {count} with {accepted}"
    shape = _SIG_LENGTHS.get(len(signature))
    if shape is None:
        reason += f" (and its length, {len(signature)}, is not that of any HMAC signature)"
    elif shape not in algorithms:
        reason += f" (it has the length of a {shape} signature)"
    for other_name in _OTHER_KOA_NAMES:
        if (
            other_name != name
            and cookieformat.signature_index(
                value, signature, name=other_name, keys=keys, algorithms=ALGORITHMS
            )
            >= 0
        ):
            return reason + (
                f"; it was signed as a {other_name!r} cookie: the cookie was renamed, "
                "signatures cover the name"
            )
    return reason + ": a key that is not among those given, or the value was altered"


def _open_encrypted(value: str, keys: list[str | bytes], d: Diagnosis) -> bool:
    if not keys:
        _reject(d, "no keys given: an encrypted cookie cannot be opened without the app keys")
        return False
    try:
        from . import crypto
    except ImportError as exc:  # pragma: no cover - crypto itself imports lazily
        _reject(d, str(exc))
        return False
    try:
        cipher = crypto.CookieCipher(keys, cookie_name=d.cookie_name)
    except ImportError as exc:
        _reject(d, f"cannot check an encrypted cookie: {exc}")
        return False
    opened = cipher.open(value)
    if opened is not None:
        d.data, d.key_index = opened
        d.verified = True
        if d.key_index > 0:
            d.notes.append(
                f"encrypted with keys[{d.key_index}], not keys[0]: rotated; the middleware "
                "accepts it and re-encrypts it under keys[0] at the next save"
            )
        return True

    why = "encrypted token cannot be opened: "
    raw = b64url_decode(value)
    if len(value) > crypto.MAX_TOKEN_LENGTH:
        why += f"longer than {crypto.MAX_TOKEN_LENGTH} characters"
    elif raw is None:
        why += "not canonical base64url without padding"
    elif len(raw) < 1 + crypto.KID_LENGTH + crypto.NONCE_LENGTH + crypto.TAG_LENGTH:
        why += f"too short ({len(raw)} bytes) to be a sealed token"
    elif raw[0] != crypto.FORMAT_VERSION:
        why += f"format version {raw[0]}, only version {crypto.FORMAT_VERSION} is understood"
    else:
        by_kid: dict[bytes, list[int]] = getattr(cipher, "_by_kid", {})
        owners = by_kid.get(raw[1 : 1 + crypto.KID_LENGTH])
        if by_kid and not owners:
            why += (
                "its key id matches none of the given keys (sealed with a key that is not "
                "among them)"
            )
        else:
            which = f"keys[{owners[0]}]" if owners else "a given key"
            why += (
                f"its key id is that of {which}, but authentication failed: the token was "
                f"altered, sealed under another cookie name than {d.cookie_name!r}, or its "
                "payload is not a JSON object"
            )
    if codec.decode(value) is not None:
        why += " (it decodes as a signed base64 JSON cookie: " + (
            "inspect it without --encrypt)" if d.style == "cli" else "encrypt=False?)"
        )
    _reject(d, why)
    return False


def _check_store_id(value: str, d: Diagnosis) -> Diagnosis:
    if not is_valid_id(value):
        return _reject(
            d,
            f"signature holds but {value[:40]!r} is not a session id the middleware accepts "
            f"({ID_RULE})",
        )
    d.ok = True
    hint = "pass --store URL to look it up" if d.style == "cli" else "look the id up there"
    d.reason = f"valid store session id, {_signed_by(d)}; the data lives in the store ({hint})"
    return d


def _decode_payload(value: str, d: Diagnosis, keys: list[str | bytes]) -> dict[str, Any] | None:
    raw = codec.lenient_b64decode(value)
    hint = _mode_hint(value, keys, d)
    if raw is None or not raw:
        _reject(d, "not base64: the value does not decode to any bytes" + hint)
        return None
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        _reject(d, f"base64, but not UTF-8 text ({exc.reason} at byte {exc.start})" + hint)
        return None
    data = codec.loads_object(text)
    if data is not None:
        return data
    # loads_object says only "no"; find out which rule the text broke, for the explanation.
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        _reject(d, f"base64 UTF-8, but not JSON ({exc})" + hint)
        return None
    except RecursionError:
        _reject(d, "base64 UTF-8 JSON nested too deeply to parse")
        return None
    if not isinstance(parsed, dict):
        kind = _JSON_KINDS.get(type(parsed), type(parsed).__name__)
        _reject(d, f"JSON, but not an object ({kind}): a session is a JSON object")
        return None
    _reject(d, "JSON object with NaN, Infinity or an out-of-range number, which JavaScript refuses")
    return None


_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _mode_hint(value: str, keys: list[str | bytes], d: Diagnosis) -> str:
    """A hint when the value looks like it belongs to another mode."""
    if is_valid_id(value) and "=" not in value and len(value) >= 16:
        if _opens_encrypted(value, keys, d.cookie_name) is not None:
            return f"; it opens as an encrypted cookie: pass {_opt(d, 'encrypt', True)}"
        return f"; it looks like a store session id: pass {_opt(d, 'store', True)} (store mode)"
    return ""


def _opens_encrypted(value: str, keys: list[str | bytes], cookie_name: str) -> int | None:
    """The index of the key that opens ``value`` as an encrypted cookie, if any does."""
    if not keys:
        return None
    try:
        from .crypto import CookieCipher

        opened = CookieCipher(keys, cookie_name=cookie_name).open(value)
    except ImportError:
        return None
    return None if opened is None else opened[1]


def _looks_encrypted(value: str, keys: list[str | bytes], d: Diagnosis) -> str | None:
    """Why an unsigned value is an encrypted cookie (which never has a ``.sig``), if it is one."""
    flag = _opt(d, "encrypt", True)
    index = _opens_encrypted(value, keys, d.cookie_name)
    if index is not None:
        return (
            f"no {d.cookie_name + '.sig'!r} cookie, and none is needed: this is an encrypted "
            f"cookie (it opens with keys[{index}]): pass {flag}"
        )
    # The engine's own test of the shape (cookieformat), so both name the same values.
    if cookieformat.looks_encrypted(value) and codec.decode(value) is None:
        return (
            f"no {d.cookie_name + '.sig'!r} cookie, and the value looks encrypted (an encrypted "
            f"token, not base64 JSON): pass {flag}, with the keys that sealed it"
        )
    return None


def _opt(d: Diagnosis, option: str, value: object) -> str:
    """``option=value`` as the reader would type it: a keyword argument or a CLI flag."""
    if d.style == "cli":
        flag = _CLI_FLAGS[option]
        if value is True or value is None:
            return flag
        if isinstance(value, list):
            return " ".join(f"{flag} {item}" for item in value)
        return f"{flag} {value}"
    return option if value is None else f"{option}={value!r}"


def _check_metadata(
    data: dict[str, Any],
    d: Diagnosis,
    now: float,
    idle_timeout: float | None,
    absolute_timeout: float | None,
) -> bool:
    now_ms = now * 1000
    meta = decisions.split_metadata(data)[1]  # read as the engine reads it
    d.lifetime = "session" if meta.max_age == "session" else decisions.ms_to_seconds(meta.max_age)
    # The verdict is the engine's own (decisions.check_times); this only explains it.
    problem = decisions.check_times(
        data, now_ms, absolute_timeout=absolute_timeout, idle_timeout=idle_timeout
    )
    expire = meta.expire
    if (problem is None or problem.event == "expired") and expire is not None:
        d.expires_at = _utc(expire / 1000)
    if problem is not None:
        _reject(d, _explain(problem, data, now, absolute_timeout, idle_timeout))
        return False
    if expire is None and d.lifetime != "session":
        d.notes.append(
            "no _expire: the payload never expires by itself (koa-session writes such cookies "
            "when maxAge is unset)"
        )
    return True


def _explain(
    problem: decisions.Problem,
    data: dict[str, Any],
    now: float,
    absolute_timeout: float | None,
    idle_timeout: float | None,
) -> str:
    """Why the engine refuses a payload, with the times involved."""
    if problem.event == "invalid":
        field = (problem.reason or "").split(" ", 1)[0]
        return f"{problem.reason} ({data.get(field)!r}): rejected as invalid"
    if problem.reason is None:
        expire = data["_expire"]
        ago = format_duration(now - expire / 1000)
        return f"expired at {_fmt_time(_utc(expire / 1000))} ({ago} ago)"
    absolute = problem.reason.startswith("absolute")
    stamp_name, label = ("_created", "absolute") if absolute else ("_accessed", "idle")
    stamp = data[stamp_name]
    limit = absolute_timeout if absolute else idle_timeout
    assert limit is not None
    deadline = stamp / 1000 + limit
    return (
        f"{label} timeout: {stamp_name} {_fmt_time(_utc(stamp / 1000))} plus "
        f"{format_duration(limit)} ended at {_fmt_time(_utc(deadline))} "
        f"({format_duration(now - deadline)} ago)"
    )


def _signed_by(d: Diagnosis) -> str:
    if d.mode == "encrypted":
        return f"encrypted with keys[{d.key_index}]"
    if d.key_index is None:
        return "unsigned"
    rotated = " (rotated)" if d.key_index else ""
    return f"signed by keys[{d.key_index}]{rotated} with {d.algorithm}"


def _accepted_reason(d: Diagnosis, now: float) -> str:
    parts = [f"valid session, {_signed_by(d)}"]
    if d.lifetime == "session":
        parts.append("'session' lifetime: the cookie lasts until the browser closes")
    elif d.expires_at is not None:
        left = d.expires_at.timestamp() - now
        parts.append(f"expires at {_fmt_time(d.expires_at)} (in {format_duration(left)})")
    return "; ".join(parts)


# -- formatting ----------------------------------------------------------------------------


def _utc(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return datetime.max.replace(tzinfo=timezone.utc) if seconds > 0 else _EPOCH


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _fmt_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float) -> str:
    """A rough duration for humans: ``12 s``, ``5 min``, ``2 h 30 min``, ``1 day``, ``3 days 4 h``.

    The sign is ignored; the caller says "ago" or "in".
    """
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    text = f"{days} day" + ("s" if days != 1 else "")
    return f"{text} {hours} h" if hours else text


def _fmt_lifetime(lifetime: float | str) -> str:
    if lifetime == "session":
        return "'session' (browser-session cookie, no expiry inside)"
    assert not isinstance(lifetime, str)
    seconds = f"{lifetime:.0f}" if lifetime == int(lifetime) else f"{lifetime:.3f}"
    return f"{format_duration(lifetime)} ({seconds} s; koa maxAge {lifetime * 1000:.0f} ms)"


def format_diagnosis(d: Diagnosis) -> str:
    """A human-readable report of ``d``, as ``koasession inspect`` prints it."""
    verdict = "OK" if d.ok else "REJECTED"
    lines = [f"{d.cookie_name} ({d.mode}): {verdict}: {d.reason}"]
    if d.value is not None:
        shown = d.value if len(d.value) <= 80 else d.value[:77] + "..."
        lines.append(f"  value:     {shown} ({len(d.value)} characters)")
    if d.key_index is not None:
        alg = f" with {d.algorithm}" if d.algorithm else ""
        lines.append(f"  key:       keys[{d.key_index}]{alg}")
    if d.expires_at is not None:
        lines.append(f"  expires:   {_fmt_time(d.expires_at)}")
    if d.lifetime is not None:
        lines.append(f"  lifetime:  {_fmt_lifetime(d.lifetime)}")
    for note in d.notes:
        lines.append(f"  note:      {note}")
    if d.data is not None:
        label = "data" if d.verified else "data (UNVERIFIED: do not trust it)"
        body = json.dumps(d.data, indent=2, ensure_ascii=False, sort_keys=False)
        lines.append(f"  {label}:")
        lines.extend("    " + line for line in body.splitlines())
    return "\n".join(lines)
