"""Flash messages: a message saved in the session for the next page, read once.

Stored the way Node's koa-flash keeps them, so a Koa app and a Python app sharing the session
cookie (or store) pass flashes both ways. koa-flash keeps whatever the application assigns to
``ctx.flash`` under ``ctx.session['koa-flash']``; its documented use is an object of category to
message (``ctx.flash = {error: '...'}``, read as ``ctx.flash.error``). :func:`flash` writes that
shape: ``{"error": "Wrong password"}``. A second message in a category turns its value into a
list (``{"info": ["Saved", "Mail sent"]}``), which a Koa page reading ``ctx.flash.info`` then
receives as an array. :func:`pop_flashes` reads any shape koa-flash may hold: an object (each
value a message or a list of them), a list of messages, or one bare value, whose category is
``"info"``.

The two sides differ in when a flash is dropped. koa-flash removes it on the next request that
passes through it, read or not (and keeps it across a 302); here it stays in the session until
:func:`pop_flashes` takes it, as Django's and Flask's messages do.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, NamedTuple

__all__ = ["DEFAULT_CATEGORY", "FLASH_KEY", "Flash", "flash", "peek_flashes", "pop_flashes"]

#: koa-flash's default session key (its ``key`` option).
FLASH_KEY = "koa-flash"
#: The category of :func:`flash` by default, and of a value stored without one.
DEFAULT_CATEGORY = "info"


class Flash(NamedTuple):
    """One flash message: its category (``"info"``, ``"error"``, ...) and the message."""

    category: str
    message: Any


def flash(
    session: MutableMapping[str, Any],
    message: Any,
    category: str = DEFAULT_CATEGORY,
    *,
    key: str = FLASH_KEY,
) -> None:
    """Keep ``message`` (a string, or any JSON value) for the next page that pops flashes.

    ``session`` is the request's session (``request.session``, ``scope["session"]``); ``key``
    is koa-flash's ``key`` option when the Koa side changed it.
    """
    if not isinstance(category, str):
        raise TypeError(f"a flash category must be a string; got {category!r}")
    stored = _as_object(session.get(key))
    if category in stored:
        previous = stored[category]
        stored[category] = (
            [*previous, message] if isinstance(previous, list) else [previous, message]
        )
    else:
        stored[category] = message
    session[key] = stored


def peek_flashes(session: MutableMapping[str, Any], *, key: str = FLASH_KEY) -> list[Flash]:
    """The pending flashes, left in the session."""
    return [
        Flash(category, message)
        for category, value in _as_object(session.get(key)).items()
        for message in (value if isinstance(value, list) else [value])
    ]


def pop_flashes(session: MutableMapping[str, Any], *, key: str = FLASH_KEY) -> list[Flash]:
    """The pending flashes, removed from the session (each one is shown once).

    Grouped by category, categories in the order they were first flashed. A session without
    flashes is not modified, so reading them costs no write.
    """
    flashes = peek_flashes(session, key=key)
    if key in session:
        del session[key]
    return flashes


def _as_object(value: Any) -> dict[str, Any]:
    """What koa-flash may have stored, as a fresh dict of category to message(s)."""
    if not value:
        return {}  # koa-flash reads a falsy value (null, false, 0, "") as no flash too
    if isinstance(value, dict):
        return dict(value)
    # A list of messages or one bare value (ctx.flash = 'Saved'): no category was given.
    return {DEFAULT_CATEGORY: value}
