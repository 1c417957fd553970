"""Pure session decisions: functions of their inputs and ``now``, no I/O, no request.

Module map of the per-request engine (issue 11):

- :mod:`koasession.decisions` (this module): metadata checks and timeouts, splitting and adding
  koa's metadata, why a commit saves, store TTLs.
- :mod:`koasession.cookieformat`: the configured cookie format (signed, encrypted or custom
  encoded) and the Set-Cookie lines that carry it.
- :mod:`koasession.storeio`: the store I/O policy (timeout, ``StoreError`` mapping).
- :mod:`koasession.lifecycle`: ``RequestSession``, which orchestrates the three for one request
  and produces response headers; adapters (:mod:`koasession.asgi`, ``testing``) drive it.

Times are koa's: milliseconds since the epoch as JSON numbers; lifetimes are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .codec import META_KEYS
from .options import MAX_AGE_CAP

#: The latest instant a JavaScript Date can hold, in ms: no koa payload carries a larger time.
MAX_TIME_MS = 8.64e15
#: Extra store lifetime beyond the cookie's, so the entry never expires before the cookie (koa).
STORE_GRACE = 10.0
_TIME_FIELDS = ("_expire", "_maxAge", "_created", "_accessed")

#: Why a commit writes the session: ``""`` means it does not.
SaveReason = Literal["", "changed", "rolling", "renew", "idle", "force"]


@dataclass(frozen=True)
class Problem:
    """Why a loaded payload is refused: the event to emit (``invalid``/``expired``) and why."""

    event: Literal["invalid", "expired"]
    reason: str | None = None


@dataclass(slots=True)
class LoadedMeta:
    """The metadata of a loaded payload (koa's ``_expire``/``_maxAge``/``_session``, ours)."""

    expire: Any = None
    created: Any = None
    accessed: Any = None
    #: ``_maxAge`` as loaded (ms), or ``"session"`` for ``_session``; ``None`` when absent.
    max_age: Any = None
    #: ``_device``: the device facts (see :mod:`koasession.devices`).
    device: Any = None


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_times(
    data: dict[str, Any],
    now_ms: float,
    *,
    absolute_timeout: float | None,
    idle_timeout: float | None,
) -> Problem | None:
    """koa's expiry check, preceded by range checks and followed by our timeouts.

    ``None`` when the payload is still valid at ``now_ms``.
    """
    for field in _TIME_FIELDS:
        if field not in data:
            continue
        stamp = data[field]
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
            if field == "_expire":
                return Problem("invalid", "_expire is not a number")
            continue  # koa ignores a non-numeric _maxAge; timeouts check their own fields
        # Also false for NaN. Unbounded integers would overflow float arithmetic later.
        if not 0 <= stamp <= MAX_TIME_MS:
            return Problem("invalid", f"{field} is out of range")
    if "_expire" in data and data["_expire"] < now_ms:
        return Problem("expired")
    for field, limit in (("_created", absolute_timeout), ("_accessed", idle_timeout)):
        stamp = data.get(field)
        if limit is None or stamp is None:
            continue
        if not _is_number(stamp):
            return Problem("invalid", f"{field} is not a number")
        if stamp + limit * 1000 < now_ms:
            timeout = "absolute" if field == "_created" else "idle"
            return Problem("expired", f"{timeout} timeout")
    return None


def split_metadata(data: dict[str, Any]) -> tuple[dict[str, Any], LoadedMeta]:
    """The application's data and the metadata of a checked payload, separated."""
    body: dict[str, Any] = {}
    meta = LoadedMeta()
    for name, value in data.items():
        if name not in META_KEYS:
            body[name] = value
        elif name == "_maxAge":
            meta.max_age = value
        elif name == "_session":
            meta.max_age = "session"
        elif name == "_expire":
            meta.expire = value
        elif name == "_created":
            meta.created = value
        elif name == "_accessed":
            meta.accessed = value
        elif name == "_device":
            meta.device = value
    return body, meta


def ms_to_seconds(value: object) -> float | None:
    """A loaded ``_maxAge`` (ms) as a lifetime in seconds, capped at 400 days; ``None`` if bad."""
    if not _is_number(value) or value <= 0:  # type: ignore[operator]
        return None
    return min(float(value) / 1000, float(MAX_AGE_CAP))  # type: ignore[arg-type]


def loaded_lifetime(
    loaded_max_age: object, configured: float | str
) -> tuple[float | str | None, bool, bool]:
    """What a loaded ``_maxAge`` (ms, or ``"session"``) means for this request's lifetime.

    Returns ``(seconds, override, exact)``: the lifetime it names (``None`` when absent or
    unusable), whether it differs from ``configured`` and so replaces it for this request, and
    whether the loaded ms value must be written back as is (rounding would not give it back).
    """
    if loaded_max_age is None:
        return None, False, False
    seconds: float | str | None = "session"
    if loaded_max_age != "session":
        seconds = ms_to_seconds(loaded_max_age)
    exact = isinstance(seconds, float) and seconds == loaded_max_age / 1000  # type: ignore[operator]
    if seconds is not None and seconds != configured:
        return seconds, True, exact
    return seconds, False, exact and type(loaded_max_age) is float


def lifetime_ms(max_age: float, loaded_ms: float | None, loaded_seconds: float | None) -> float:
    """koa's ``maxAge`` in milliseconds for a lifetime of ``max_age`` seconds.

    The lifetime loaded from a cookie or store entry is written back exactly as it was read;
    any other is rounded to the nearest millisecond (``int()`` would lose one for a few percent
    of lifetimes, e.g. 1024.003 s).
    """
    if loaded_ms is not None and max_age == loaded_seconds:
        return loaded_ms
    return round(max_age * 1000)


def metadata(
    *,
    now_ms: int,
    max_age: float | str,
    max_age_ms: float | None,
    created: Any,
    absolute_timeout: float | None,
    idle_timeout: float | None,
    record_created: bool = False,
) -> dict[str, Any]:
    """koa's ``_expire`` and ``_maxAge`` (or ``_session``), and ours for the timeouts.

    ``max_age_ms`` is :func:`lifetime_ms` of ``max_age`` (ignored for ``"session"``);
    ``created`` the loaded ``_created`` (``None`` for a new session). ``_created`` is written
    with ``absolute_timeout`` or ``record_created`` (``session.created_at``).
    """
    out: dict[str, Any] = {}
    if max_age == "session" or max_age_ms is None:
        out["_session"] = True
    else:
        out["_expire"] = now_ms + max_age_ms
        out["_maxAge"] = max_age_ms
    if absolute_timeout is not None or record_created:
        out["_created"] = created if created is not None else now_ms
    if idle_timeout is not None:
        out["_accessed"] = now_ms
    return out


def reason_to_save(
    *,
    data_json: str,
    prev_json: str | None,
    committed: bool,
    rolling: bool,
    renew: bool,
    max_age: float | str,
    loaded_expire: Any,
    idle_timeout: float | None,
    loaded_accessed: Any,
    now_ms: float,
) -> SaveReason:
    """Why an unforced commit saves: ``changed``, ``rolling``, ``renew``, ``idle`` or ``""``.

    ``data_json`` is the snapshot of the data now, ``prev_json`` the one loaded (``None`` for a
    new session); ``committed`` says a save already wrote this request's cookie.
    """
    if prev_json is None and data_json == "{}":
        return ""
    if data_json != prev_json:
        return "changed"
    if committed:
        return ""
    if rolling:
        return "rolling"
    renewable = renew and loaded_expire and not isinstance(max_age, str)
    if renewable and loaded_expire - now_ms < max_age * 500:
        return "renew"
    if idle_timeout is not None:
        # Record activity so the idle clock restarts, but at most about once a minute.
        step_ms = min(60.0, idle_timeout / 4) * 1000
        if not _is_number(loaded_accessed) or now_ms - loaded_accessed >= step_ms:
            return "idle"
    return ""


def store_ttl(max_age: float | str, session_store_ttl: float) -> float:
    """How long a store keeps an entry: the cookie's lifetime plus a grace, in seconds."""
    if isinstance(max_age, str):
        return session_store_ttl
    return max_age + STORE_GRACE


def js_falsy(value: object) -> bool:
    """JavaScript's falsiness for a JSON value: ``null``, ``false``, ``0`` and ``""``."""
    if value is None or value is False or value == "":
        return True
    return type(value) in (int, float) and value == 0
