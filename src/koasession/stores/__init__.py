"""Server-side session stores.

:class:`MemoryStore` needs nothing beyond the standard library. The others need an optional
extra and are imported only when first used, so ``import koasession.stores`` works without them:

- :class:`RedisStore` (``pip install koasession[redis]``), also Redis Cluster and Valkey
- :class:`PostgresStore` (``pip install koasession[postgres]``)
- :class:`SQLiteStore` (``pip install koasession[sqlite]``)
- :class:`MySQLStore` (``pip install koasession[mysql]``), MySQL or MariaDB

:func:`store_from_url` builds one from a URL (``redis://``, ``rediss://``, ``postgresql://``,
``mysql://``, ``mariadb://``, ``sqlite:///path``, ``memory://``), as the ``koasession`` command
line does.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ._common import StoredSession, valid_id
from .base import ClosableStore, SessionData, Store
from .memory import MemoryStore

if TYPE_CHECKING:
    from .mysql import MySQLStore
    from .postgres import PostgresStore
    from .redis import RedisStore
    from .sqlite import SQLiteStore

__all__ = [
    "ClosableStore",
    "MemoryStore",
    "MySQLStore",
    "PostgresStore",
    "RedisStore",
    "SQLiteStore",
    "SessionData",
    "Store",
    "StoredSession",
    "store_from_url",
    "valid_id",
]

# name -> submodule; imported on first attribute access so optional drivers stay optional.
_LAZY = {
    "RedisStore": "redis",
    "PostgresStore": "postgres",
    "SQLiteStore": "sqlite",
    "MySQLStore": "mysql",
}
# submodule -> (driver module, its distribution name, the extra that installs it)
_DRIVERS = {
    "redis": ("redis", "redis-py", "redis"),
    "postgres": ("asyncpg", "asyncpg", "postgres"),
    "sqlite": ("aiosqlite", "aiosqlite", "sqlite"),
    "mysql": ("asyncmy", "asyncmy", "mysql"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        loaded = import_module(f".{module}", __name__)
    except ModuleNotFoundError as exc:
        driver, dist, extra = _DRIVERS[module]
        missing = (exc.name or "").partition(".")[0]
        if missing != driver or "koasession[" in str(exc):
            raise  # another module is missing, or the store module already said what to do
        raise ModuleNotFoundError(
            f"{name} needs {dist}, which is not installed: pip install 'koasession[{extra}]'",
            name=driver,
        ) from exc
    value = getattr(loaded, name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def store_from_url(url: str, **options: Any) -> Any:
    """Build a store from a URL; ``options`` go to the store's constructor.

    ``redis://`` / ``rediss://`` / ``unix://`` give a :class:`RedisStore` (``redis+cluster://``
    a cluster client), ``postgres://`` / ``postgresql://`` a :class:`PostgresStore`, ``mysql://`` / ``mariadb://``
    a :class:`MySQLStore`,
    ``sqlite:///relative/or/absolute/path`` a :class:`SQLiteStore` and ``memory://`` a
    :class:`MemoryStore`.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"store_from_url needs a URL string; got {url!r}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"not a store URL (no scheme://): {_shown(url)}; {_SCHEMES}")
    scheme = scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return __getattr__("RedisStore")(url, **options)
    if scheme in ("redis+cluster", "rediss+cluster"):
        real = scheme.split("+", 1)[0] + "://" + rest
        return __getattr__("RedisStore")(real, cluster=True, **options)
    if scheme in ("postgres", "postgresql"):
        return __getattr__("PostgresStore")(url, **options)
    if scheme in ("mysql", "mariadb"):
        return __getattr__("MySQLStore")(url, **options)
    if scheme == "sqlite":
        # sqlite:///app.db -> "app.db"; sqlite:////var/lib/app.db -> "/var/lib/app.db"
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigurationError("sqlite URL needs a path: sqlite:///sessions.db")
        return __getattr__("SQLiteStore")(path, **options)
    if scheme == "memory":
        return MemoryStore(**options)
    base = scheme.partition("+")[0]
    hint = (
        f" (drop SQLAlchemy's driver suffix: {base}://...)"
        if base in ("postgres", "postgresql", "mysql", "mariadb", "sqlite")
        else ""
    )
    raise ConfigurationError(f"unsupported store URL scheme {scheme!r}{hint}; {_SCHEMES}")


_SCHEMES = (
    "use redis://, rediss://, unix://, redis+cluster://, postgresql://, mysql://, mariadb://, "
    "sqlite:///path or memory://"
)


def _shown(url: str) -> str:
    """``url`` for an error message: without what may be a password (``user:password@``)."""
    return repr(url.rpartition("@")[2]) if "@" in url else repr(url)
