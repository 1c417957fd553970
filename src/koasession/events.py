"""Session events: delivered to ``on_event`` and logged on the ``koasession`` logger.

Names: ``missed``, ``invalid``, ``expired`` (as in koa), ``tampered`` (bad or missing signature),
``rotated`` (signed or encrypted with a key other than the first), ``store_error``, ``lost`` (a
change that could not be delivered: made after the response started, or on a WebSocket),
``migrated`` (a session read from an old cookie by a ``fallback`` reader and re-issued).
A listener that raises, or whose coroutine fails, is logged and never breaks the request.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from .ids import fingerprint
from .protocols import EventListener

logger = logging.getLogger("koasession")

#: Log level of each event: expected noise is quiet, signs of attack or outage are loud.
LEVELS = {
    "missed": logging.DEBUG,
    "expired": logging.DEBUG,
    "rotated": logging.INFO,
    "invalid": logging.INFO,
    "tampered": logging.WARNING,
    "store_error": logging.ERROR,
    "lost": logging.WARNING,
    "migrated": logging.INFO,
}


def emit(
    listener: EventListener | None,
    name: str,
    payload: dict[str, Any],
    *,
    level: int | None = None,
) -> Awaitable[Any] | None:
    """Log the event and call ``listener``; return its awaitable if it is async.

    ``level`` overrides the event's usual log level (see :data:`LEVELS`).
    """
    if level is None:
        level = LEVELS.get(name, logging.INFO)
    if logger.isEnabledFor(level):
        details = {k: v for k, v in payload.items() if k not in ("ctx", "value")}
        key = details.get("key")
        if isinstance(key, str):
            # A store id is a credential: the log shows its fingerprint (listeners get it whole).
            details["key"] = fingerprint(key)
        logger.log(level, "session %s %s", name, details)
    if listener is None:
        return None
    try:
        result = listener(name, payload)
    except Exception:
        logger.exception("session event listener failed on %r", name)
        return None
    return result if inspect.isawaitable(result) else None


async def settle(pending: Sequence[Awaitable[Any]]) -> None:
    """Await the async listeners of one request, logging their failures."""
    for awaitable in pending:
        try:
            await awaitable
        except Exception:
            logger.exception("session event listener failed")
