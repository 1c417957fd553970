"""Pieces shared by the SQL stores: table-name checks and the automatic bounded purge."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from ..errors import ConfigurationError

logger = logging.getLogger("koasession")

# Table names are interpolated into SQL (placeholders cannot name tables), so only plain
# identifiers, optionally schema-qualified, are accepted; they are then double-quoted.
_IDENT = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_TABLE_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})?")

DEFAULT_TABLE = "koasession_sessions"


def check_table(name: str, *, allow_schema: bool) -> tuple[str, str]:
    """Validate ``name`` and return (quoted name for SQL, bare table name for index names)."""
    if not isinstance(name, str) or _TABLE_RE.fullmatch(name) is None:
        raise ConfigurationError(
            f"invalid table name {name!r}: use letters, digits and '_' "
            "(optionally schema.table), at most 63 characters per part"
        )
    parts = name.split(".")
    if len(parts) > 1 and not allow_schema:
        raise ConfigurationError(f"invalid table name {name!r}: no schema here")
    return ".".join(f'"{p}"' for p in parts), parts[-1]


def index_name(table: str, suffix: str) -> str:
    """An index name derived from the table, within PostgreSQL's 63-byte identifier limit."""
    return f'"{(table[: 63 - len(suffix) - 1])}_{suffix}"'


class AutoPurge:
    """Runs a bounded purge of expired rows every ``every`` writes.

    Bounded (at most ``limit`` rows) so that one unlucky request never pays for a table that
    grew for months; steady traffic reclaims space steadily. ``every=0`` disables it.
    """

    def __init__(self, every: int, limit: int) -> None:
        for name, value in (("purge_every", every), ("purge_limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{name} must be a non-negative integer")
        if every and not limit:
            raise ConfigurationError("purge_limit must be positive when purge_every is set")
        self.every = every
        self.limit = limit
        self._writes = 0

    async def after_write(self, purge: Callable[[int], Awaitable[int]]) -> None:
        """Count a write; on every ``every``-th one, purge at most ``limit`` expired rows."""
        if not self.every:
            return
        self._writes += 1
        if self._writes % self.every:
            return
        try:
            await purge(self.limit)
        except Exception:
            # The session itself was saved; a failed housekeeping pass must not fail the
            # request. The next pass retries.
            logger.warning("koasession: automatic purge of expired sessions failed", exc_info=True)
